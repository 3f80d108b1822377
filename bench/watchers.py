"""Redis connections a node uses for many live-status streams: ``python -m bench.watchers``.

Starts a real recorderd on a fresh redis-server (both on 127.0.0.1), has `--users` users start
one recording each (no media: they stay `pending`) and open `--per-user` live-status streams
each (RECORDER_MAX_WATCHERS_PER_USER is set to that), `--burst` requests at a time, checks
that every stream got its first `event: state`, and prints Redis' `connected_clients` before
and with every stream open, and the peak while they were opening. Every stream of the node
shares one subscription: the count depends on the burst (the client pool grows to the
requests in flight, 100 at most), not on the number of streams.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from tests.support.daemon import run_daemon
from tests.support.redis_server import redis_server


async def _clients(client: aioredis.Redis) -> int:
    return int((await client.info("clients"))["connected_clients"])


async def _watch(http: aiohttp.ClientSession, url: str, headers: dict[str, str],
                 stack: AsyncExitStack) -> None:
    resp = await stack.enter_async_context(http.get(url, headers=headers))
    assert resp.status == 200, (resp.status, await resp.text())
    first = await resp.content.readline()
    assert first == b"event: state\n", first


async def _run(redis_url: str, users: int, per_user: int, burst: int) -> None:
    settings: dict[str, Any] = {"max_watchers_per_user": per_user, "max_per_room": users + 1,
                "max_concurrent": users + 1, "no_media_timeout_seconds": 3600,
                "room_isolation": "inline", "starts_per_user_per_minute": 10,
                "cpu_capacity": 100000}
    client = aioredis.from_url(redis_url, decode_responses=True)
    with run_daemon(redis_url, **settings) as daemon:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as http, \
                AsyncExitStack() as stack:
            idle = await _clients(client)
            base = f"{daemon.url}/api/webrtc/rooms/bench"
            targets = []
            for n in range(users):
                headers = daemon.headers(f"bench-user-{n}")
                async with http.post(f"{base}/recording/start", headers=headers) as resp:
                    assert resp.status == 201, await resp.text()
                    rid = (await resp.json())["recording_id"]
                targets += [(f"{base}/recording/{rid}/events", headers)] * per_user
            peak = 0
            for i in range(0, len(targets), burst):
                await asyncio.gather(*(_watch(http, url, headers, stack)
                                       for url, headers in targets[i:i + burst]))
                peak = max(peak, await _clients(client))
            held = await _clients(client)
            print(f"streams open: {len(targets)} ({users} users x {per_user})")
            print(f"redis connected_clients: {idle} before, {held} with every stream open, "
                  f"{peak} at most while opening (bursts of {burst}; this script's own "
                  f"connection included)")
    await client.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.watchers", description=__doc__)
    parser.add_argument("--users", type=int, default=125)
    parser.add_argument("--per-user", type=int, default=8)
    parser.add_argument("--burst", type=int, default=50)
    args = parser.parse_args(argv)
    with redis_server() as url:
        asyncio.run(_run(url, args.users, args.per_user, args.burst))
    return 0


if __name__ == "__main__":
    sys.exit(main())
