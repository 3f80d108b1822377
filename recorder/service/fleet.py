"""The cluster as an operator sees it: recordings of every node, the nodes themselves
(alive, late or gone), the upload and webhook queues, storage, a recording's timeline and
picture (docs/operations.md, "The admin page").

Everything is read from Redis, so any node answers for the whole cluster; only a picture
is made on the node whose disk holds the recording (the route forwards it there). Every
read is bounded: listings are paged, node and queue scans stop at MAX_NODES.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import redis.asyncio as aioredis

from recorder.core.fleet import (
    LATE_HEARTBEATS,
    DayUploads,
    NodeHealth,
    NodeRow,
    NodeStorage,
    NodesView,
    QueuesView,
    StorageView,
    Timeline,
    UploadQueueRow,
)
from recorder.core.models import RecordingState
from recorder.core.outbox_status import WebhookStatus
from recorder.core.paging import ListFilter, Page, PageRequest
from recorder.service.thumbnails import Thumbnails
from recorder.service.timeline import build_timeline
from recorder.state.connection import store_errors
from recorder.state.jobs import UploadQueue
from recorder.state.nodes import NodeInfo
from recorder.state.store import StateStore
from recorder.state.totals import ClusterTotals

MAX_NODES = 1000  # nodes (live or seen within a day) and upload queues one answer lists

WebhookStatusSource = Callable[[list[str]], Awaitable[WebhookStatus]]


class Fleet:
    def __init__(self, store: StateStore, redis: aioredis.Redis,
                 webhooks: WebhookStatusSource, webhook_url: str | None = None) -> None:
        """`webhooks(configured)` is the outbox's status (workers.outbox), `webhook_url` the
        node's own RECORDER_WEBHOOK_URL (listed as an endpoint even while it works)."""
        self._store = store
        self._redis = redis
        self._keys = store.keys
        self._webhooks = webhooks
        self._configured = [webhook_url] if webhook_url else []
        self._totals = ClusterTotals(redis, store.keys)
        self._thumbnails = Thumbnails()

    async def recordings(self, only: ListFilter, room_id: str | None,
                         page: PageRequest) -> Page[RecordingState]:
        """A room's or a user's index when the filter names one, else every state."""
        if room_id is not None:
            return await self._store.list_room(room_id, page, only)
        if only.user_id is not None:
            return await self._store.list_user(only.user_id, page, only)
        return await self._store.list_cluster(page, only)

    async def nodes(self, now: datetime | None = None) -> NodesView:
        rows = [_row(info, alive, now or datetime.now(UTC))
                for info, alive in await self._known_nodes()]
        return NodesView(nodes=rows, count=len(rows))

    async def queues(self) -> QueuesView:
        node_ids = {info.node_id for info, _ in await self._known_nodes()}
        prefix = self._keys.jobs_upload("")
        with store_errors():
            async for key in self._redis.scan_iter(match=self._keys.jobs_upload_pattern(),
                                                   count=256):
                if len(node_ids) >= MAX_NODES:
                    break
                node_ids.add(str(key)[len(prefix):])
        uploads = []
        for node_id in sorted(node_ids):
            queue = UploadQueue(self._redis, self._keys, node_id)
            depth, in_progress = await queue.depth()
            age = await queue.oldest_age() if depth else None
            uploads.append(UploadQueueRow(node_id=node_id, depth=depth,
                                          in_progress=in_progress,
                                          oldest_age_seconds=None if age is None
                                          else round(age, 3)))
        return QueuesView(uploads=uploads, webhooks=await self._webhooks(self._configured))

    async def storage(self, days: int, now: datetime | None = None) -> StorageView:
        at = now or datetime.now(UTC)
        nodes = [NodeStorage(node_id=info.node_id, health=_health(info, alive, at),
                             disk=info.disk) for info, alive in await self._known_nodes()]
        totals = await self._totals.read()
        per_day = [DayUploads(day=day, uploaded_bytes=t.uploaded_bytes,
                              upload_failures=t.upload_failures)
                   for day, t in await self._totals.read_days(days, at.date())]
        return StorageView(
            nodes=nodes, uploaded_bytes=totals.uploaded_bytes,
            upload_failures=totals.upload_failures, days=per_day,
            kept_uploaded=sum(n.disk.kept_uploaded for n in nodes if n.disk),
            kept_uploaded_bytes=sum(n.disk.kept_uploaded_bytes for n in nodes if n.disk))

    async def timeline(self, recording_id: str) -> Timeline:
        state = await self._store.get(recording_id)
        return build_timeline(state, await self._store.history.read(recording_id))

    async def thumbnail(self, recording_id: str) -> bytes:
        return await self._thumbnails.jpeg(await self._store.get(recording_id))

    async def _known_nodes(self) -> list[tuple[NodeInfo, bool]]:
        """Every node with a live heartbeat, then those seen within a day, by node id."""
        live = {info.node_id: info for info in await self._store.nodes()}
        with store_errors():
            names: list[str] = []
            async for key in self._redis.scan_iter(match=self._keys.node_seen_pattern(),
                                                   count=256):
                names.append(key)
                if len(names) >= MAX_NODES:
                    break
            raws = await self._redis.mget(names) if names else []
        seen: dict[str, NodeInfo] = {}
        for raw in raws:
            info = _parse(raw)
            if info is not None and info.node_id not in live:
                seen[info.node_id] = info
        known = [(info, True) for info in live.values()]
        known += [(info, False) for info in seen.values()]
        return sorted(known, key=lambda pair: pair[0].node_id)[:MAX_NODES]


def _parse(raw: str | bytes | None) -> NodeInfo | None:
    if raw is None:
        return None
    try:
        return NodeInfo.model_validate(json.loads(raw))
    except ValueError:
        return None


def _age(info: NodeInfo, now: datetime) -> float | None:
    return None if info.sent_at is None else max(0.0, (now - info.sent_at).total_seconds())


def _health(info: NodeInfo, alive: bool, now: datetime) -> NodeHealth:
    if not alive:
        return "gone"
    age = _age(info, now)
    if age is not None and info.heartbeat_seconds > 0 \
            and age > LATE_HEARTBEATS * info.heartbeat_seconds:
        return "late"
    return "ok"


def _row(info: NodeInfo, alive: bool, now: datetime) -> NodeRow:
    age = _age(info, now)
    return NodeRow(
        node_id=info.node_id, health=_health(info, alive, now), public_url=info.public_url,
        version=info.version, pid=info.pid, started_at=info.started_at,
        last_seen_at=info.sent_at, heartbeat_age_seconds=None if age is None else round(age, 3),
        heartbeat_seconds=info.heartbeat_seconds, cpu_used=info.cpu_used,
        cpu_capacity=info.cpu_capacity, rooms=info.rooms, room_workers=info.room_workers,
        active_recordings=info.active, draining=info.draining, disk=info.disk)
