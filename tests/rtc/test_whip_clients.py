"""Real WHIP clients over HTTP into a room: the aiortc test publisher and headless Chromium.

The endpoint is the minimal one of tests/rtc/whip_endpoint.py; the page is served from
another port, so Chromium is cross-origin and must pass CORS preflights as a real page does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from recorder.core.presets import Format, Quality
from recorder.room.messages import (
    CaptureFinished,
    PublisherLeft,
    StartCapture,
    StopCapture,
    TrackAdded,
)
from tests.rtc.conftest import Room
from tests.rtc.whip_endpoint import TOKEN, serve_whip
from tests.support.browser import browser_available, run_browser_publisher, serve_page
from tests.support.media import probe
from tests.support.publisher import WhipError, WhipPublisher

MakeRoom = Callable[..., Room]


async def test_aiortc_publisher_over_whip_http(make_room: MakeRoom) -> None:
    room = make_room()
    async with serve_whip(room.session) as (base, _):
        async with WhipPublisher(f"{base}/whip/room-1", TOKEN, video=(320, 180)) as pub:
            assert pub.location is not None
            assert pub.location.startswith(f"{base}/whip/room-1/")
            tracks = await room.log.wait_for(TrackAdded, count=2)
            assert {(t.track.kind, t.track.codec) for t in tracks} == {
                ("audio", "opus"), ("video", "vp8")}
        assert pub.delete_status == 200
        await room.log.wait_for(PublisherLeft)
        assert room.session.publisher_count == 0

        with pytest.raises(WhipError) as refused:
            async with WhipPublisher(f"{base}/whip/room-1", "wrong", video=(320, 180)):
                pass
        assert refused.value.status == 401


async def test_h264_publisher_is_received(make_room: MakeRoom) -> None:
    room = make_room()
    async with serve_whip(room.session) as (base, _), WhipPublisher(
            f"{base}/whip/room-1", TOKEN, video=(320, 180), video_codec="H264"):
        tracks = await room.log.wait_for(TrackAdded, count=2)
        assert {(t.track.kind, t.track.codec) for t in tracks} == {
            ("audio", "opus"), ("video", "h264")}


@pytest.mark.browser
@pytest.mark.skipif(browser_available() is not None, reason=str(browser_available()))
async def test_chromium_publishes_over_whip_into_a_recording(make_room: MakeRoom,
                                                             tmp_path: Path) -> None:
    room = make_room()
    async with serve_whip(room.session) as (base, endpoint), serve_page() as page_url:
        assert page_url.split("/")[2] != base.split("/")[2]  # another origin
        browser = asyncio.create_task(
            run_browser_publisher(page_url, f"{base}/whip/room-1", TOKEN, seconds=4))
        tracks = await room.log.wait_for(TrackAdded, count=2)
        rid = "rec-browser"
        await room.session.handle(StartCapture(rid, str(tmp_path / rid), f"{rid}.webm",
                                               Format.WEBM, Quality.LOW))
        run = await browser
        assert run.returncode == 0, run.stderr[-3000:]
        await room.log.wait_for(PublisherLeft)
        await room.session.handle(StopCapture(rid))
        [finished] = await room.log.wait_for(CaptureFinished)

    assert {(t.track.kind, t.track.codec) for t in tracks} == {("audio", "opus"), ("video", "vp8")}
    assert endpoint.preflights >= 1  # POST with a token from another origin is preflighted
    result = run.result
    assert result["offerSetup"] == "actpass"
    assert result["answerSetup"] == "active"
    assert result["deleteStatus"] == 200
    assert result["bytesSent"]["audio"] > 0
    assert result["bytesSent"]["video"] > 0
    assert result["answerCandidates"]
    assert all(" 127.0.0.1 " in c for c in result["answerCandidates"])
    assert result["pair"]["remote"].startswith("127.0.0.1:")
    seen = probe(Path(finished.files[0].path))
    assert (seen.video_codec, seen.audio_codec) == ("vp8", "opus")
    assert seen.video_frames > 0
    assert seen.audio_seconds > 1.0
