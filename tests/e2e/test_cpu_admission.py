"""CPU admission (docs/media.md): a node refuses live work it could not encode in real time.

Prices per recording are recorder/core/cpu.py's (medium composite with one publisher: 0.62
cores; low: 0.42; each further transcoded publisher: 0.17; ultra: over 8).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from tests.support.api import PREFIX, call
from tests.support.daemon import Daemon, run_daemon
from tests.support.publisher import WhipError, WhipPublisher


async def refused(http: aiohttp.ClientSession, daemon: Daemon, room: str,
                  body: dict[str, Any]) -> dict[str, Any]:
    async with http.post(f"{daemon.url}/api/webrtc/rooms/{room}/recording/start",
                         headers=daemon.headers("user-cpu"), json=body) as resp:
        problem: dict[str, Any] = await resp.json(content_type=None)
        assert resp.status == 429, problem
        assert resp.content_type == "application/problem+json"
        assert int(resp.headers["Retry-After"]) > 0
        return problem


async def test_starts_beyond_the_cpu_capacity_get_429_cpu(redis_url: str) -> None:
    with run_daemon(redis_url, cpu_capacity=1, max_per_user=10,
                    heartbeat_seconds=0.2) as daemon:
        headers = daemon.headers("user-cpu")
        api = f"{daemon.url}/api/webrtc/rooms"
        async with aiohttp.ClientSession() as http:
            first = await call(http, "POST", f"{api}/cpu-a/recording/start", headers, 201,
                               json={"quality": "medium"})
            # the node's heartbeat tells other nodes and operators what it spends
            node_key = f"{PREFIX}node:{first['node_id']}"
            async with aioredis.from_url(redis_url) as r:
                for _ in range(200):  # a few heartbeats
                    node = json.loads(await r.get(node_key) or "{}")
                    if node.get("cpu_used"):
                        break
                    await asyncio.sleep(0.05)
            assert (node["cpu_used"], node["cpu_capacity"]) == (0.62, 1)
            assert (await refused(http, daemon, "cpu-b", {"quality": "medium"}))["limit"] == "cpu"
            assert (await refused(http, daemon, "cpu-b", {"quality": "low"}))["limit"] == "cpu"
            # a live ultra recording needs more than this node has, even when idle
            await call(http, "POST", f"{api}/cpu-a/recording/{first['recording_id']}/stop",
                       headers, 200)
            problem = await refused(http, daemon, "cpu-c", {"quality": "ultra"})
            assert problem["limit"] == "cpu"
            assert "cpu" in problem["detail"]
            # the refused starts left nothing behind: the freed capacity takes a new one
            await call(http, "POST", f"{api}/cpu-b/recording/start", headers, 201,
                       json={"quality": "medium"})
            listed = await call(http, "GET", f"{api}/cpu-c/recordings", headers, 200)
            assert listed["count"] == 0


async def test_a_publisher_that_would_overload_a_live_composite_gets_503(
    redis_url: str,
) -> None:
    with run_daemon(redis_url, cpu_capacity=0.7) as daemon:
        headers = daemon.headers("user-cpu")
        token = headers["Authorization"][7:]
        whip = f"{daemon.url}/whip/cpu-room"
        async with aiohttp.ClientSession() as http:
            await call(http, "POST", f"{daemon.url}/api/webrtc/rooms/cpu-room/recording/start",
                       headers, 201, json={"quality": "medium"})
            # the first publisher is the one the recording was priced with
            async with WhipPublisher(whip, token, video=(320, 180), fps=10):
                with pytest.raises(WhipError) as second:
                    async with WhipPublisher(whip, token, video=(320, 180), fps=10):
                        pass
            assert second.value.status == 503, second.value
            assert "CPU capacity" in second.value.body
