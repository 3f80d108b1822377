"""A store that restarted empty lost the upload stream's consumer group: a consumer's next
read makes it again and carries on (docs/operations.md, "When the store fails")."""

from __future__ import annotations

import redis.asyncio as aioredis

from recorder.state import KeySpace
from recorder.state.jobs import UploadQueue


async def test_a_lost_consumer_group_is_made_again(raw: aioredis.Redis, keys: KeySpace) -> None:
    queue = UploadQueue(raw, keys, "node-a")
    await queue.ensure_group()
    await raw.flushall()
    assert await queue.claim_stale("worker-1", 1000) is None
    assert await queue.read("worker-1", 10) is None
    await queue.enqueue("rec-1")
    got = await queue.read("worker-1", 10)
    assert got is not None
    assert got[1] is not None
    assert got[1].recording_id == "rec-1"
