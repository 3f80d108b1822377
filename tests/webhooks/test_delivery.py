"""Delivery against a real receiver and a real Redis: failures, timeouts, 429 Retry-After,
410, dead letters and replay, and a real `python -m workers` killed between attempts."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import redis.asyncio as aioredis

from recorder.core import lifecycle
from recorder.core.lifecycle import Action
from recorder.core.limits import Limits
from recorder.core.webhooks import RetrySchedule, WebhookRouting, parse_schedule, parse_secret
from recorder.state.store import StateStore
from tests.support.states import make_state
from tests.support.upload_servers import off_loop, run_worker
from tests.support.webhook_receiver import KEYS, SECRET, Receiver, record_events
from workers.outbox import WebhookOutbox
from workers.webhooks import WebhookDeliverer


@contextlib.asynccontextmanager
async def deliverer(redis: aioredis.Redis, url: str, schedule: str,
                    attempt_seconds: float = 5.0) -> AsyncIterator[WebhookOutbox]:
    """A worker delivering to `url` as the node's own RECORDER_WEBHOOK_URL."""
    outbox = WebhookOutbox(redis, KEYS)
    worker = WebhookDeliverer(outbox, parse_secret(SECRET), RetrySchedule(parse_schedule(schedule)),
                              routing=WebhookRouting(url), name="test",
                              timeout_seconds=attempt_seconds, consumers=2)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield outbox
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def test_receiver_down_for_the_first_attempts_gets_every_event(
        redis_client: aioredis.Redis) -> None:
    async with Receiver(plan=lambda n: 503 if n < 2 else None) as receiver:
        rid, expected = await record_events(redis_client, receiver.url)
        async with deliverer(redis_client, receiver.url, "0,1,2") as outbox:
            delivered = await receiver.wait_delivered(4)
            await asyncio.sleep(0.5)  # nothing more may come
        assert sorted(r.body["event"] for r in delivered) == sorted(expected)
        assert len(receiver.delivered()) == 4  # exactly once each
        for got in delivered:
            attempts = receiver.attempts(got.webhook_id)
            assert [a.status for a in attempts] == [503, 503, 200]
            assert all(a.verified for a in attempts)  # standardwebhooks' verifier
            # each attempt carries its own send time (the schedule waits 1 s, then 2 s)
            assert attempts[1].timestamp >= attempts[0].timestamp + 1
            assert attempts[2].timestamp >= attempts[1].timestamp + 2
            assert len({a.body["timestamp"] for a in attempts}) == 1  # when it happened
            assert got.body["data"]["recordingId"] == rid
        status = await outbox.status([receiver.url])
        assert status.queue.depth == 0
        assert status.dead == 0
        assert status.deliveries["delivered"] == 4


async def test_retry_after_is_respected(redis_client: aioredis.Redis) -> None:
    async with Receiver(plan=lambda n: ("retry-after", 3) if n == 0 else None) as receiver:
        store = StateStore(redis_client, KEYS, 3600, 3600,
                           webhooks=WebhookRouting(receiver.url))
        state = await store.admit(make_state(), Limits(10, 10, 10))
        await store.update(state.recording_id, lambda s: lifecycle.apply(
            s, Action.MEDIA_STARTED, datetime.now(UTC)))
        async with deliverer(redis_client, receiver.url, "0,1,1"):
            (got,) = await receiver.wait_delivered(1)
        first, second = receiver.attempts(got.webhook_id)
        assert first.status == 429
        assert second.arrived - first.arrived >= 2.9  # Retry-After 3 beat the schedule's 1


async def test_a_timed_out_attempt_is_retried_with_the_same_id(
        redis_client: aioredis.Redis) -> None:
    async with Receiver(plan=lambda n: ("sleep", 3) if n == 0 else None) as receiver:
        await record_events(redis_client, receiver.url)
        async with deliverer(redis_client, receiver.url, "0,1", attempt_seconds=1.0):
            delivered = await receiver.wait_delivered(4)
        for got in delivered:
            assert len(receiver.attempts(got.webhook_id)) == 2


async def test_410_disables_the_endpoint_until_replayed(redis_client: aioredis.Redis) -> None:
    gone = {"on": True}
    async with Receiver(plan=lambda n: 410 if gone["on"] else None) as receiver:
        _, expected = await record_events(redis_client, receiver.url)
        async with deliverer(redis_client, receiver.url, "0,1,2") as outbox:
            deadline = time.monotonic() + 60
            while (await outbox.status([])).dead < 4:
                assert time.monotonic() < deadline, receiver.requests
                await asyncio.sleep(0.1)
            # after the 410 nothing else was sent (beyond what the second consumer already
            # had in flight when it came)
            assert 1 <= len(receiver.requests) <= 2
            status = await outbox.status([])
            assert [(e.url, e.disabled, e.status) for e in status.endpoints] == [
                (receiver.url, True, 410)]
            assert {d.event for d in status.dead_letters} == set(expected)
            gone["on"] = False
            result = await outbox.replay()
            assert result.replayed == 4
            assert result.endpoints_enabled == [receiver.url]
            delivered = await receiver.wait_delivered(4)
        assert sorted(r.body["event"] for r in delivered) == sorted(expected)
        dead_ids = {d.id for d in status.dead_letters}
        assert {r.webhook_id for r in delivered} == dead_ids  # same webhook-ids
        after = await outbox.status([receiver.url])
        assert after.dead == 0
        assert not after.endpoints[0].disabled


async def test_attempts_run_out_into_dead_letters_then_replay(
        redis_client: aioredis.Redis) -> None:
    failing = {"on": True}
    async with Receiver(plan=lambda n: 500 if failing["on"] else None) as receiver:
        await record_events(redis_client, receiver.url)
        async with deliverer(redis_client, receiver.url, "0,1") as outbox:
            deadline = time.monotonic() + 60
            while (await outbox.status([])).dead < 4:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
            letters = (await outbox.status([])).dead_letters
            assert all(d.attempts == 2 for d in letters)
            assert all(d.last_status == 500 for d in letters)
            assert len(receiver.requests) == 8
            failing["on"] = False
            await outbox.replay()
            await receiver.wait_delivered(4)


async def test_worker_killed_between_attempts(redis_url: str, redis_client: aioredis.Redis,
                                              tmp_path: Path) -> None:
    async with Receiver(plan=lambda n: 500 if n == 0 else None) as receiver:
        store = StateStore(redis_client, KEYS, 3600, 3600,
                           webhooks=WebhookRouting(receiver.url))
        state = await store.admit(make_state(), Limits(10, 10, 10))
        await store.update(state.recording_id, lambda s: lifecycle.apply(
            s, Action.MEDIA_STARTED, datetime.now(UTC)))
        settings = {"webhook_url": receiver.url, "webhook_secret": SECRET,
                    "webhook_retry_schedule": "0,3,1"}
        storage = tmp_path / "recordings"
        storage.mkdir()
        async with off_loop(run_worker(redis_url, "node-w", storage, tmp_path,
                                       **settings)) as worker:
            deadline = time.monotonic() + 60
            while not receiver.requests:
                assert time.monotonic() < deadline, worker.log()
                await asyncio.sleep(0.05)
            await asyncio.to_thread(worker.kill)  # the retry now waits in Redis only
        assert len(receiver.requests) == 1
        async with off_loop(run_worker(redis_url, "node-w", storage, tmp_path, **settings)):
            (got,) = await receiver.wait_delivered(1)
        first = receiver.requests[0]
        assert got.webhook_id == first.webhook_id
        assert got.verified
        assert got.body == first.body
