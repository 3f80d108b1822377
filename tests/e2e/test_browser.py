"""A real Chromium tab publishes its (fake) camera and microphone; the recording has both."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

import aiohttp
import pytest

from tests.support.api import call, wait_status
from tests.support.browser import browser_available, run_browser_publisher, serve_page
from tests.support.daemon import run_daemon
from tests.support.media import probe

pytestmark = pytest.mark.browser


async def test_chromium_camera_and_microphone_record_to_a_file(redis_url: str) -> None:
    missing = browser_available()
    assert missing is None, missing  # the test command installs chromium and node
    room = "browser-room"
    async with serve_page() as page_url:
        parts = urlsplit(page_url)
        origin = f"{parts.scheme}://{parts.netloc}"
        with run_daemon(redis_url, cors_origins=origin) as daemon:
            headers = daemon.headers("chromium-user", rooms=[room])
            token = headers["Authorization"][7:]
            rooms_url = f"{daemon.url}/api/webrtc/rooms/{room}"
            async with aiohttp.ClientSession() as http:
                state = await call(http, "POST", f"{rooms_url}/recording/start", headers, 201,
                                   params={"recording_format": "webm", "quality": "low"})
                base = f"{rooms_url}/recording/{state['recording_id']}"
                browser = asyncio.create_task(run_browser_publisher(
                    page_url, f"{daemon.url}/whip/{room}", token, seconds=8))
                await wait_status(http, base, headers, {"recording"}, within=60)
                t_start = time.monotonic()
                await asyncio.sleep(5)
                await call(http, "POST", f"{base}/stop", headers, 200)
                recorded = time.monotonic() - t_start
                run = await browser
                assert run.returncode == 0, run.stderr
                final = await wait_status(http, base, headers, {"completed", "failed"})
            # before it is removed
            info = probe(daemon.storage / final["recording_id"] / final["file_name"])
    assert final["status"] == "completed", final
    assert run.result["answerSetup"] == "active"
    assert (info.video_codec, info.audio_codec) == ("vp8", "opus")
    assert (info.width, info.height) == (854, 480)
    # Chromium's camera starts after its microphone: the file must still hold its picture.
    assert info.mean_luma > 20, "no picture from the browser's camera"
    assert info.audio_seconds > recorded - 1.0
    assert info.video_frames >= 24 * (recorded - 1.5)
    kinds = {t["kind"] for t in final["tracks"]}
    assert kinds == {"audio", "video"}
