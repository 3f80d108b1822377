"""Caps on what one user can make the cluster hold, and one node's rooms (docs/security.md,
"Caps"), against a real recorderd on real Redis with real WHIP publishers.

Before the caps, one user token got every WHIP session, every start and every room it asked
for; now each cap answers 429 naming itself (`detail` and `limit`) with Retry-After, the
refusal is counted in /metrics, admins are spared the per-user caps (not the node's), and a
slot comes back when its session ends, when a publisher never connects, and when its
node's heartbeat key expires.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from datetime import UTC, datetime

import aiohttp
import redis.asyncio as aioredis

from recorder.state import NodeInfo
from tests.e2e.test_drain import whip_offer
from tests.support.api import call
from tests.support.daemon import run_daemon
from tests.support.limits import check_429, eventually, post_offer, refused
from tests.support.publisher import WhipPublisher

PREFIX = "webrtc:recording:"
SMALL = (160, 96)


def start_url(url: str, room: str) -> str:
    return f"{url}/api/webrtc/rooms/{room}/recording/start"


async def test_publishers_per_user_are_capped_and_come_back_when_a_session_ends(
        redis_url: str, redis_client: aioredis.Redis) -> None:
    with run_daemon(redis_url, max_publishers_per_user=2, room_isolation="inline") as daemon:
        user = daemon.headers("pub-user")
        token = user["Authorization"][7:]
        admin_token = daemon.headers("app-backend", "admin")["Authorization"][7:]
        async with aiohttp.ClientSession() as http, AsyncExitStack() as stack:
            first = await stack.enter_async_context(
                WhipPublisher(f"{daemon.url}/whip/cap-a", token, SMALL))
            await stack.enter_async_context(
                WhipPublisher(f"{daemon.url}/whip/cap-b", token, SMALL))
            before = await refused(http, daemon, "max_publishers_per_user")
            offer_status, _ = await post_offer(http, daemon, "cap-c", user)
            assert offer_status == 429
            async with http.post(f"{daemon.url}/whip/cap-a", data=await whip_offer(),
                                 headers={**user, "Content-Type": "application/sdp"}) as resp:
                await check_429(resp, "max_publishers_per_user")
            assert await refused(http, daemon, "max_publishers_per_user") == before + 2
            assert await redis_client.hlen(f"{PREFIX}publishers:pub-user") == 2
            for room in ("cap-c", "cap-d", "cap-e"):  # admins act for many users
                await stack.enter_async_context(
                    WhipPublisher(f"{daemon.url}/whip/{room}", admin_token, SMALL))
            assert await redis_client.exists(f"{PREFIX}publishers:app-backend") == 0
            assert await first.delete() == 200
            async with WhipPublisher(f"{daemon.url}/whip/cap-c", token, SMALL):
                assert await redis_client.hlen(f"{PREFIX}publishers:pub-user") == 2
        await eventually(lambda: _empty(redis_client, f"{PREFIX}publishers:pub-user"),
                         "every publisher slot given back")


async def _empty(client: aioredis.Redis, key: str) -> bool:
    return await client.exists(key) == 0


async def test_a_publisher_that_never_connects_gives_its_slot_and_room_back(
        redis_url: str, redis_client: aioredis.Redis) -> None:
    with run_daemon(redis_url, max_publishers_per_user=1,
                    whip_connect_timeout_seconds=2) as daemon:
        user = daemon.headers("ghost-user")
        async with aiohttp.ClientSession() as http:
            status, body = await post_offer(http, daemon, "ghost-room", user)
            assert status == 201, body  # an answer, and then silence from the publisher
            async with http.post(f"{daemon.url}/whip/ghost-room-2", data=await whip_offer(),
                                 headers={**user, "Content-Type": "application/sdp"}) as resp:
                await check_429(resp, "max_publishers_per_user")
            await eventually(lambda: _empty(redis_client, f"{PREFIX}publishers:ghost-user"),
                             "the unconnected publisher's slot given back")
            await eventually(lambda: _logged(daemon.log, "room ghost-room: session closed"),
                             "the idle room closed")
            assert "not connected after 2 s" in daemon.log()
            token = user["Authorization"][7:]
            async with WhipPublisher(f"{daemon.url}/whip/ghost-room", token, SMALL):
                pass


async def _logged(log: object, text: str) -> bool:
    assert callable(log)
    return text in str(log())


async def test_a_dead_node_s_slots_stop_counting_when_its_heartbeat_key_expires(
        redis_url: str, redis_client: aioredis.Redis) -> None:
    key = f"{PREFIX}publishers:roaming-user"
    with run_daemon(redis_url, max_publishers_per_user=1, room_isolation="inline") as daemon:
        user = daemon.headers("roaming-user")
        # another node holds the user's one slot; its heartbeat key is about to expire
        other = NodeInfo(node_id="other-node:9", public_url="http://127.0.0.1:9", pid=1,
                         started_at=datetime.now(UTC), active=0, cpu_used=0, cpu_capacity=1)
        await redis_client.set(f"{PREFIX}node:other-node:9", other.model_dump_json(), px=1500)
        await redis_client.hset(key, "session-on-other-node", "other-node:9")
        async with aiohttp.ClientSession() as http:
            status, _ = await post_offer(http, daemon, "roam", user)
            assert status == 429
            await eventually(lambda: _empty(redis_client, f"{PREFIX}node:other-node:9"),
                             "the other node's heartbeat key expired")
            async with WhipPublisher(f"{daemon.url}/whip/roam", user["Authorization"][7:],
                                     SMALL):
                held = await redis_client.hgetall(key)
                node = f"test-node:{daemon.url.rsplit(':', 1)[1]}"
                assert list(held.values()) == [node], held


async def test_starts_per_user_per_minute(redis_url: str, redis_client: aioredis.Redis) -> None:
    with run_daemon(redis_url, starts_per_user_per_minute=3, max_per_user=1,
                    room_isolation="inline") as daemon:
        user = daemon.headers("burst-user")
        admin = daemon.headers("app-backend", "admin")
        async with aiohttp.ClientSession() as http:
            for _ in range(3):
                state = await call(http, "POST", start_url(daemon.url, "burst"), user, 201)
                base = f"{daemon.url}/api/webrtc/rooms/burst/recording/{state['recording_id']}"
                await call(http, "DELETE", base, user, 200)
            before = await refused(http, daemon, "start_rate")
            for _ in range(2):  # refused starts do not count against the next minute
                async with http.post(start_url(daemon.url, "burst"), headers=user) as resp:
                    problem = await check_429(resp, "start_rate")
                    assert int(resp.headers["Retry-After"]) <= 60, problem
            assert await refused(http, daemon, "start_rate") == before + 2
            assert await redis_client.zcard(f"{PREFIX}starts:burst-user") == 3
            for _ in range(4):  # admins (an application's backend) are spared
                state = await call(http, "POST", start_url(daemon.url, "burst"), admin, 201)
                await call(http, "DELETE", f"{daemon.url}/api/webrtc/rooms/burst/recording/"
                           f"{state['recording_id']}", admin, 200)
            other = await call(http, "POST", start_url(daemon.url, "burst"),
                               daemon.headers("calm-user"), 201)
            await call(http, "DELETE", f"{daemon.url}/api/webrtc/rooms/burst/recording/"
                       f"{other['recording_id']}", daemon.headers("calm-user"), 200)


async def test_the_first_failing_limit_is_named_in_order(redis_url: str) -> None:
    """The shared limits come before start_rate, and start_rate before max_rooms."""
    with run_daemon(redis_url, starts_per_user_per_minute=1, max_rooms=1,
                    room_isolation="inline") as daemon:
        user = daemon.headers("order-user")
        async with aiohttp.ClientSession() as http:
            await call(http, "POST", start_url(daemon.url, "order-1"), user, 201)
            async with http.post(start_url(daemon.url, "order-1"), headers=user) as resp:
                await check_429(resp, "max_per_room")  # start_rate fails too, but later
            async with http.post(start_url(daemon.url, "order-2"), headers=user) as resp:
                await check_429(resp, "start_rate")  # max_rooms fails too, but later
            admin = daemon.headers("app-backend", "admin")
            async with http.post(start_url(daemon.url, "order-2"), headers=admin) as resp:
                await check_429(resp, "max_rooms")


async def test_one_node_hosts_at_most_max_rooms(redis_url: str) -> None:
    with run_daemon(redis_url, max_rooms=2, max_per_room=3) as daemon:
        admin = daemon.headers("app-backend", "admin")
        token = admin["Authorization"][7:]
        async with aiohttp.ClientSession() as http, AsyncExitStack() as stack:
            for room in ("rooms-1", "rooms-2"):
                await stack.enter_async_context(
                    WhipPublisher(f"{daemon.url}/whip/{room}", token, SMALL))
            before = await refused(http, daemon, "max_rooms")
            offer = f"{daemon.url}/whip/rooms-3"
            async with http.post(offer, data=await whip_offer(),
                                 headers={**admin, "Content-Type": "application/sdp"}) as resp:
                await check_429(resp, "max_rooms")
            async with http.post(start_url(daemon.url, "rooms-3"), headers=admin) as resp:
                await check_429(resp, "max_rooms")
            assert await refused(http, daemon, "max_rooms") == before + 2
            # rooms the node already hosts take more publishers and recordings
            await stack.enter_async_context(
                WhipPublisher(f"{daemon.url}/whip/rooms-1", token, SMALL))
            await call(http, "POST", start_url(daemon.url, "rooms-2"), admin, 201)
