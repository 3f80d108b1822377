"""Lifecycle rules, timers and limits, seen from a client of real recorderd processes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from tests.support.api import PREFIX, call, wait_status
from tests.support.daemon import Daemon, run_daemon
from tests.support.flush import flush_keeping_epochs
from tests.support.media import probe
from tests.support.publisher import WhipPublisher


@pytest.fixture(scope="module")
def nodes(redis_url: str) -> Iterator[tuple[Daemon, Daemon]]:
    """Two nodes on one Redis, with a short no-media timeout."""
    settings: dict[str, Any] = {"max_concurrent": 10, "max_per_user": 3, "max_per_room": 1,
                "no_media_timeout_seconds": 2, "max_pause_seconds": 2,
                "cpu_capacity": 100}  # the limits under test, not this box's cores
    with run_daemon(redis_url, **settings) as a, run_daemon(redis_url, **settings) as b:
        yield a, b


@pytest.fixture
async def clean_redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    r = aioredis.from_url(redis_url, decode_responses=True)
    await flush_keeping_epochs(r)
    yield r
    await r.aclose()


async def start_burst(nodes: tuple[Daemon, Daemon], starts: list[tuple[str, str]]) -> list[int]:
    """Start (user, room) pairs all at once, alternating between the nodes; return statuses."""
    async with aiohttp.ClientSession() as http:
        async def one(i: int, user: str, room: str) -> int:
            node = nodes[i % 2]
            async with http.post(f"{node.url}/api/webrtc/rooms/{room}/recording/start",
                                 headers=node.headers(user)) as resp:
                if resp.status == 429:
                    body = await resp.json()
                    assert resp.headers["Content-Type"].startswith("application/problem+json")
                    assert "Retry-After" in resp.headers
                    return -1 if body["limit"] == "max_concurrent" else (
                        -2 if body["limit"] == "max_per_user" else -3)
                return resp.status
        return await asyncio.gather(*(one(i, u, r) for i, (u, r) in enumerate(starts)))


async def test_limits_hold_under_a_burst_over_two_nodes(
    nodes: tuple[Daemon, Daemon], clean_redis: aioredis.Redis
) -> None:
    # 20 users in 20 rooms: the global limit (10) admits exactly 10.
    codes = await start_burst(nodes, [(f"u{i}", f"r{i}") for i in range(20)])
    assert (codes.count(201), codes.count(-1)) == (10, 10), codes
    keys = [key async for key in clean_redis.scan_iter(match=f"{PREFIX}state:*")]
    stored = [json.loads(raw) for raw in await clean_redis.mget(keys) if raw is not None]
    assert len(stored) == 10  # the refused ones wrote nothing
    # On a slow box the first ones may have failed for no media (2 s) meanwhile: only
    # those have left the active set.
    assert {s["recording_id"] for s in stored if s["status"] != "failed"} == \
        await clean_redis.smembers(f"{PREFIX}active")
    await flush_keeping_epochs(clean_redis)
    # One user in 20 rooms: max_per_user (3).
    codes = await start_burst(nodes, [("solo", f"room-{i}") for i in range(20)])
    assert (codes.count(201), codes.count(-2)) == (3, 17), codes
    await flush_keeping_epochs(clean_redis)
    # 20 users in one room: max_per_room (1), named before the others.
    codes = await start_burst(nodes, [(f"v{i}", "one-room") for i in range(20)])
    assert (codes.count(201), codes.count(-3)) == (1, 19), codes


async def test_no_media_fails_a_pending_recording_and_frees_its_slot(
    nodes: tuple[Daemon, Daemon], clean_redis: aioredis.Redis
) -> None:
    node = nodes[0]
    headers = node.headers("lonely")
    async with aiohttp.ClientSession() as http:
        state = await call(http, "POST", f"{node.url}/api/webrtc/rooms/empty/recording/start",
                           headers, 201)
        base = f"{node.url}/api/webrtc/rooms/empty/recording/{state['recording_id']}"
        # (the earlier tests' recordings may still be pending: the nodes write back what
        # they run after a flush, so only this one's membership is checked)
        assert state["recording_id"] in await clean_redis.smembers(f"{PREFIX}active")
        final = await wait_status(http, base, headers, {"failed"}, within=15)
        assert "no media" in final["error"]
        assert state["recording_id"] not in await clean_redis.smembers(f"{PREFIX}active")
        # The slot is free again.
        await call(http, "POST", f"{node.url}/api/webrtc/rooms/empty/recording/start",
                   headers, 201)


async def test_invalid_transitions_answer_409_and_change_nothing(
    nodes: tuple[Daemon, Daemon], clean_redis: aioredis.Redis
) -> None:
    node = nodes[1]
    headers = node.headers("u-409")
    async with aiohttp.ClientSession() as http:
        state = await call(http, "POST", f"{node.url}/api/webrtc/rooms/r409/recording/start",
                           headers, 201)
        rid = state["recording_id"]
        base = f"{node.url}/api/webrtc/rooms/r409/recording/{rid}"
        before = await clean_redis.get(f"{PREFIX}state:{rid}")
        for action in ("pause", "resume"):
            async with http.post(f"{base}/{action}", headers=headers) as resp:
                assert resp.status == 409
                body = await resp.json()
                assert body["status"] == 409
                assert "pending" in body["detail"]
        assert await clean_redis.get(f"{PREFIX}state:{rid}") == before
        # Another user's token: 403; wrong room: 404; unknown id: 404.
        other = node.headers("someone-else")
        async with http.post(f"{base}/stop", headers=other) as resp:
            assert resp.status == 403
        wrong_room = f"{node.url}/api/webrtc/rooms/elsewhere/recording/{rid}/stop"
        async with http.post(wrong_room, headers=headers) as resp:
            assert resp.status == 404
        async with http.post(f"{node.url}/api/webrtc/rooms/r409/recording/nope/stop",
                             headers=headers) as resp:
            assert resp.status == 404
        assert await clean_redis.get(f"{PREFIX}state:{rid}") == before
        # Stop before any media cancels; a second stop is 409.
        assert (await call(http, "POST", f"{base}/stop", headers, 200))["status"] == "cancelled"
        await call(http, "POST", f"{base}/stop", headers, 409)


async def test_max_duration_stops_the_recording_with_its_reason(
    nodes: tuple[Daemon, Daemon], clean_redis: aioredis.Redis
) -> None:
    node = nodes[0]
    room = "timed"
    headers = node.headers("timer-user")
    async with WhipPublisher(f"{node.url}/whip/{room}", headers["Authorization"][7:],
                             video=(640, 360), fps=15), aiohttp.ClientSession() as http:
        state = await call(http, "POST", f"{node.url}/api/webrtc/rooms/{room}/recording/start",
                           headers, 201, json={"max_duration_seconds": 2, "quality": "low"})
        base = f"{node.url}/api/webrtc/rooms/{room}/recording/{state['recording_id']}"
        final = await wait_status(http, base, headers, {"completed", "failed"}, within=30)
    assert final["status"] == "completed", final
    assert final["stop_reason"] == "max_duration"
    info = probe(node.storage / final["recording_id"] / final["file_name"])
    assert abs(info.duration - 2.0) < 0.5, info
    stored = json.loads(await clean_redis.get(f"{PREFIX}state:{state['recording_id']}") or "null")
    assert stored["status"] == "completed"


async def test_a_long_pause_stops_the_recording_and_keeps_the_file(
    nodes: tuple[Daemon, Daemon], clean_redis: aioredis.Redis
) -> None:
    node = nodes[1]
    room = "paused-too-long"
    headers = node.headers("pauser")
    async with WhipPublisher(f"{node.url}/whip/{room}", headers["Authorization"][7:],
                             video=(640, 360), fps=15), aiohttp.ClientSession() as http:
        state = await call(http, "POST", f"{node.url}/api/webrtc/rooms/{room}/recording/start",
                           headers, 201, params={"quality": "low"})
        base = f"{node.url}/api/webrtc/rooms/{room}/recording/{state['recording_id']}"
        await wait_status(http, base, headers, {"recording"})
        await asyncio.sleep(1.5)
        await call(http, "POST", f"{base}/pause", headers, 200)
        final = await wait_status(http, base, headers, {"completed", "failed"}, within=30)
    assert final["status"] == "completed", final
    assert final["stop_reason"] == "max_pause"
    assert (final["paused_seconds"]) >= 2
    info = probe(node.storage / final["recording_id"] / final["file_name"])
    assert abs(info.duration - 1.5) < 0.5, info


async def test_a_publisher_that_leaves_ends_the_recording_with_no_media(
    nodes: tuple[Daemon, Daemon], clean_redis: aioredis.Redis
) -> None:
    node = nodes[0]
    room = "left-alone"
    headers = node.headers("leaver")
    async with aiohttp.ClientSession() as http:
        async with WhipPublisher(f"{node.url}/whip/{room}", headers["Authorization"][7:],
                                 video=(640, 360), fps=15):
            state = await call(http, "POST",
                               f"{node.url}/api/webrtc/rooms/{room}/recording/start",
                               headers, 201, params={"quality": "low"})
            base = f"{node.url}/api/webrtc/rooms/{room}/recording/{state['recording_id']}"
            await wait_status(http, base, headers, {"recording"})
            await asyncio.sleep(2)
        # The publisher is gone (WHIP DELETE): no frame from any source for 2 s.
        final = await wait_status(http, base, headers, {"completed", "failed"}, within=30)
    assert final["status"] == "completed", final
    assert final["stop_reason"] == "no_media"
    info = probe(node.storage / final["recording_id"] / final["file_name"])
    assert info.duration >= 1.5, info
