"""Per-user slots counted across the cluster: live WHIP sessions and live-status streams.

A user's slots of one kind are a hash ``{prefix}{kind}:{user_id}`` (slot id -> node id).
Claiming is one Lua step that first drops the slots of nodes whose heartbeat key expired and
then counts, so a node that died gives its users' slots back without anyone cleaning up, and
a burst of claims on many nodes never holds more than the cap (docs/security.md, "Caps").
"""

from __future__ import annotations

import logging
from typing import Any

import redis.asyncio as aioredis

from recorder.core.errors import LimitReached
from recorder.state import scripts
from recorder.state.connection import awaited, store_errors
from recorder.state.keys import KeySpace

logger = logging.getLogger(__name__)

PUBLISHERS = "publishers"
WATCHERS = "watchers"
CAP_NAMES = {PUBLISHERS: "max_publishers_per_user", WATCHERS: "max_watchers_per_user"}


class UserSlots:
    def __init__(self, redis: aioredis.Redis, keys: KeySpace) -> None:
        self._redis = redis
        self._keys = keys
        self._claim = redis.register_script(scripts.CLAIM_SLOT)
        # what this process holds, written back if the store loses it (state/reassert.py)
        self._held: dict[tuple[str, str], dict[str, str]] = {}

    def held(self) -> dict[tuple[str, str], dict[str, str]]:
        """The slots this process claimed and has not released: {(kind, user): {slot: node}}."""
        return {key: dict(slots) for key, slots in self._held.items()}

    async def claim(self, kind: str, user_id: str, slot_id: str, node_id: str,
                    cap: int) -> None:
        """Hold one of the user's `cap` slots of `kind` for this node, else LimitReached."""
        with store_errors():
            claimed: Any = await self._claim(
                keys=[self._keys.slots(kind, user_id)],
                args=[slot_id, node_id, cap, self._keys.node("")])
        if not int(claimed):
            name = CAP_NAMES[kind]
            logger.info("user %s refused a %s slot: %s (%d) reached", user_id, kind, name, cap)
            raise LimitReached(name, cap)
        self._held.setdefault((kind, user_id), {})[slot_id] = node_id

    async def release(self, kind: str, user_id: str, slot_id: str) -> None:
        mine = self._held.get((kind, user_id), {})
        mine.pop(slot_id, None)
        if not mine:
            self._held.pop((kind, user_id), None)
        with store_errors():
            await awaited(self._redis.hdel(self._keys.slots(kind, user_id), slot_id))

    async def release_node(self, node_id: str) -> int:
        """Drop every slot this node left (a restart under the same id); returns how many."""
        dropped = 0
        with store_errors():
            for kind in CAP_NAMES:
                async for key in self._redis.scan_iter(match=self._keys.slots_pattern(kind)):
                    held: dict[str, str] = await awaited(self._redis.hgetall(key))
                    mine = [slot for slot, node in held.items() if node == node_id]
                    if mine:
                        dropped += int(await awaited(self._redis.hdel(key, *mine)))
        if dropped:
            logger.info("released %d slot(s) an earlier run of node %s left", dropped, node_id)
        return dropped

