"""End to end: a real recorderd SIGKILLed in the middle of a recording leaves a file that
recovers to all but its last 2 s (docs/media.md)."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from datetime import datetime
from pathlib import Path

import aiohttp
import pytest

from recorder.media.repair import recover_file
from tests.support.daemon import run_daemon
from tests.support.media import probe
from tests.support.publisher import WhipPublisher

MAX_LOSS = 2.0


async def get_state(http: aiohttp.ClientSession, url: str, headers: dict[str, str],
                    method: str = "GET", **kw: object) -> dict[str, object]:
    async with http.request(method, url, headers=headers, **kw) as resp:  # type: ignore[arg-type]
        body = await resp.text()
        assert resp.status in (200, 201), f"{method} {url}: {resp.status} {body}"
        state: dict[str, object] = json.loads(body)
        return state


@pytest.mark.parametrize("fmt", ["mp4", "webm"])
async def test_a_killed_recorderd_leaves_a_recoverable_file(redis_url: str, fmt: str) -> None:
    room = f"room-killed-{fmt}"
    with run_daemon(redis_url) as daemon:
        headers = daemon.headers("user-k", rooms=[room])
        rooms_url = f"{daemon.url}/api/webrtc/rooms/{room}"
        async with WhipPublisher(f"{daemon.url}/whip/{room}", headers["Authorization"][7:],
                                 video=(640, 360), fps=15) as publisher, \
                aiohttp.ClientSession() as http:
            state = await get_state(http, f"{rooms_url}/recording/start", headers, "POST",
                                    params={"recording_format": fmt, "quality": "low"})
            rid = str(state["recording_id"])
            status_url = f"{rooms_url}/recording/{rid}/status"
            deadline = time.monotonic() + 30
            while state["status"] != "recording":
                assert time.monotonic() < deadline, state
                await asyncio.sleep(0.1)
                state = await get_state(http, status_url, headers)
            started = datetime.fromisoformat(str(state["started_at"])).timestamp()
            await asyncio.sleep(max(0.0, started + 6.0 - time.time()))
            media_at_kill = time.time() - started
            daemon.process.send_signal(signal.SIGKILL)
            assert daemon.process.wait(10) == -signal.SIGKILL
            publisher.delete_status = 0  # its server is gone: nothing to delete

        path = daemon.storage / rid / f"recording_{rid}.{fmt}"
        recovered = await asyncio.to_thread(recover_file, path)

        assert recovered.duration_seconds >= media_at_kill - MAX_LOSS, (recovered,
                                                                        media_at_kill)
        info = await asyncio.to_thread(probe, Path(path))
        assert info.video_codec == {"mp4": "h264", "webm": "vp8"}[fmt]
        assert info.video_seconds >= media_at_kill - MAX_LOSS
        assert info.audio_seconds >= media_at_kill - MAX_LOSS
        assert info.mean_luma > 20  # the publisher's picture, not black
