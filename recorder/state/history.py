"""A recording's history: ``{prefix}history:{recording_id}``, a list of JSON entries, oldest
first, capped at HISTORY_ENTRIES and living as long as the state (docs/operations.md).

Two writers. The store's compare-and-set script appends every status event it publishes
(``{"type": "recording_paused", "status": "paused", "at": ...}``) in the same atomic step
as the write, so the history never misses a written change. The node that runs the room
appends what its room reports about publishers (``publisher_joined`` with the track's kind
and codec, ``publisher_left``) to each recording live in that room, best-effort: those are
for people reading a timeline, not for any decision.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

import redis.asyncio as aioredis

from recorder.core.errors import Unavailable
from recorder.state.connection import awaited, store_errors
from recorder.state.keys import KeySpace

logger = logging.getLogger(__name__)

HISTORY_ENTRIES = 500
MAX_ENTRY_BYTES = 2048  # one entry: a few short fields


class RecordingHistory:
    def __init__(self, redis: aioredis.Redis, keys: KeySpace, ttl_seconds: int) -> None:
        self._redis = redis
        self._keys = keys
        self._ttl = ttl_seconds

    async def append(self, recording_ids: Iterable[str], entry: dict[str, Any]) -> None:
        """Add `entry` to each recording's history; an outage is logged, not raised."""
        raw = json.dumps(entry, separators=(",", ":"))
        ids = sorted(set(recording_ids))
        if not ids or len(raw) > MAX_ENTRY_BYTES:
            return
        try:
            with store_errors():
                async with self._redis.pipeline(transaction=False) as pipe:
                    for recording_id in ids:
                        key = self._keys.history(recording_id)
                        pipe.rpush(key, raw)
                        pipe.ltrim(key, -HISTORY_ENTRIES, -1)
                        pipe.expire(key, self._ttl)
                    await pipe.execute()
        except Unavailable as exc:
            logger.warning("history of %s not written: %s", ids, exc.detail)

    async def read(self, recording_id: str) -> list[dict[str, Any]]:
        """Every entry, oldest first; entries that are not JSON objects are skipped."""
        with store_errors():
            raws: list[str | bytes] = await awaited(self._redis.lrange(
                self._keys.history(recording_id), 0, HISTORY_ENTRIES - 1))
        entries: list[dict[str, Any]] = []
        for raw in raws:
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            if isinstance(entry, dict):
                entries.append(entry)
        return entries
