"""A node's duties towards the other nodes on the same Redis, run beside its heartbeat.

Two periodic jobs: renew (or release) the rooms this node owns, and look for recordings of
nodes that died (orphan takeover). Both only talk to Redis; the node runs them when its
store is shared (with the embedded store there is only one node, and nothing to do).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import redis.asyncio as aioredis

from recorder.config.settings import Settings
from recorder.core.errors import Unavailable
from recorder.service.ownership import RoomPlacement
from recorder.service.recordings import RecordingService
from recorder.service.recovery import OrphanRecovery
from recorder.service.takeover import OrphanTakeover
from recorder.state.jobs import UploadQueue
from recorder.state.orphans import OrphanIndex
from recorder.state.owners import RoomOwners
from recorder.state.store import StateStore

logger = logging.getLogger(__name__)

ROOM_OWNER_HEARTBEATS = 3  # the room-owner key lives as long as the node key


class Cluster:
    def __init__(self, settings: Settings, redis: aioredis.Redis, store: StateStore,
                 service: RecordingService,
                 upload_queue: Callable[[str], UploadQueue] | None) -> None:
        self._period = settings.heartbeat_seconds
        owners = RoomOwners(redis, store.keys, settings.node,
                            settings.heartbeat_seconds * ROOM_OWNER_HEARTBEATS)
        self.placement = RoomPlacement(owners, store, service, settings.heartbeat_seconds,
                                       settings.orphan_timeout_seconds)
        recovery = OrphanRecovery(settings.node, store, service.complete_recovered,
                                  service.runs)
        self.takeover = OrphanTakeover(settings.node, store, OrphanIndex(redis, store.keys),
                                       recovery, settings.orphan_timeout_seconds,
                                       upload_queue)

    async def run(self) -> None:
        """Every heartbeat: rooms renewed, then one takeover pass; until cancelled."""
        while True:
            try:
                await self.placement.renew()
                await self.takeover.run_once()
            except Unavailable as exc:
                logger.warning("room ownership and orphan takeover skipped: %s", exc.detail)
            await asyncio.sleep(self._period)

    async def close(self) -> None:
        """Release the rooms this node holds, so other nodes need not wait for expiry."""
        await self.placement.release_all()
