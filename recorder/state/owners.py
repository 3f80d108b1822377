"""Which node a room lives on: ``{prefix}room-owner:{room_id}`` (docs/operations.md).

A room's publishers and recordings must meet in one room session, so one node owns the
room at a time. The claim is one Lua step that also reads the owner's heartbeat, so the
common case (this node owns it, or nobody does) costs a single round trip, and a room whose
owner stopped beating is taken over by the next claim instead of waiting for its key to
expire. Release deletes the key only while it still names this node.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from recorder.state.connection import store_errors
from recorder.state.keys import KeySpace
from recorder.state.nodes import NodeInfo

logger = logging.getLogger(__name__)

# KEYS[1] room-owner key. ARGV[1] this node, ARGV[2] TTL ms, ARGV[3] node key prefix.
# Returns {owner} when this node owns the room now (claimed or renewed), or {owner, node
# JSON} when another node with a live heartbeat owns it.
CLAIM = """
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[1] then
  local node = redis.call('GET', ARGV[3] .. owner)
  if node then
    return {owner, node}
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {ARGV[1]}
"""

# KEYS[1] room-owner key, ARGV[1] this node. Returns 1 when the key was ours and is gone.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass(frozen=True)
class Owner:
    """Another live node that owns a room, and where to reach it."""

    node_id: str
    public_url: str


class RoomOwners:
    """Claims, renewals and releases of room ownership for one node."""

    def __init__(self, redis: aioredis.Redis, keys: KeySpace, node_id: str,
                 ttl_seconds: float) -> None:
        self._redis = redis
        self._keys = keys
        self.node_id = node_id
        self._ttl_ms = max(1, round(ttl_seconds * 1000))
        self._claim = redis.register_script(CLAIM)
        self._release = redis.register_script(RELEASE)

    async def claim(self, room_id: str) -> Owner | None:
        """Claim or renew the room; None when this node owns it now, else its live owner.

        A previous owner whose node key expired (a dead node) loses the room here.
        """
        args: list[str | int] = [self.node_id, self._ttl_ms, self._keys.node("")]
        with store_errors():
            reply: Any = await self._claim(keys=[self._keys.room_owner(room_id)], args=args)
        if len(reply) < 2:
            return None
        node = NodeInfo.model_validate_json(reply[1])
        return Owner(node.node_id, node.public_url)

    async def owner(self, room_id: str) -> Owner | None:
        """The room's owner when it is another node with a live heartbeat (no claim)."""
        with store_errors():
            owner: Any = await self._redis.get(self._keys.room_owner(room_id))
            if owner is None or owner == self.node_id:
                return None
            raw = await self._redis.get(self._keys.node(owner))
        if raw is None:
            return None
        node = NodeInfo.model_validate_json(raw)
        return Owner(node.node_id, node.public_url)

    async def release(self, room_id: str) -> bool:
        """Give the room up if it is still ours; True when it was."""
        with store_errors():
            released = await self._release(keys=[self._keys.room_owner(room_id)],
                                           args=[self.node_id])
        return bool(released)

    async def live_node(self, node_id: str) -> Owner | None:
        """Where `node_id` is reached, or None when its heartbeat expired."""
        with store_errors():
            raw = await self._redis.get(self._keys.node(node_id))
        if raw is None:
            return None
        node = NodeInfo.model_validate_json(raw)
        return Owner(node.node_id, node.public_url)
