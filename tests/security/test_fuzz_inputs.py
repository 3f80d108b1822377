"""Bad input against a real recorderd on a real Redis: never a 5xx, nothing left behind.

Mutated WHIP offers (tests/support/sdp_fuzz.py), mutated bearer tokens, Stream webhook
signatures and raw JSON bodies (tests/support/input_fuzz.py), all from fixed seeds. Every
answer is a 4xx problem document (or 201 and an SDP answer for an offer that is still
usable; 400/431 in plain text where aiohttp's HTTP parser refuses a header before the app
sees it), recorderd logs no error, and after the run no room process is left: what an
operator sees with `ps` and /metrics. The OpenAPI-driven fuzzing of every route by schema is
tests/e2e/test_fuzz.py; this one sends what no schema describes.
"""

from __future__ import annotations

import asyncio
import collections
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urljoin

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiortc import RTCPeerConnection, RTCSessionDescription

from tests.support.daemon import SECRET, Daemon, run_daemon, token
from tests.support.input_fuzz import (
    Answer,
    mutated_json_bodies,
    mutated_signatures,
    mutated_tokens,
    send_raw,
    stream_signature,
)
from tests.support.sdp_fuzz import mutated_offers, seed_offers

SEED = 20261205
WHIP_OFFERS = 500
TOKENS = 150
SIGNATURES = 100
JSON_BODIES = 100
WEBHOOK_SECRET = "stream-webhook-secret-for-tests"
STREAM_WEBHOOK = "/api/webhooks/cloudflare/stream"
AIOHTTP_REFUSALS = {400, 431}  # its parser refuses control characters and huge headers
SETTLE_SECONDS = 60.0  # a safety net for a hung daemon, not a measurement


@pytest.fixture(scope="module")
def daemon(redis_url: str) -> Iterator[Daemon]:
    # A process per room, so that "no room was opened" shows as "no process was started".
    with run_daemon(redis_url, cf_webhook_secret=WEBHOOK_SECRET, max_per_room=1000,
                    max_per_user=1000, max_concurrent=1000, cpu_capacity=1000,
                    room_isolation="process") as d:
        yield d


def assert_problem(status: int, content_type: str, body: bytes, allowed: set[int],
                   what: str) -> None:
    assert status in allowed, f"{what}: {status} {body[:300]!r}"
    assert content_type.startswith("application/problem+json"), f"{what}: {content_type}"
    problem = json.loads(body)
    assert problem["status"] == status, problem
    assert problem["title"], problem
    assert problem["detail"], problem


def assert_refused(answer: Answer, allowed: set[int], what: str) -> None:
    """A problem document with a status in `allowed`, or aiohttp's own plain refusal."""
    if answer.status in AIOHTTP_REFUSALS and answer.content_type.startswith("text/plain"):
        return
    assert_problem(answer.status, answer.content_type, answer.body, allowed, what)


def assert_clean_log(daemon: Daemon) -> None:
    log = daemon.log()
    errors = [line for line in log.splitlines() if " ERROR " in line or "Traceback" in line]
    assert not errors, "\n".join(errors[:20]) + "\n" + log[-3000:]


def room_processes(daemon: Daemon) -> list[str]:
    """The rooms of recorderd's room processes (their command lines name one)."""
    rooms = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            if ppid != daemon.process.pid:
                continue
            argv = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue  # exited meanwhile
        rooms += [a.decode().removeprefix("--name=") for a in argv if a.startswith(b"--name=")]
    return rooms


async def settled(daemon: Daemon, http: aiohttp.ClientSession) -> None:
    """Wait until recorderd runs no room process and counts no WHIP publisher."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        async with http.get(daemon.url + "/metrics") as resp:
            metrics = await resp.text()
        if not room_processes(daemon) and "\nrecorder_whip_publishers 0.0" in metrics:
            return
        assert time.monotonic() < deadline, (room_processes(daemon), daemon.log()[-3000:])
        await asyncio.sleep(0.2)


class DataChannelPublisher:
    """A WHIP publisher with only a data channel: it holds the room (and its process)
    open while the fuzzer posts, and shows such an offer is answered and connects."""

    def __init__(self, http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> None:
        self._http, self._url, self._headers = http, url, headers
        self._pc = RTCPeerConnection()
        self._connected = asyncio.Event()
        self.location = ""

    async def __aenter__(self) -> DataChannelPublisher:
        self._pc.createDataChannel("events")
        self._pc.on("connectionstatechange", self._on_state)
        await self._pc.setLocalDescription(await self._pc.createOffer())
        async with self._http.post(self._url, data=self._pc.localDescription.sdp.encode(),
                                   headers={**self._headers,
                                            "Content-Type": "application/sdp"}) as resp:
            answer = await resp.text()
            assert resp.status == 201, answer
            self.location = urljoin(self._url, resp.headers["Location"])
        await self._pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        await asyncio.wait_for(self._connected.wait(), SETTLE_SECONDS)
        return self

    def _on_state(self) -> None:
        if self._pc.connectionState == "connected":
            self._connected.set()

    async def __aexit__(self, *exc: object) -> None:
        async with self._http.delete(self.location, headers=self._headers) as resp:
            assert resp.status == 200
        await self._pc.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_mutated_whip_offers_are_refused_or_answered_and_leave_no_room(
    daemon: Daemon, http: aiohttp.ClientSession
) -> None:
    url = daemon.url + "/whip/fuzz-room"
    headers = {"Authorization": f"Bearer {token('fuzzer')}"}
    statuses: collections.Counter[int] = collections.Counter()
    async with DataChannelPublisher(http, url, headers):
        assert room_processes(daemon) == ["fuzz-room"]
        for offer in mutated_offers(WHIP_OFFERS, SEED):
            async with http.post(url, data=offer.body,
                                 headers={**headers, "Content-Type": "application/sdp"}) as resp:
                body = await resp.read()
                statuses[resp.status] += 1
                if resp.status != 201:
                    assert_problem(resp.status, resp.content_type, body, {400, 422},
                                   offer.describe())
                    continue
                assert resp.content_type == "application/sdp", offer.describe()
                location = urljoin(url, resp.headers["Location"])
            async with http.delete(location, headers=headers) as ended:
                assert ended.status == 200, offer.describe()
    # the fuzzer reached every outcome: answered, malformed, unusable
    assert set(statuses) == {201, 400, 422}, statuses
    await settled(daemon, http)
    assert_clean_log(daemon)


# Offers that made aiortc fail inside the room process (media-error 500) before.
UNANSWERABLE = {
    "text-section": ("m=audio", "m=text"),
    "bundle-names-no-section": ("BUNDLE 0 1", "BUNDLE 7 1"),
    "two-sections-one-mid": ("a=mid:1", "a=mid:0"),
    "no-direction": ("a=sendonly\r\n", ""),
}


@pytest.mark.parametrize(("name", "change"), UNANSWERABLE.items(), ids=UNANSWERABLE.keys())
async def test_a_refused_offer_claims_no_room_and_starts_no_process(
    daemon: Daemon, http: aiohttp.ClientSession, redis_url: str, name: str,
    change: tuple[str, str]
) -> None:
    room = f"refused-{name}"
    offer = seed_offers()["chromium"].decode().replace(*change)
    async with http.post(f"{daemon.url}/whip/{room}", data=offer.encode(), headers={
            "Authorization": f"Bearer {token('fuzzer')}",
            "Content-Type": "application/sdp"}) as resp:
        assert_problem(resp.status, resp.content_type, await resp.read(), {400, 422}, room)
    client = aioredis.from_url(redis_url)
    try:
        assert [key async for key in client.scan_iter(match=f"*room-owner:{room}")] == []
    finally:
        await client.aclose()
    assert room not in room_processes(daemon)
    assert f"room {room}: session opened" not in daemon.log()
    assert_clean_log(daemon)


ATTACKS: dict[str, tuple[str, list[bytes]]] = {
    "signature-non-ascii": (STREAM_WEBHOOK, ["Webhook-Signature: time=1,sig1=éé".encode()]),
    "signature-not-utf8": (STREAM_WEBHOOK, [b"Webhook-Signature: time=1,sig1=\xff\xfe"]),
    "signature-superscript-time": (STREAM_WEBHOOK, ["Webhook-Signature: time=²,sig1=ab".encode()]),
    "signature-control-characters": (STREAM_WEBHOOK, [b"Webhook-Signature: \x01\x02x"]),
    "signature-huge": (STREAM_WEBHOOK, [b"Webhook-Signature: time=1,sig1=" + b"a" * 100_000]),
    "bearer-non-ascii": ("", ["Authorization: Bearer ééé.é.é".encode()]),
    "bearer-not-utf8": ("", [b"Authorization: Bearer \xff\xfe.\xff.\xff"]),
    "basic": ("", [b"Authorization: Basic x"]),
    "bad-header-segment": ("", [b"Authorization: Bearer eyJhbGciOi.eyJzdWIiOiJ4In0.c2ln"]),
    "bad-base64": ("", [b"Authorization: Bearer !!!.@@@.###"]),
    "alg-none": ("", [b"Authorization: Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."]),
    "huge-token": ("", [b"Authorization: Bearer " + b"a" * 100_000]),
    "two-authorizations": ("", [b"Authorization: Basic x", b"Authorization: Bearer a.b.c"]),
}


@pytest.mark.parametrize("attack", ATTACKS.values(), ids=ATTACKS.keys())
async def test_a_malformed_credential_is_401_never_500(
    daemon: Daemon, attack: tuple[str, list[bytes]]
) -> None:
    path, headers = attack
    now = int(time.time())
    headers = [h.replace(b"time=1,", f"time={now},".encode()) for h in headers]
    answer = await send_raw(daemon.url, "POST", path or "/api/webrtc/rooms/r/recording/start",
                            [*headers, b"Content-Type: application/json"], b"{}")
    assert_refused(answer, {401}, repr(headers)[:200])
    assert_clean_log(daemon)


async def test_fuzzed_tokens_are_refused_with_401(daemon: Daemon) -> None:
    valid = token("fuzzer")
    ok = await send_raw(daemon.url, "GET", "/api/webrtc/recordings",
                        [f"Authorization: Bearer {valid}".encode()])
    assert ok.status == 200, ok
    statuses: collections.Counter[int] = collections.Counter()
    for what, value in mutated_tokens(valid, SECRET, int(time.time()), TOKENS, SEED):
        answer = await send_raw(daemon.url, "GET", "/api/webrtc/recordings",
                                [b"Authorization: " + value])
        statuses[answer.status] += 1
        if answer.status != 200:  # a flip in a signature's padding bits changes nothing
            assert_refused(answer, {401}, f"{what}: {value[:120]!r}")
    assert statuses[401] >= TOKENS * 3 // 4, statuses
    assert_clean_log(daemon)


async def test_fuzzed_stream_signatures_are_refused_with_401(daemon: Daemon) -> None:
    body = json.dumps({"uid": "video-unknown", "readyToStream": True}).encode()
    now = int(time.time())
    signed = f"time={now},sig1={stream_signature(WEBHOOK_SECRET, now, body)}".encode()
    ok = await send_raw(daemon.url, "POST", STREAM_WEBHOOK,
                        [b"Webhook-Signature: " + signed, b"Content-Type: application/json"], body)
    assert ok.status == 200, ok
    assert json.loads(ok.body)["result"] == "ignored", ok
    for value in mutated_signatures(WEBHOOK_SECRET, now, body, SIGNATURES, SEED):
        answer = await send_raw(daemon.url, "POST", STREAM_WEBHOOK, [
            b"Webhook-Signature: " + value, b"Content-Type: application/json"], body)
        assert_refused(answer, {401}, repr(value[:120]))
    assert_clean_log(daemon)


async def test_fuzzed_json_bodies_are_refused_with_4xx(
    daemon: Daemon, http: aiohttp.ClientSession
) -> None:
    """A user who used up the minute's starts (RECORDER_STARTS_PER_USER_PER_MINUTE, 30): a
    body that parses reaches admission and is 429 `start_rate`, so no recording is started
    and every other answer is the body's fault."""
    bearer = f"Bearer {token('fuzzer', rooms=['r'])}"
    room = f"{daemon.url}/api/webrtc/rooms/r/recording"
    for _ in range(30):
        async with http.post(f"{room}/start", headers={"Authorization": bearer}) as resp:
            assert resp.status == 201, await resp.text()
            started = await resp.json()
        async with http.delete(f"{room}/{started['recording_id']}",
                               headers={"Authorization": bearer}) as resp:
            assert resp.status == 200, await resp.text()
    headers = [f"Authorization: {bearer}".encode(), b"Content-Type: application/json"]
    statuses: collections.Counter[int] = collections.Counter()
    for index, body in enumerate(mutated_json_bodies(JSON_BODIES, SEED)):
        answer = await send_raw(daemon.url, "POST", "/api/webrtc/rooms/r/recording/start",
                                headers, body)
        statuses[answer.status] += 1
        assert_refused(answer, {400, 413, 429}, f"body #{index}: {body[:120]!r}")
    assert statuses[400] > 0, statuses
    assert statuses[429] > 0, statuses  # some still parse: the mutations are not all fatal
    assert_clean_log(daemon)
