"""End to end: a real recorderd on a real Redis records what a real aiortc peer publishes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import datetime

import aiohttp
import pytest
import redis.asyncio as aioredis

from recorder.core.presets import PRESETS, Quality
from tests.support.api import PREFIX, call, wait_status
from tests.support.daemon import Daemon, run_daemon
from tests.support.media import probe
from tests.support.publisher import WhipPublisher

CODECS = {"webm": ("vp8", "opus"), "mp4": ("h264", "aac"), "mkv": ("h264", "opus")}


@pytest.fixture(scope="module")
def daemon(redis_url: str) -> Iterator[Daemon]:
    with run_daemon(redis_url, max_per_room=1, max_per_user=10) as d:
        yield d


@pytest.mark.parametrize(
    ("fmt", "quality"),
    [("webm", "low"), ("webm", "medium"), ("mp4", "low"), ("mp4", "medium"),
     ("mkv", "low"), ("mkv", "medium"),
     # source: VP8 kept as received in webm; transcoded at the sender's size in mp4
     ("webm", "source"), ("mp4", "source")],
)
async def test_record_with_pause(
    daemon: Daemon, redis_url: str, fmt: str, quality: str
) -> None:
    room = f"room-{fmt}-{quality}"
    headers = daemon.headers("user-7", rooms=[room])
    rooms_url = f"{daemon.url}/api/webrtc/rooms/{room}"
    async with WhipPublisher(f"{daemon.url}/whip/{room}", headers["Authorization"][7:],
                             video=(1280, 720), fps=15), aiohttp.ClientSession() as http:
        state = await call(http, "POST", f"{rooms_url}/recording/start", headers, 201,
                           params={"recording_format": fmt, "quality": quality})
        rid = state["recording_id"]
        assert state["status"] == "pending"
        base = f"{rooms_url}/recording/{rid}"
        await wait_status(http, base, headers, {"recording"})
        await asyncio.sleep(2.0)
        assert (await call(http, "POST", f"{base}/pause", headers, 200))["status"] == "paused"
        await asyncio.sleep(1.5)
        assert (await call(http, "POST", f"{base}/resume", headers, 200))["status"] == "recording"
        await asyncio.sleep(2.0)
        stopped = await call(http, "POST", f"{base}/stop", headers, 200)
        assert stopped["status"] == "processing"
        assert stopped["stop_reason"] == "requested"
        final = await wait_status(http, base, headers, {"completed", "failed"})

    assert final["status"] == "completed", final
    # the media the node saw, by its own clock: from the first frame to the stop, less the
    # pause (a client's clock would count the wait for the first frame too)
    at = {name: datetime.fromisoformat(final[name])
          for name in ("started_at", "paused_at", "resumed_at", "stopped_at")}
    expected = ((at["stopped_at"] - at["started_at"])
                - (at["resumed_at"] - at["paused_at"])).total_seconds()
    path = daemon.storage / rid / final["file_name"]
    assert path.name == f"recording_{rid}.{fmt}"
    info = probe(path)
    size = (1280, 720) if quality == "source" else (PRESETS[Quality(quality)].width,
                                                   PRESETS[Quality(quality)].height)
    assert (info.video_codec, info.audio_codec) == CODECS[fmt]
    assert (info.width, info.height) == size
    assert info.audio_seconds > 0
    assert abs(info.duration - expected) < 0.5, (info, expected)
    assert abs(final["duration_seconds"] - info.duration) < 0.5
    assert info.mean_luma > 20, "the publisher's picture is missing (black video)"
    assert final["file_size_bytes"] == path.stat().st_size
    assert final["files"][0]["sha256"] == final["sha256"]

    # Redis holds what the API says, with the TTLs of docs/operations.md.
    r = aioredis.from_url(redis_url, decode_responses=True)
    try:
        stored = json.loads(await r.get(f"{PREFIX}state:{rid}") or "null")
        # a user is shown the state without the node's folder (docs/security.md)
        assert stored == {**final, "local_path": str(daemon.storage / rid)}
        assert 604790 < await r.ttl(f"{PREFIX}state:{rid}") <= 604800
        assert 86390 < await r.ttl(f"{PREFIX}room:{room}") <= 86400
        assert 86390 < await r.ttl(f"{PREFIX}user:user-7") <= 86400
        assert rid in await r.smembers(f"{PREFIX}room:{room}")
        assert rid not in await r.smembers(f"{PREFIX}active")
    finally:
        await r.aclose()
