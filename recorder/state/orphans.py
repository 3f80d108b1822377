"""Where another node's unfinished recordings are found, and the `active` set kept honest.

A dead node's recordings sit in ``{prefix}active`` (pending, recording, paused) or in its
``{prefix}processing:{node_id}`` set; nothing else points at them. ``active`` has no TTL,
so an id whose state expired, or that a write outside the store left terminal, would hold a
limit slot forever: :meth:`OrphanIndex.reconcile_active` drops such ids, checking each one
again inside a Lua step so a concurrent status change is never undone.
"""

from __future__ import annotations

import logging
from typing import Any

import redis.asyncio as aioredis

from recorder.core.lifecycle import ACTIVE
from recorder.core.models import RecordingState
from recorder.state.connection import store_errors
from recorder.state.keys import KeySpace

logger = logging.getLogger(__name__)

# KEYS[1] state, KEYS[2..] the active sets. ARGV[1] id, ARGV[2..] the active statuses.
# Removes the id from the sets when the state is missing or not active; returns 1 if so.
DROP_INACTIVE = """
local raw = redis.call('GET', KEYS[1])
if raw then
  local status = cjson.decode(raw)['status']
  for i = 2, #ARGV do
    if status == ARGV[i] then
      return 0
    end
  end
end
for i = 2, #KEYS do
  redis.call('SREM', KEYS[i], ARGV[1])
end
return 1
"""


class OrphanIndex:
    def __init__(self, redis: aioredis.Redis, keys: KeySpace) -> None:
        self._redis = redis
        self._keys = keys
        self._drop = redis.register_script(DROP_INACTIVE)

    async def processing_by_node(self) -> dict[str, set[str]]:
        """Every node's `processing:` set, by node id (dead nodes' included)."""
        prefix = self._keys.processing("")
        found: dict[str, set[str]] = {}
        with store_errors():
            names = [n async for n in self._redis.scan_iter(
                match=self._keys.processing_pattern())]
            for name in names:
                members: Any = await self._redis.smembers(name)
                if members:
                    found[name.removeprefix(prefix)] = set(members)
        return found

    async def states(self, ids: list[str]) -> dict[str, RecordingState | None]:
        """The states of `ids` in one MGET (None where the state expired)."""
        if not ids:
            return {}
        with store_errors():
            raws = await self._redis.mget([self._keys.state(i) for i in ids])
        return {i: None if raw is None else RecordingState.from_json(raw)
                for i, raw in zip(ids, raws, strict=True)}

    async def reconcile_active(self, states: dict[str, RecordingState | None]) -> list[str]:
        """Drop ids of `active` whose state is missing or no longer active (rechecked
        atomically per id); returns the ids dropped."""
        dropped: list[str] = []
        k = self._keys
        for recording_id, state in states.items():
            if state is not None and state.status in ACTIVE:
                continue
            sets = [k.active()]
            if state is not None:
                sets += [k.active_room(state.room_id), k.active_user(state.user_id)]
            with store_errors():
                done = await self._drop(keys=[k.state(recording_id), *sets],
                                        args=[recording_id, *(s.value for s in ACTIVE)])
            if done:
                dropped.append(recording_id)
                logger.warning("recording %s: dropped from the active set (%s)", recording_id,
                               "state expired" if state is None else state.status.value)
        return dropped
