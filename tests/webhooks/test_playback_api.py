"""Against a real `recorderd` and a real Redis: Stream's webhook (forged, stale, valid,
repeated, error), signed playback URLs (local file, Stream token), the admin routes and the
Stream webhook registration (Cloudflare test double). Recordings are written straight into
Redis as the worker leaves them after an upload."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
import redis.asyncio as aioredis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from recorder.core import lifecycle
from recorder.core.lifecycle import Action
from recorder.core.limits import Limits
from recorder.core.models import FileInfo, Playback, RecordingState, Status
from recorder.state.keys import KeySpace
from recorder.state.store import StateStore
from tests.support.cloudflare_stream import ACCOUNT, TOKEN, CloudflareDouble
from tests.support.daemon import Daemon, run_daemon
from tests.support.states import make_state
from tests.support.webhook_receiver import SECRET

KEYS = KeySpace("webrtc:recording:")
CF_SECRET = "85011ed3a913c6ad5f9cf6c5573cc0a7"
HOOK_URL = "http://127.0.0.1:9/hook"  # never reached: these tests read the outbox
_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_PEM = _KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption())


@pytest.fixture(scope="module")
def cloudflare() -> Iterator[CloudflareDouble]:
    loop = asyncio.new_event_loop()
    double = CloudflareDouble("http://127.0.0.1:9/unused")
    loop.run_until_complete(double.__aenter__())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield double
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.run_until_complete(double.__aexit__(None, None, None))
    loop.close()


@pytest.fixture(scope="module")
def daemon(redis_url: str, cloudflare: CloudflareDouble) -> Iterator[Daemon]:
    with run_daemon(redis_url, webhook_url=HOOK_URL, webhook_secret=SECRET,
                    cf_webhook_secret=CF_SECRET, cf_account_id=ACCOUNT, cf_api_token=TOKEN,
                    cf_api_base=cloudflare.api_base, cf_stream_key_id="key-1",
                    cf_stream_key_pem=base64.b64encode(_PEM).decode(),
                    cf_stream_customer_code="abc123") as d:
        yield d


def signed(body: bytes, secret: str = CF_SECRET, at: int | None = None) -> dict[str, str]:
    t = int(time.time()) if at is None else at
    sig = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Webhook-Signature": f"time={t},sig1={sig}", "Content-Type": "application/json"}


async def uploaded(redis: aioredis.Redis, daemon: Daemon, *, streams: int = 2,
                   local: bool = False) -> RecordingState:
    """A completed recording whose files went to Stream (or stayed local)."""
    store = StateStore(redis, KEYS, 3600, 3600)
    state = make_state(user_id="owner")
    state.local_path = str(daemon.storage / state.recording_id)
    state = await store.admit(state, Limits(100, 100, 100))
    rid = state.recording_id
    names = [state.file_name] + [f"track-{n}.webm" for n in range(1, streams)]
    files = []
    await asyncio.to_thread(Path(state.local_path).mkdir, parents=True)
    for name in names:
        data = name.encode() * 1000
        await asyncio.to_thread((Path(state.local_path) / name).write_bytes, data)
        files.append(FileInfo(name=name, kind="composite", size=len(data),
                              sha256=hashlib.sha256(data).hexdigest(),
                              stream_id=None if local else uuid.uuid4().hex,
                              playback=None if local else Playback(state="pending")))

    def finish(s: RecordingState) -> RecordingState:
        s = lifecycle.apply(s, Action.MEDIA_STARTED, datetime.now(UTC))
        s = lifecycle.apply(s, Action.STOP, datetime.now(UTC))
        s.files = files
        s.stream_id = files[0].stream_id
        s.playback = files[0].playback
        return lifecycle.apply(s, Action.COMPLETE, datetime.now(UTC))

    state = await store.update(rid, finish)
    for f in files:
        if f.stream_id:
            await redis.set(KEYS.stream(f.stream_id), rid)
    return state


async def queued_events(redis: aioredis.Redis, rid: str) -> list[dict[str, Any]]:
    entries: Any = await redis.xrange(KEYS.jobs_webhook())
    jobs = [json.loads(fields["job"]) for _, fields in entries]
    return [json.loads(j["body"]) for j in jobs if j["recording_id"] == rid]


async def stored(redis: aioredis.Redis, rid: str) -> RecordingState:
    raw: Any = await redis.get(KEYS.state(rid))
    return RecordingState.from_json(raw)


async def test_stream_webhook(daemon: Daemon, redis_client: aioredis.Redis) -> None:
    state = await uploaded(redis_client, daemon)
    rid = state.recording_id
    main, track = state.files
    url = daemon.url + "/api/webhooks/cloudflare/stream"
    ready = json.dumps({"uid": main.stream_id, "readyToStream": True, "creator": None,
                        "status": {"state": "ready", "pctComplete": "100.000000",
                                   "errorReasonCode": "", "errorReasonText": ""},
                        "meta": {"name": main.name}, "duration": 12.3}).encode()
    before = await queued_events(redis_client, rid)
    async with aiohttp.ClientSession() as http:
        for headers in (signed(ready, "forged"), signed(ready, at=int(time.time()) - 301), {}):
            async with http.post(url, data=ready, headers=headers) as r:
                assert r.status == 401
                assert r.content_type == "application/problem+json"
        async with http.post(url, data=ready + b" ", headers=signed(ready)) as r:
            assert r.status == 401  # signed other bytes
        unchanged = await stored(redis_client, rid)
        assert unchanged.version == state.version
        assert await queued_events(redis_client, rid) == before

        for expect in ("updated", "duplicate"):
            async with http.post(url, data=ready, headers=signed(ready)) as r:
                assert r.status == 200
                assert (await r.json())["result"] == expect
        error = json.dumps({"uid": track.stream_id, "readyToStream": False,
                            "status": {"state": "error", "step": "encoding",
                                       "errReasonCode": "ERR_MALFORMED_VIDEO"}}).encode()
        async with http.post(url, data=error, headers=signed(error)) as r:
            assert r.status == 200
    after = await stored(redis_client, rid)
    assert after.status is Status.COMPLETED
    assert after.playback == Playback(state="ready")
    assert after.files[0].playback == Playback(state="ready")
    assert after.files[1].playback == Playback(state="error", error="ERR_MALFORMED_VIDEO")
    events = (await queued_events(redis_client, rid))[len(before):]
    assert [e["event"] for e in events] == ["recording.ready", "recording.failed"]
    assert events[0]["data"]["status"] == "completed"
    assert events[1]["data"]["error"] == "playback: ERR_MALFORMED_VIDEO"
    assert events[1]["data"]["status"] == "completed"


async def test_signed_file_url(daemon: Daemon, redis_client: aioredis.Redis) -> None:
    state = await uploaded(redis_client, daemon, streams=1, local=True)
    rid = state.recording_id
    api = f"{daemon.url}/api/webrtc/recordings/{rid}/playback-url"
    data = (Path(state.local_path) / state.file_name).read_bytes()
    async with aiohttp.ClientSession() as http:
        async with http.get(api, headers=daemon.headers("someone-else")) as r:
            assert r.status == 403
        async with http.get(api + "?expiry_hours=25", headers=daemon.headers("owner")) as r:
            assert r.status == 400
        async with http.get(api, headers=daemon.headers("owner")) as r:
            assert r.status == 200
            body = await r.json()
        assert body["recording_id"] == rid
        async with http.get(body["signed_url"]) as r:  # no token
            assert r.status == 200
            assert await r.read() == data
        async with http.get(body["signed_url"].replace("sig=", "sig=0")[:-1]) as r:
            assert r.status == 403
        async with http.get(api + "?expiry_hours=0.0003",  # about one second
                            headers=daemon.headers("admin-1", role="admin")) as r:
            short = (await r.json())["signed_url"]
        await asyncio.sleep(2.5)
        async with http.get(short) as r:
            assert r.status == 401
        async with http.get(f"{daemon.url}/api/webrtc/recordings/{rid}/file") as r:
            assert r.status == 401  # neither token nor signature


async def test_stream_playback_url_verifies_with_the_public_key(
        daemon: Daemon, redis_client: aioredis.Redis) -> None:
    state = await uploaded(redis_client, daemon, streams=1)
    api = f"{daemon.url}/api/webrtc/recordings/{state.recording_id}/playback-url?expiry_hours=2"
    async with aiohttp.ClientSession() as http, http.get(
            api, headers=daemon.headers("owner")) as r:
        assert r.status == 200
        body = await r.json()
    prefix = "https://customer-abc123.cloudflarestream.com/"
    assert body["signed_url"].startswith(prefix)
    token = body["signed_url"][len(prefix):].split("/")[0]
    claims = jwt.decode(token, _KEY.public_key(), algorithms=["RS256"])
    assert claims["sub"] == state.stream_id
    assert claims["kid"] == "key-1"
    assert jwt.get_unverified_header(token)["kid"] == "key-1"
    assert 2 * 3600 - 60 <= claims["exp"] - time.time() <= 2 * 3600
    assert claims["nbf"] <= time.time()


async def test_admin_routes_and_stream_registration(
        daemon: Daemon, redis_client: aioredis.Redis, cloudflare: CloudflareDouble) -> None:
    admin = daemon.headers("admin-1", role="admin")
    base = daemon.url + "/api/webrtc/admin"
    async with aiohttp.ClientSession() as http:
        async with http.get(base + "/webhooks", headers=daemon.headers("owner")) as r:
            assert r.status == 403
        async with http.get(base + "/webhooks", headers=admin) as r:
            assert r.status == 200
            status = await r.json()
        assert status["endpoints"] == [{"url": HOOK_URL, "disabled": False,
                                        "disabled_at": None, "status": None}]
        assert "depth" in status["queue"]
        async with http.post(base + "/webhooks/replay", headers=admin) as r:
            assert r.status == 200
            assert (await r.json())["replayed"] == 0

        target = daemon.url + "/api/webhooks/cloudflare/stream"
        async with http.post(base + "/cloudflare/webhook", json={"url": target},
                             headers=admin) as r:
            assert r.status == 200, await r.text()
            assert (await r.json())["notificationUrl"] == target
        assert cloudflare.webhook_url == target
        # a notification signed with the registered secret is accepted
        state = await uploaded(redis_client, daemon, streams=1)
        note = json.dumps({"uid": state.stream_id, "readyToStream": True,
                           "status": {"state": "ready"}}).encode()
        assert cloudflare.webhook_secret is not None
        async with http.post(target, data=note,
                             headers=signed(note, cloudflare.webhook_secret)) as r:
            assert r.status == 200
            assert (await r.json())["result"] == "updated"
