"""A real Chromium tab publishes its (fake) camera and microphone; the recording has both."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from urllib.parse import urlsplit

import aiohttp
import pytest
import webvtt

from tests.support.api import call, wait_status
from tests.support.browser import (
    BrowserChat,
    browser_available,
    run_browser_publisher,
    serve_page,
)
from tests.support.daemon import run_daemon
from tests.support.media import probe
from tests.support.timed_events import expected_t, subtitle_cues

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


async def test_chromium_chat_becomes_subtitles_on_the_media_clock(redis_url: str) -> None:
    """Chat typed in a browser: in events.jsonl and the webm's subtitle track at its media
    time (within 150 ms), in chat.vtt; messages sent while paused are dropped and counted."""
    missing = browser_available()
    assert missing is None, missing
    room = "browser-chat-room"
    sent: list[tuple[float, str]] = []
    paused: list[str] = []
    async with serve_page() as page_url:
        parts = urlsplit(page_url)
        with run_daemon(redis_url, cors_origins=f"{parts.scheme}://{parts.netloc}") as daemon:
            headers = daemon.headers("chromium-chatter", rooms=[room])
            rooms_url = f"{daemon.url}/api/webrtc/rooms/{room}"
            async with aiohttp.ClientSession() as http, BrowserChat(
                    page_url, f"{daemon.url}/whip/{room}", headers["Authorization"][7:]) as chat:
                state = await call(http, "POST", f"{rooms_url}/recording/start", headers, 201,
                                   params={"recording_format": "webm", "quality": "low"})
                base = f"{rooms_url}/recording/{state['recording_id']}"
                await wait_status(http, base, headers, {"recording"}, within=60)
                for n in range(3):
                    await asyncio.sleep(0.8)
                    sent.append((await chat.send(f"before pause {n}"), f"before pause {n}"))
                await call(http, "POST", f"{base}/pause", headers, 200)
                for n in range(2):
                    await asyncio.sleep(0.4)
                    paused.append(f"while paused {n}")
                    await chat.send(paused[-1])
                await asyncio.sleep(0.4)
                await call(http, "POST", f"{base}/resume", headers, 200)
                for n in range(3):
                    await asyncio.sleep(0.8)
                    sent.append((await chat.send(f"after pause {n}"), f"after pause {n}"))
                await asyncio.sleep(1.0)
                await call(http, "POST", f"{base}/stop", headers, 200)
                assert await chat.stop() == 200
                final = await wait_status(http, base, headers, {"completed", "failed"})
            folder = daemon.storage / final["recording_id"]
            lines = [json.loads(x) for x in (folder / "events.jsonl").read_text().splitlines()]
            cues = subtitle_cues(folder / final["file_name"])
            captions = webvtt.read(str(folder / "chat.vtt")).captions
    assert final["status"] == "completed", final
    assert [e["text"] for e in lines] == [text for _, text in sent]
    assert final["events"]["chat"] == {"recorded": len(sent), "dropped": len(paused)}
    started = datetime.fromisoformat(final["started_at"])
    offsets = [e["t"] - expected_t(wall, started, final["pauses"])
               for e, (wall, _) in zip(lines, sent, strict=True)]
    print(f"chat t minus send time (s): {[round(o, 3) for o in offsets]}")
    assert all(abs(o) < 0.15 for o in offsets), offsets
    assert [text for _, _, text in cues] == [f"<v chromium-chatter>{t}" for _, t in sent]
    track_offsets = [start - e["t"] for (start, _, _), e in zip(cues, lines, strict=True)]
    print(f"subtitle start minus event t (s): {[round(o, 3) for o in track_offsets]}")
    assert all(abs(o) < 0.15 for o in track_offsets)
    assert [c.text for c in captions] == [t for _, t in sent]
    assert [c.voice for c in captions] == ["chromium-chatter"] * len(sent)
