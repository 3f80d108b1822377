"""End to end: two nodes, twenty starts at once while the primary fails over. No moment lets
more than max_concurrent recordings in: not in the answers, not in the store's active set,
not in the nodes' own counts (docs/operations.md, "When the store fails")."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from tests.store.test_failover import MASTER, primary_port, sentinels_ready
from tests.support.api import PREFIX, WAIT_SECONDS, metrics
from tests.support.daemon import Daemon, run_daemon
from tests.support.redis_processes import sentinel_group

MAX_CONCURRENT = 5
STARTS = 20


async def start_until_answered(http: aiohttp.ClientSession, node: Daemon, i: int) -> int:
    """One start, tried again while the store answers 503 (its outage, its restore gate)."""
    url = f"{node.url}/api/webrtc/rooms/room-{i}/recording/start"
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        async with http.post(url, headers=node.headers(f"user-{i}")) as resp:
            if resp.status != 503:
                return resp.status
            retry = int(resp.headers["Retry-After"])
        assert time.monotonic() < deadline, "the store never came back"
        await asyncio.sleep(min(retry, 1) / 4)


async def test_starts_across_a_failover_never_exceed_the_limit() -> None:
    settings: dict[str, Any] = {"max_concurrent": MAX_CONCURRENT, "max_per_user": 100,
                                "max_per_room": 1, "no_media_timeout_seconds": 600,
                                "cpu_capacity": 100, "heartbeat_seconds": 1}
    with sentinel_group(MASTER) as (primary, replica, sentinels):
        await sentinels_ready(sentinels[0])
        where = ",".join(f"127.0.0.1:{s.port}" for s in sentinels)
        with run_daemon("embedded", redis_sentinels=where, **settings) as one, \
                run_daemon("embedded", redis_sentinels=where, **settings) as two:
            nodes = (one, two)
            async with aiohttp.ClientSession() as http:
                # half of them race the kill, the other half arrive during the failover
                starts = [asyncio.create_task(start_until_answered(http, nodes[i % 2], i))
                          for i in range(STARTS // 2)]
                await asyncio.to_thread(primary.kill)
                starts += [asyncio.create_task(start_until_answered(http, nodes[i % 2], i))
                           for i in range(STARTS // 2, STARTS)]
                codes = await asyncio.gather(*starts)
                assert await primary_port(sentinels[0]) == replica.port
                counts = [(await metrics(http, node)).get("recorder_active_recordings", 0.0)
                          for node in nodes]
            store = aioredis.Redis(port=replica.port, decode_responses=True)
            try:
                active = await store.smembers(f"{PREFIX}active")
            finally:
                await store.aclose()

    assert set(codes) <= {201, 429}, codes
    assert codes.count(201) <= MAX_CONCURRENT, codes
    assert sum(counts) <= MAX_CONCURRENT, counts
    assert len(active) <= MAX_CONCURRENT, active
