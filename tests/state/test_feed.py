"""The node's one subscription to `{prefix}events`, fanned out to live-status streams
(docs/security.md, "Live-status streams"), on real Redis and on the embedded store."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from recorder.core.errors import LimitReached
from recorder.core.models import Status
from recorder.state import KeySpace, StateStore, StatusEvent
from recorder.state.feed import QUEUE_SIZE, EventFeed
from recorder.state.slots import WATCHERS


def event(recording_id: str, status: Status = Status.PAUSED) -> str:
    return StatusEvent(type=f"recording_{status.value}", recording_id=recording_id,
                       room_id="room", user_id="u", status=status,
                       at="2026-12-05T00:00:00Z").model_dump_json()


async def test_streams_share_one_subscription_and_get_only_their_recording(
        store: StateStore, raw: aioredis.Redis, keys: KeySpace) -> None:
    feed = EventFeed(raw, keys, store.slots, "node-1", 8)
    [(_, others)] = await raw.pubsub_numsub(keys.events())  # the embedded store is shared
    async with feed.watch("u", "rec-a") as a1, feed.watch("u", "rec-a") as a2, \
            feed.watch(None, "rec-b") as b:
        assert await raw.hlen(keys.slots(WATCHERS, "u")) == 2  # the admin (None) holds none
        await raw.publish(keys.events(), "not json")  # skipped, not fatal
        await raw.publish(keys.events(), event("rec-b", Status.RECORDING))
        await raw.publish(keys.events(), event("rec-a"))
        for sub in (a1, a2):
            got = await sub.next_event(10)
            assert got is not None
            assert got.recording_id == "rec-a"
        got = await b.next_event(10)
        assert got is not None
        assert (got.recording_id, got.status) == ("rec-b", Status.RECORDING)
        channels = await raw.pubsub_numsub(keys.events())
        assert channels == [(keys.events(), others + 1)]
    assert await raw.exists(keys.slots(WATCHERS, "u")) == 0
    await feed.close()


async def test_the_user_s_cap_is_claimed_before_subscribing(
        store: StateStore, raw: aioredis.Redis, keys: KeySpace) -> None:
    feed = EventFeed(raw, keys, store.slots, "node-1", 1)
    async with feed.watch("u", "rec-a"):
        with pytest.raises(LimitReached) as refused:
            async with feed.watch("u", "rec-a"):
                raise AssertionError("a second stream was admitted")
        assert refused.value.limit == "max_watchers_per_user"
        assert feed.watchers == 1
    async with feed.watch("u", "rec-a"):
        assert feed.watchers == 1
    await feed.close()


async def test_a_stream_that_falls_behind_is_ended_not_grown(
        store: StateStore, raw: aioredis.Redis, keys: KeySpace) -> None:
    feed = EventFeed(raw, keys, store.slots, "node-1", 8)
    async with feed.watch("u", "rec-slow") as slow, feed.watch("u", "rec-other") as other:
        for _ in range(QUEUE_SIZE + 1):
            await raw.publish(keys.events(), event("rec-slow"))
        await raw.publish(keys.events(), event("rec-other"))
        assert await other.next_event(10) is not None  # dispatched after the overflow
        assert slow.ended is not None
        assert "behind" in slow.ended
        assert await slow.next_event(10) is None
        assert other.ended is None
    await feed.close()


async def test_closing_ends_every_stream_at_once(
        store: StateStore, raw: aioredis.Redis, keys: KeySpace) -> None:
    feed = EventFeed(raw, keys, store.slots, "node-1", 8)
    async with feed.watch("u", "rec-a") as sub:
        waiting = asyncio.create_task(sub.next_event(3600))
        await asyncio.sleep(0)
        await feed.close()
        assert await waiting is None
        assert sub.ended is not None
    assert await raw.exists(keys.slots(WATCHERS, "u")) == 0
