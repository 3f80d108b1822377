"""Live-status streams (`GET .../recording/{id}/events`) against a real recorderd on real
Redis (docs/security.md, "Live-status streams").

Before: every stream took a Redis connection of its own, so one user's 150 streams took the
client's pool of 100 and every other caller of the store got "Too many connections"; and a
client that went away logged a traceback. Now one user holds at most
RECORDER_MAX_WATCHERS_PER_USER streams (429 past it), every stream of a node shares one
subscription, ownership is checked before any slot is taken, and a departing client is one
debug line.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from tests.support.api import call
from tests.support.daemon import Daemon, run_daemon
from tests.support.limits import check_429, eventually, refused

PREFIX = "webrtc:recording:"
FLOOD = 150
CAP = 8


def room_url(daemon: Daemon, room: str) -> str:
    return f"{daemon.url}/api/webrtc/rooms/{room}"


async def next_message(resp: aiohttp.ClientResponse) -> tuple[str, dict[str, Any]]:
    """The next `event:`/`data:` message of a stream (keep-alive comments skipped)."""
    event, data = "", ""
    while True:
        line = (await resp.content.readline()).decode()
        assert line, "the stream ended"
        line = line.rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif not line and event:
            return event, json.loads(data)


async def open_watch(http: aiohttp.ClientSession, url: str,
                     headers: dict[str, str]) -> aiohttp.ClientResponse:
    resp = await http.get(url, headers=headers)
    if resp.status == 200:
        event, state = await next_message(resp)
        assert event == "state", event
        assert state["status"] == "pending", state
    return resp


async def start(http: aiohttp.ClientSession, daemon: Daemon, room: str,
                headers: dict[str, str]) -> str:
    state = await call(http, "POST", f"{room_url(daemon, room)}/recording/start", headers, 201)
    recording_id: str = state["recording_id"]
    return f"{room_url(daemon, room)}/recording/{recording_id}"


async def test_one_user_s_watcher_flood_is_capped_while_others_keep_working(
        redis_url: str, redis_client: aioredis.Redis) -> None:
    with run_daemon(redis_url, no_media_timeout_seconds=600, max_per_room=5,
                    room_isolation="inline") as daemon:
        flooder = daemon.headers("flooder")
        admin = daemon.headers("app-backend", "admin")
        bystander = daemon.headers("bystander")
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as http:
            base = await start(http, daemon, "flood", flooder)
            before = await refused(http, daemon, "max_watchers_per_user")
            streams = await asyncio.gather(
                *(open_watch(http, f"{base}/events", flooder) for _ in range(FLOOD)))
            admitted = [r for r in streams if r.status == 200]
            for resp in streams:
                if resp.status != 200:
                    await check_429(resp, "max_watchers_per_user")
                    resp.release()
            assert len(admitted) == CAP
            after = await refused(http, daemon, "max_watchers_per_user")
            assert after == before + FLOOD - CAP
            assert await redis_client.hlen(f"{PREFIX}watchers:flooder") == CAP
            # an application's backend (admin) is spared: 120 more streams on the node
            spared = await asyncio.gather(
                *(open_watch(http, f"{base}/events", admin) for _ in range(120)))
            assert [r.status for r in spared] == [200] * 120
            # the store still serves everyone else, and the node keeps beating
            other = await start(http, daemon, "elsewhere", bystander)
            await call(http, "GET", f"{other}/status", bystander, 200)
            node_key = f"{PREFIX}node:test-node:{daemon.url.rsplit(':', 1)[1]}"
            assert await redis_client.pttl(node_key) > 0
            clients = (await redis_client.info("clients"))["connected_clients"]
            open_streams = len(admitted) + len(spared)
            assert clients < open_streams, clients  # one subscription, not one per stream
            for resp in admitted:
                resp.close()
            await eventually(lambda: _gone(redis_client, f"{PREFIX}watchers:flooder"),
                             "the closed streams gave their slots back")
            again = await open_watch(http, f"{base}/events", flooder)
            assert again.status == 200
            await call(http, "DELETE", base, flooder, 200)
            event, message = await next_message(again)
            assert event == "recording_cancelled", (event, message)
            assert all([await next_message(r) for r in spared[:3]])
            for resp in (again, *spared):
                resp.close()
        await eventually(lambda: _gone(redis_client, f"{PREFIX}watchers:flooder"),
                         "the last stream gave its slot back")
        log = daemon.log()
        assert "Traceback" not in log
        assert "open files: soft limit" in log  # raised to the hard limit at start


async def _gone(client: aioredis.Redis, key: str) -> bool:
    return await client.exists(key) == 0


async def test_who_may_watch_is_checked_before_a_slot_is_taken(
        redis_url: str, redis_client: aioredis.Redis) -> None:
    with run_daemon(redis_url, no_media_timeout_seconds=600, max_watchers_per_user=1,
                    room_isolation="inline") as daemon:
        owner = daemon.headers("owner")
        async with aiohttp.ClientSession() as http:
            base = await start(http, daemon, "private", owner)
            unknown = f"{room_url(daemon, 'private')}/recording/no-such-recording/events"
            cases = [(daemon.headers("stranger"), f"{base}/events", 403),
                     (daemon.headers("owner", rooms=["other"]), f"{base}/events", 403),
                     (daemon.headers("owner", rooms=["other"]), unknown, 403),
                     (owner, unknown, 404)]
            for headers, url, expected in cases:
                for _ in range(3):  # over the cap, had any of them taken a slot
                    async with http.get(url, headers=headers) as resp:
                        assert resp.status == expected, (url, await resp.text())
            assert await redis_client.exists(f"{PREFIX}watchers:owner",
                                             f"{PREFIX}watchers:stranger") == 0
            stream = await open_watch(http, f"{base}/events", owner)
            assert stream.status == 200
            stream.close()


async def test_a_watcher_that_goes_away_is_one_debug_line(
        redis_url: str, redis_client: aioredis.Redis) -> None:
    with run_daemon(redis_url, no_media_timeout_seconds=600, room_isolation="inline",
                    extra_env={"RECORDER_LOG_LEVEL": "DEBUG"}) as daemon:
        owner = daemon.headers("leaver")
        async with aiohttp.ClientSession() as http:
            base = await start(http, daemon, "leaving", owner)
            stays = await open_watch(http, f"{base}/events", owner)
            async with aiohttp.ClientSession() as other:
                leaves = await open_watch(other, f"{base}/events", owner)
                assert leaves.status == 200
            # the client is gone; the next change is written to a closed connection
            await call(http, "POST", f"{base}/stop", owner, 200)
            event, message = await next_message(stays)
            assert (event, message["status"]) == ("recording_cancelled", "cancelled")
            stays.close()
            await eventually(lambda: _gone(redis_client, f"{PREFIX}watchers:leaver"),
                             "both streams gave their slots back")
        log = daemon.log()
        assert "a watcher of leaver went away" in log, log[-3000:]
        assert "Traceback" not in log, log[-3000:]
        assert " ERROR " not in log, log[-3000:]
