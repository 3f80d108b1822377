"""Writing back what the store lost: the epoch that tells a node so, and the atomic steps that
re-assert one recording or one user slot (docs/operations.md, "When the store fails").

A node is the source of truth for what it runs. At every heartbeat it reads
``{prefix}epoch``: when the store lost its data (the key is gone, or a server whose run id
changed wrote it: a restart or a failover) a new epoch is written, and starts wait until its
``gate_until`` while every node writes back its recordings (the ADMIT script checks it). The
writes themselves are :data:`recorder.state.scripts.REASSERT`, one per recording, which never
goes over a newer ``version``.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from recorder.core.models import RecordingState
from recorder.state import scripts
from recorder.state.connection import awaited, store_errors
from recorder.state.keys import KeySpace

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Epoch:
    """The epoch the store holds now, and whether this node's view of the store is stale."""

    id: str
    gate_seconds: float  # how long starts still wait (0: admission is open)
    lost: bool  # the store lost what this node had written: re-assert everything now


@dataclass(frozen=True)
class Reasserted:
    """What re-asserting one recording did."""

    written: bool  # the store had no state, or an older one
    stored_version: int  # what it held before (-1: nothing)
    webhooks_queued: int  # jobs of lost versions queued again


class StoreReassertion:
    """The store side of re-assertion for one node."""

    def __init__(self, redis: aioredis.Redis, keys: KeySpace, state_ttl: int,
                 index_ttl: int) -> None:
        self._redis = redis
        self._keys = keys
        self._state_ttl = state_ttl
        self._index_ttl = index_ttl
        self._epoch = redis.register_script(scripts.EPOCH)
        self._reassert = redis.register_script(scripts.REASSERT)

    async def epoch(self, known: str | None, gate_seconds: float) -> Epoch:
        """Read the epoch, writing a new one when the store lost its data; `known` is the
        epoch this node saw last (None right after its start)."""
        with store_errors():
            reply: Any = await self._epoch(
                keys=[self._keys.epoch()],
                args=[uuid.uuid4().hex, known or "", round(gate_seconds * 1000)])
        fields = json.loads(reply[0])
        gate_ms = max(0, int(fields.get("gate_until") or 0) - int(reply[1]))
        epoch = Epoch(id=str(fields["id"]), gate_seconds=gate_ms / 1000,
                      lost=known is not None and fields["id"] != known)
        if epoch.lost:
            logger.warning("the store lost its data (epoch %s, this node knew %s): "
                           "re-asserting what this node runs", epoch.id, known)
        return epoch

    async def recording(self, state: RecordingState, holds: list[str], lacks: list[str],
                        webhooks: list[tuple[int, str]]) -> Reasserted:
        """Write `state` back unless the store holds a newer version; the sets in `holds`
        get its id and those in `lacks` lose it; `webhooks` are (version, job JSON) of the
        status changes this node wrote, queued again for the versions the store lost."""
        k = self._keys
        script_keys = [k.state(state.recording_id), k.room(state.room_id),
                       k.user(state.user_id), k.jobs_webhook(), *holds, *lacks]
        args: list[str | int] = [state.recording_id, state.to_json(), state.version,
                                 self._state_ttl, self._index_ttl, len(holds)]
        for version, job in webhooks:
            args += [version, job]
        with store_errors():
            reply: Any = await self._reassert(keys=script_keys, args=args)
        done = Reasserted(written=bool(int(reply[0])), stored_version=int(reply[1]),
                          webhooks_queued=int(reply[2]))
        if done.written:
            logger.warning("recording %s: state version %d written back (the store had %s)",
                           state.recording_id, state.version,
                           "none" if done.stored_version < 0 else done.stored_version)
        if done.webhooks_queued:
            logger.warning("recording %s: %d webhook(s) the store lost queued again",
                           state.recording_id, done.webhooks_queued)
        return done

    async def slots(self, held: dict[tuple[str, str], dict[str, str]]) -> int:
        """Write back this node's user slots: {(kind, user id): {slot id: node id}}; returns
        how many were missing."""
        added = 0
        with store_errors():
            for (kind, user_id), slots in sorted(held.items()):
                if slots:
                    key = self._keys.slots(kind, user_id)
                    present: list[Any] = await awaited(self._redis.hmget(key, list(slots)))
                    missing = [(s, n) for (s, n), p in zip(slots.items(), present, strict=True)
                               if p is None]
                    for slot, node in missing:
                        added += int(await awaited(self._redis.hsetnx(key, slot, node)))
        if added:
            logger.warning("%d user slot(s) this node holds written back", added)
        return added
