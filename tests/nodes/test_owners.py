"""Room ownership and the active set's reconciliation on a real Redis (docs/operations.md)."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime

import redis.asyncio as aioredis

from recorder.core.limits import Limits
from recorder.state import KeySpace, NodeInfo, StateStore
from recorder.state.jobs import UploadQueue
from recorder.state.orphans import OrphanIndex
from recorder.state.owners import Owner, RoomOwners
from tests.support.states import make_state


def beat(node_id: str) -> NodeInfo:
    return NodeInfo(node_id=node_id, public_url=f"http://{node_id}", pid=os.getpid(),
                    started_at=datetime.now(UTC))


async def test_a_room_has_one_live_owner(redis_client: aioredis.Redis) -> None:
    keys = KeySpace(f"owners-{uuid.uuid4().hex[:8]}:")
    store = StateStore(redis_client, keys, 60, 60)
    a = RoomOwners(redis_client, keys, "node-a", 30)
    b = RoomOwners(redis_client, keys, "node-b", 30)
    await store.heartbeat(beat("node-a"), 10)
    await store.heartbeat(beat("node-b"), 10)

    assert await a.claim("r1") is None  # first claim wins
    assert await b.claim("r1") == Owner("node-a", "http://node-a")
    assert await b.owner("r1") == Owner("node-a", "http://node-a")
    assert await a.owner("r1") is None  # its own room
    assert 0 < await redis_client.pttl(keys.room_owner("r1")) <= 30_000
    assert not await b.release("r1")  # not b's to give up
    assert await redis_client.get(keys.room_owner("r1")) == "node-a"

    await redis_client.delete(keys.node("node-a"))  # node-a missed three heartbeats
    assert await b.owner("r1") is None
    assert await b.claim("r1") is None  # a dead owner's room is claimed
    assert await redis_client.get(keys.room_owner("r1")) == "node-b"
    assert await b.release("r1")
    assert await redis_client.get(keys.room_owner("r1")) is None


async def test_active_keeps_only_active_states(redis_client: aioredis.Redis) -> None:
    keys = KeySpace(f"orphans-{uuid.uuid4().hex[:8]}:")
    store = StateStore(redis_client, keys, 60, 60)
    index = OrphanIndex(redis_client, keys)
    live = await store.admit(make_state(), Limits(5, 5, 5))
    gone = await store.admit(make_state(), Limits(5, 5, 5))
    await redis_client.delete(keys.state(gone.recording_id))  # its state expired
    states = await index.states(sorted(await store.active_ids()))
    assert await index.reconcile_active(states) == [gone.recording_id]
    assert await store.active_ids() == {live.recording_id}


async def test_upload_queue_age_is_the_oldest_entry(redis_client: aioredis.Redis) -> None:
    keys = KeySpace(f"age-{uuid.uuid4().hex[:8]}:")
    queue = UploadQueue(redis_client, keys, "node-a")
    assert await queue.oldest_age() == 0
    await redis_client.xadd(queue.key, {"recording_id": "r"}, id="1000-0")  # in 1970
    assert await queue.oldest_age() > 1e9
