"""Outbound requests that users supply: a user token must not make the node call an internal
service, follow an upstream elsewhere, or read an upstream's answer back.

Against a real recorderd on real Redis, with real HTTP servers on 127.0.0.1: an "internal"
service holds a secret and must never see a request; upstreams redirect to it, point their
session URL at it, announce ICE servers on an internal address, or answer errors carrying a
secret. The webhook worker's own check at delivery is tested against a real receiver.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiortc import RTCIceServer

from recorder.core.urls import AllowList
from recorder.core.webhooks import RetrySchedule, WebhookRouting, parse_schedule, parse_secret
from recorder.outbound import Outbound
from recorder.rtc.links import allowed_ice_servers
from tests.support.daemon import Daemon, run_daemon
from tests.support.redis_server import free_port
from tests.support.resolver import MappedResolver
from tests.support.spy_server import Handler, Spy, spies
from tests.support.webhook_receiver import KEYS, Receiver, record_events
from tests.support.webhook_receiver import SECRET as WEBHOOK_SECRET
from tests.support.whep_server import TOKEN, WhepServer, serve_whep
from workers.outbox import WebhookOutbox
from workers.webhooks import WebhookDeliverer

SECRET = "AKIA-INTERNAL-SECRET-7f3a9c"  # what the internal service and the leaky upstream hold


async def metadata(request: web.Request) -> web.StreamResponse:
    return web.json_response({"AccessKeyId": SECRET, "Token": SECRET})


async def start(http: aiohttp.ClientSession, daemon: Daemon, room: str,
                body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with http.post(f"{daemon.url}/api/webrtc/rooms/{room}/recording/start",
                         headers=daemon.headers("attacker", rooms=[room]), json=body) as resp:
        return resp.status, await resp.json(content_type=None)


async def whep(http: aiohttp.ClientSession, daemon: Daemon, room: str,
               url: str) -> tuple[int, dict[str, Any]]:
    return await start(http, daemon, room, {"source": {"type": "whep", "url": url}})


# ---- default settings -------------------------------------------------------------------


async def test_with_the_default_empty_allow_list_no_whep_source_is_ever_tried(
        redis_url: str) -> None:
    async with spies(metadata) as [internal]:
        with run_daemon(redis_url) as daemon:
            async with aiohttp.ClientSession() as http:
                for url in (f"{internal.origin}/latest/meta-data", "http://0",
                            f"http://localhost:{internal.port}/x"):
                    status, problem = await whep(http, daemon, "closed", url)
                    assert status == 400, (url, problem)
                assert "RECORDER_PULL_ALLOWED_URLS is empty" in problem["detail"]
    assert internal.seen == []


# ---- one node, an allow-list, every trick --------------------------------------------------


def redirect_to(target: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=307, headers={"Location": target})
    return handler


async def leaky(request: web.Request) -> web.StreamResponse:
    return web.Response(status=500, text=f"stack trace... credentials={SECRET}",
                        headers={"X-Debug": SECRET})


@pytest.fixture
async def attack_stage(redis_url: str) -> AsyncIterator[tuple[Daemon, dict[str, Spy]]]:
    """internal (never allowed), redirector and liar (allowed without a path), leaky
    (allowed under /app), and `localhost` naming the internal service's port."""
    async with spies(metadata) as [internal]:
        redirect = redirect_to(f"{internal.origin}/latest/meta-data")

        async def liar(request: web.Request) -> web.StreamResponse:
            # 201 whose session URL is the internal service: never to be used or deleted
            return web.Response(status=201, text="v=0\r\n", content_type="application/sdp",
                                headers={"Location": f"{internal.origin}/session/1"})

        async with spies(redirect, leaky, liar) as [redirector, leak, lie]:
            allowed = ",".join([redirector.origin, f"{leak.origin}/app", lie.origin,
                                f"http://localhost:{internal.port}"])
            with run_daemon(redis_url, pull_allowed_urls=allowed,
                            webhook_allowed_urls=f"{redirector.origin}/hooks",
                            webhook_secret=WEBHOOK_SECRET) as daemon:
                yield daemon, {"internal": internal, "redirector": redirector, "leak": leak,
                               "liar": lie}


async def test_userinfo_host_suffix_and_unparseable_urls_are_400_and_never_tried(
        attack_stage: tuple[Daemon, dict[str, Spy]]) -> None:
    daemon, s = attack_stage
    allowed, internal = s["redirector"], s["internal"]
    tricks = [
        f"http://127.0.0.1:{allowed.port}@127.0.0.1:{internal.port}/latest",  # userinfo
        f"http://127.0.0.1:{allowed.port}@10.0.0.5/x",
        f"http://u@127.0.0.1:{allowed.port}/x",
        f"http://127.0.0.1:{allowed.port}.evil.example/x",  # host suffix
        f"https://127.0.0.1:{allowed.port}/x",  # another scheme
        f"http://127.0.0.2:{allowed.port}/x",  # another address
        f"http://[::ffff:127.0.0.1]:{internal.port}/x",  # the internal port, spelled as v6
        "http://0", "http://0/x", "http://[::1", f"http://127.0.0.1:{allowed.port}0/x",
        "http://:80/x", "http://127.1/x", "http://2130706433/x",
    ]
    async with aiohttp.ClientSession() as http:
        for url in tricks:
            status, problem = await whep(http, daemon, "tricks", url)
            assert status == 400, (url, problem)
        listed = await http.get(f"{daemon.url}/api/webrtc/rooms/tricks/recordings",
                                headers=daemon.headers("attacker", rooms=["tricks"]))
        assert (await listed.json())["count"] == 0  # nothing stored
    assert internal.seen == []
    assert allowed.seen == []


async def test_an_ipv4_mapped_literal_is_the_same_address_as_the_entry(
        attack_stage: tuple[Daemon, dict[str, Spy]]) -> None:
    daemon, s = attack_stage
    redirector = s["redirector"]
    async with aiohttp.ClientSession() as http:
        status, problem = await whep(http, daemon, "mapped",
                                     f"http://[::ffff:127.0.0.1]:{redirector.port}/whep")
    assert status == 502, problem  # allowed: it reached the redirector, which is refused
    assert redirector.seen == ["POST /whep"]


async def test_a_path_prefix_matches_whole_segments_only(
        attack_stage: tuple[Daemon, dict[str, Spy]]) -> None:
    daemon, s = attack_stage
    leak = s["leak"]
    async with aiohttp.ClientSession() as http:
        for path in ("/app2/whep", "/ap", "/", "/other/app/whep", "/app%2F..%2Fadmin",
                     "/App/whep"):
            status, problem = await whep(http, daemon, "paths", f"{leak.origin}{path}")
            assert status == 400, (path, problem)
        assert leak.seen == []
        for path in ("/app", "/app/whep/live"):
            status, problem = await whep(http, daemon, "paths", f"{leak.origin}{path}")
            assert status == 502, (path, problem)  # allowed: the leaky upstream answered 500
    assert leak.seen == ["POST /app", "POST /app/whep/live"]


@pytest.mark.parametrize(("upstream", "status", "detail"), [
    ("redirector", 307, "redirects are not followed"),  # its target is never reached
    ("liar", 201, "session URL that is not allowed"),  # a Location never used nor deleted
])
async def test_where_an_upstream_points_is_never_followed(
        attack_stage: tuple[Daemon, dict[str, Spy]], upstream: str, status: int,
        detail: str) -> None:
    daemon, s = attack_stage
    async with aiohttp.ClientSession() as http:
        answered, problem = await whep(http, daemon, upstream, f"{s[upstream].origin}/whep")
    assert answered == 502, problem
    assert problem["upstream_status"] == status
    assert detail in problem["detail"]
    assert s[upstream].seen[-1] == "POST /whep"
    assert s["internal"].seen == []  # no request, no PATCH, no DELETE
    assert SECRET not in json.dumps(problem)


async def test_an_upstreams_error_body_reaches_no_client_state_or_log(
        attack_stage: tuple[Daemon, dict[str, Spy]]) -> None:
    daemon, s = attack_stage
    room = "leak"
    async with aiohttp.ClientSession() as http:
        status, problem = await whep(http, daemon, room, f"{s['leak'].origin}/app/whep")
        assert status == 502, problem
        assert problem["upstream_status"] == 500
        assert problem["recording_id"]
        headers = daemon.headers("attacker", rooms=[room])
        async with http.get(f"{daemon.url}/api/webrtc/rooms/{room}/recording/"
                            f"{problem['recording_id']}/status", headers=headers) as resp:
            state = await resp.text()
        admin = daemon.headers("ops", role="admin")
        async with http.get(f"{daemon.url}/api/webrtc/rooms/{room}/recordings",
                            headers=admin) as resp:
            listed = await resp.text()
    assert '"failed"' in state
    assert s["leak"].seen == ["POST /app/whep"]
    for text in (json.dumps(problem), state, listed, daemon.log()):
        assert SECRET not in text




async def test_a_name_resolving_to_an_internal_address_is_refused_at_connect(
        attack_stage: tuple[Daemon, dict[str, Spy]]) -> None:
    daemon, s = attack_stage
    port = s["internal"].port
    async with aiohttp.ClientSession() as http:
        status, problem = await whep(http, daemon, "name", f"http://localhost:{port}/latest")
    assert status == 502, problem
    assert "address not allowed" in problem["detail"]
    assert "upstream_status" not in problem  # nothing answered: nothing was asked
    assert s["internal"].seen == []


async def test_a_webhook_url_outside_the_allow_list_is_400(
        attack_stage: tuple[Daemon, dict[str, Spy]]) -> None:
    daemon, s = attack_stage
    origin = s["redirector"].origin
    async with aiohttp.ClientSession() as http:
        for url in (f"{origin}/hooks2", f"{origin}/hook", f"http://127.0.0.1:{s['redirector'].port}"
                    f"@127.0.0.1:{s['internal'].port}/hooks", "http://0/hooks",
                    f"{origin}.evil.example/hooks"):
            status, problem = await start(http, daemon, "hooks", {"webhook_url": url})
            assert status == 400, (url, problem)
            assert "webhook_url" in problem["detail"]


# ---- ICE servers an upstream announces ----------------------------------------------------


class UdpSpy(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.datagrams: list[bytes] = []

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.datagrams.append(data)


async def test_an_ice_server_on_an_internal_address_from_a_link_is_never_contacted(
        redis_url: str) -> None:
    loop = asyncio.get_running_loop()
    transport, spy = await loop.create_datagram_endpoint(UdpSpy, local_addr=("127.0.0.2", 0))
    stun_port = transport.get_extra_info("sockname")[1]
    whep_port = free_port()
    server = WhepServer(mode="counter", ice_links=(
        f'<stun:127.0.0.2:{stun_port}>; rel="ice-server"',))
    try:
        with run_daemon(redis_url, pull_allowed_urls=f"http://127.0.0.1:{whep_port}") as daemon:
            async with serve_whep(server, whep_port) as url, aiohttp.ClientSession() as http:
                status, state = await start(http, daemon, "ice", {
                    "quality": "low", "source": {"type": "whep", "url": url, "token": TOKEN}})
                assert status == 201, state
                # the counter-offer's answer was gathered before the start was answered
                async with http.post(f"{daemon.url}/api/webrtc/rooms/ice/recording/"
                                     f"{state['recording_id']}/stop",
                                     headers=daemon.headers("attacker", rooms=["ice"])) as resp:
                    assert resp.status == 200, await resp.text()
            assert "1 announced ICE server(s) dropped" in daemon.log()
    finally:
        transport.close()
    assert server.patches  # the counter-offer path, which uses the announced servers, ran
    assert spy.datagrams == []


async def test_announced_ice_servers_are_pinned_to_checked_public_addresses() -> None:
    resolver = MappedResolver({"stun.example.net": ["93.184.216.34"],
                               "rebind.example.net": ["10.0.0.5"],
                               "mixed.example.net": ["93.184.216.34", "169.254.169.254"]})
    outbound = Outbound(AllowList.parse(["https://whep.example.net"]), resolver)
    announced = [RTCIceServer(urls=u) for u in (
        "stun:stun.example.net", "stun:10.0.0.5:3478", "stun:rebind.example.net",
        "turn:mixed.example.net?transport=udp", "stun:169.254.169.254",
        "turns:stun.example.net:443?transport=tcp", "stun:[::1]:3478", "stun:0",
        "stun:8.8.8.8:19302")]
    try:
        kept = await allowed_ice_servers(announced, outbound)
    finally:
        await outbound.close()
    assert [s.urls for s in kept] == ["stun:93.184.216.34:3478", "stun:8.8.8.8:19302"]


# ---- webhooks at delivery ---------------------------------------------------------------


async def run_worker(redis: aioredis.Redis, routing: WebhookRouting,
                     resolver: MappedResolver) -> tuple[WebhookDeliverer, asyncio.Event,
                                                        asyncio.Task[None]]:
    worker = WebhookDeliverer(WebhookOutbox(redis, KEYS), parse_secret(WEBHOOK_SECRET),
                              RetrySchedule(parse_schedule("0")), routing=routing,
                              name="outbound-test", timeout_seconds=5, consumers=1,
                              resolver=resolver)
    stop = asyncio.Event()
    return worker, stop, asyncio.create_task(worker.run(stop))


async def settled(outbox: WebhookOutbox, url: str, count: int) -> Any:
    deadline = time.monotonic() + 30
    while True:
        status = await outbox.status([url])
        done = status.deliveries.get("delivered", 0) + status.dead
        if done >= count:
            return status
        assert time.monotonic() < deadline, status
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("case", ["entry removed", "name now resolves to loopback",
                                  "allowed"])
async def test_the_webhook_worker_checks_a_starts_url_again_at_delivery(
        redis_client: aioredis.Redis, case: str) -> None:
    async with Receiver() as receiver:
        port = receiver.url.split(":")[2].split("/")[0]
        by_name = f"http://hooks.example.test:{port}/hook"
        url, entries = {
            "entry removed": (receiver.url, [f"http://127.0.0.1:{port}/other"]),
            "name now resolves to loopback": (by_name, [f"http://hooks.example.test:{port}"]),
            "allowed": (receiver.url, [f"http://127.0.0.1:{port}/hook"]),
        }[case]
        await record_events(redis_client, url)  # queued while it was allowed
        resolver = MappedResolver({"hooks.example.test": ["127.0.0.1"]})
        _, stop, task = await run_worker(redis_client, WebhookRouting(None, tuple(entries)),
                                         resolver)
        try:
            status = await settled(WebhookOutbox(redis_client, KEYS), url, 4)
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
    if case == "allowed":
        assert len(receiver.delivered()) == 4
        assert status.dead == 0
        return
    assert receiver.requests == []
    assert status.dead == 4
    reason = ("URL not allowed by RECORDER_WEBHOOK_ALLOWED_URLS" if case == "entry removed"
              else "address not allowed")
    assert {letter.last_error for letter in status.dead_letters} == {reason}
    if case == "name now resolves to loopback":
        assert "hooks.example.test" in resolver.asked  # refused after resolving, not before


def test_an_allow_list_entry_that_does_not_parse_stops_start_up_naming_it(
        tmp_path: Path) -> None:
    for setting, entry in (("RECORDER_PULL_ALLOWED_URLS", "ftp://files.example"),
                           ("RECORDER_WEBHOOK_ALLOWED_URLS", "http://user@hooks.example"),
                           ("RECORDER_PULL_ALLOWED_URLS", "http://[::1")):
        env = {"PATH": "/usr/bin:/bin", setting: entry, "RECORDER_REDIS_URL": "embedded",
               "RECORDER_STORAGE_DIR": str(tmp_path), "RECORDER_PORT": str(free_port()),
               "RECORDER_WEBHOOK_SECRET": WEBHOOK_SECRET}
        env.update({k: v for k, v in os.environ.items() if k in ("PYTHONPATH", "HOME")})
        done = subprocess.run([sys.executable, "-m", "recorder"], env=env, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode != 0
        lines = [line for line in done.stderr.splitlines() if setting in line]
        assert len(lines) == 1, done.stderr
        assert entry in lines[0], done.stderr

