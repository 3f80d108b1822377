"""End to end: a primary, a replica and three sentinels; the primary is killed in the middle
of a recording. The sentinels fail over, the node finds the new primary through them and
writes back what the replica had not received (docs/operations.md, "Redis with Sentinel"):
the recording completes with its whole media, each of its webhooks is delivered at least
once and at most twice (by webhook id), and its upload is done once.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from tests.support.api import WAIT_SECONDS, call, wait_status
from tests.support.daemon import run_daemon
from tests.support.media import probe
from tests.support.publisher import WhipPublisher
from tests.support.redis_processes import SentinelProcess, sentinel_group
from tests.support.upload_servers import BUCKET, MotoServer, run_worker
from tests.support.webhook_receiver import SECRET, Received, Receiver

MASTER = "recorder"
HEARTBEAT = 1
MEDIA_BEFORE = 3.0
MEDIA_AFTER = 3.0
MAX_LOSS = 1.0
EXPECTED_EVENTS = {"recording.started", "recording.stopped", "recording.complete"}


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        server.create_bucket()
        yield server


async def sentinels_ready(sentinel: SentinelProcess) -> None:
    """The group can fail over: enough sentinels know each other and the replica is synced."""
    client = aioredis.Redis(port=sentinel.port, decode_responses=True)
    deadline = time.monotonic() + WAIT_SECONDS
    try:
        while True:
            try:
                await client.sentinel_ckquorum(MASTER)
                replicas: Any = await client.sentinel_slaves(MASTER)
                synced = [r for r in replicas if r.get("master-link-status") == "ok"]
                others: Any = await client.sentinel_sentinels(MASTER)
                if synced and len(others) >= 2:
                    return
            except aioredis.ResponseError:
                pass
            assert time.monotonic() < deadline, "the sentinels never became ready"
            await asyncio.sleep(0.2)
    finally:
        await client.aclose()


async def primary_port(sentinel: SentinelProcess) -> int:
    client = aioredis.Redis(port=sentinel.port, decode_responses=True)
    try:
        address: Any = await client.sentinel_get_master_addr_by_name(MASTER)
    finally:
        await client.aclose()
    return int(address[1])


async def until_answered(http: aiohttp.ClientSession, method: str, url: str,
                         headers: dict[str, str]) -> dict[str, object]:
    """A control request during the failover: 503 with Retry-After until the store is back."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        async with http.request(method, url, headers=headers) as resp:
            body = await resp.text()
            if resp.status != 503:
                assert resp.status == 200, body
                answer: dict[str, object] = await resp.json()
                return answer
            assert "Retry-After" in resp.headers
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.2)


async def test_a_failover_loses_no_recording_webhook_or_upload(
        moto: MotoServer, tmp_path: Path) -> None:
    room = "room-failover"
    with sentinel_group(MASTER) as (primary, replica, sentinels):
        await sentinels_ready(sentinels[0])
        where = ",".join(f"127.0.0.1:{s.port}" for s in sentinels)
        async with Receiver() as receiver:
            with run_daemon("embedded", storage=tmp_path / "recordings",
                            redis_sentinels=where, heartbeat_seconds=HEARTBEAT,
                            upload_target="s3", s3_bucket=BUCKET, s3_endpoint_url=moto.url,
                            webhook_url=receiver.url, webhook_secret=SECRET) as daemon, \
                    run_worker("embedded", daemon.node_id, daemon.storage, tmp_path,
                               redis_sentinels=where, s3_endpoint_url=moto.url,
                               webhook_url=receiver.url, webhook_secret=SECRET,
                               heartbeat_seconds=HEARTBEAT) as worker:
                owner = daemon.headers("user-f", rooms=[room])
                rooms_url = f"{daemon.url}/api/webrtc/rooms/{room}"
                async with WhipPublisher(f"{daemon.url}/whip/{room}",
                                         owner["Authorization"][7:], video=(640, 360),
                                         fps=15), aiohttp.ClientSession() as http:
                    rid = (await call(http, "POST", f"{rooms_url}/recording/start", owner,
                                      201, json={"quality": "low"}))["recording_id"]
                    base = f"{rooms_url}/recording/{rid}"
                    began = datetime.fromisoformat(
                        (await wait_status(http, base, owner, {"recording"}))["started_at"])
                    await asyncio.sleep(MEDIA_BEFORE)

                    primary.kill()
                    deadline = time.monotonic() + WAIT_SECONDS
                    while await primary_port(sentinels[0]) != replica.port:
                        assert time.monotonic() < deadline, "no failover"
                        await asyncio.sleep(0.2)
                    await asyncio.sleep(MEDIA_AFTER)

                    stopped = await until_answered(http, "POST", f"{base}/stop", owner)
                    media = (datetime.fromisoformat(str(stopped["stopped_at"]))
                             - began).total_seconds()
                    final = await wait_status(http, base, owner, {"completed", "failed"})
                    delivered = await _webhooks_of(receiver, rid)
                log = worker.log()

    assert final["status"] == "completed", final
    assert final["upload"]["state"] == "uploaded", final
    assert final["upload"]["attempts"] == 1, log[-3000:]
    head = moto.client().head_object(
        Bucket=BUCKET, Key=f"webrtc-recordings/{room}/{rid}/recording_{rid}.webm")
    assert head["ContentLength"] == final["file_size_bytes"]
    info = await asyncio.to_thread(probe, tmp_path / "recordings" / rid /
                                   f"recording_{rid}.webm") \
        if (tmp_path / "recordings" / rid / f"recording_{rid}.webm").exists() else None
    assert final["duration_seconds"] >= media - MAX_LOSS, (final, media)
    if info is not None:
        assert info.video_seconds >= media - MAX_LOSS
    per_id = Counter(r.webhook_id for r in delivered)
    assert all(n <= 2 for n in per_id.values()), per_id
    assert {r.body["event"] for r in delivered} >= EXPECTED_EVENTS, delivered


async def _webhooks_of(receiver: Receiver, rid: str) -> list[Received]:
    """The recording's webhooks once `recording.complete` has arrived."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        mine = [r for r in receiver.delivered() if rid in str(r.body)]
        if any(r.body.get("event") == "recording.complete" for r in mine):
            return list(mine)
        assert time.monotonic() < deadline, [r.body.get("event") for r in mine]
        await asyncio.sleep(0.1)
