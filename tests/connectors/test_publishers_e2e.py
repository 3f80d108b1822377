"""Publishers other than browsers and aiortc on the WHIP endpoint of a real recorderd:
FFmpeg's WHIP muxer (from PyAV's libavformat) and an OBS-style offer.

(Headless Chromium publishing is tests/e2e/test_browser.py.)
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.api import call, wait_status
from tests.support.daemon import Daemon, run_daemon
from tests.support.ffmpeg_publisher import run_ffmpeg_whip, write_p256_certificate
from tests.support.media import probe
from tests.support.publisher import SyntheticPublisher


@pytest.fixture(scope="module")
def daemon(redis_url: str) -> Iterator[Daemon]:
    with run_daemon(redis_url, max_per_room=1, max_per_user=10) as d:
        yield d


async def record_while(daemon: Daemon, room: str, fmt: str, publish: Any,
                       seconds: float) -> dict[str, Any]:
    """Start a recording, run `publish` (a coroutine) beside it, stop after `seconds` of
    media; returns the final state."""
    headers = daemon.headers(f"user-{room}", rooms=[room])
    rooms_url = f"{daemon.url}/api/webrtc/rooms/{room}"
    async with aiohttp.ClientSession() as http:
        state = await call(http, "POST", f"{rooms_url}/recording/start", headers, 201,
                           json={"format": fmt, "quality": "low"})
        base = f"{rooms_url}/recording/{state['recording_id']}"
        publisher = asyncio.create_task(publish(headers["Authorization"][7:]))
        await wait_status(http, base, headers, {"recording"}, within=90)
        await asyncio.sleep(seconds)
        await call(http, "POST", f"{base}/stop", headers, 200)
        final = await wait_status(http, base, headers, {"completed", "failed"}, within=60)
        await publisher
    return final


def check_playable(daemon: Daemon, final: dict[str, Any], codecs: tuple[str, str]) -> None:
    assert final["status"] == "completed", final
    info = probe(daemon.storage / final["recording_id"] / final["file_name"])
    assert (info.video_codec, info.audio_codec) == codecs
    assert (info.width, info.height) == (854, 480)
    wall = (datetime.fromisoformat(final["stopped_at"])
            - datetime.fromisoformat(final["started_at"])).total_seconds()
    assert abs(info.duration - wall) < 0.6, (info, wall)
    assert abs(final["duration_seconds"] - info.duration) < 0.5
    assert info.audio_seconds > info.duration - 1.0
    assert info.mean_luma > 20, "the publisher's picture is missing"


async def test_ffmpeg_whip_muxer_with_a_p256_certificate_records_a_playable_file(
    daemon: Daemon, tmp_path: Path,
) -> None:
    cert, key = write_p256_certificate(tmp_path)
    runs = []

    async def publish(token: str) -> None:
        runs.append(await run_ffmpeg_whip(f"{daemon.url}/whip/ffmpeg-room", token, seconds=9,
                                          cert=cert, key=key))

    final = await record_while(daemon, "ffmpeg-room", "mp4", publish, seconds=4)
    [run] = runs
    assert run.returncode == 0, run.output[-3000:]
    check_playable(daemon, final, ("h264", "aac"))
    assert {(t["kind"], t["codec"]) for t in final["tracks"]} == {("video", "h264"),
                                                                  ("audio", "opus")}


async def test_ffmpeg_default_certificate_is_refused_and_the_node_carries_on(
    daemon: Daemon,
) -> None:
    """FFmpeg's own certificate is on curve P-224, which the OpenSSL under aiortc (built
    without the TLS groups RFC 8422 deprecated) cannot negotiate: docs/usage.md says so."""
    token = daemon.headers("ffmpeg-default")["Authorization"][7:]
    run = await run_ffmpeg_whip(f"{daemon.url}/whip/ffmpeg-default", token, seconds=2)
    assert run.returncode != 0
    assert "DTLS" in run.output
    assert daemon.process.poll() is None
    async with aiohttp.ClientSession() as http, http.get(f"{daemon.url}/healthz") as response:
        assert response.status == 200


def obs_style(offer: str) -> str:
    """Rewrite an aiortc offer the way OBS's WHIP output (libdatachannel) writes one: ICE
    and DTLS at session level with a single fingerprint, one codec per section (H.264
    constrained baseline, packetization-mode 1; Opus stereo), no RTX, ``a=group:LS``,
    ``ice-options:ice2,trickle``, every candidate already in (OBS does not trickle)."""
    ufrag = re.search(r"a=ice-ufrag:(\S+)", offer)
    pwd = re.search(r"a=ice-pwd:(\S+)", offer)
    fingerprint = re.search(r"a=fingerprint:sha-256 (\S+)", offer)
    assert ufrag
    assert pwd
    assert fingerprint
    sections = offer.split("\r\nm=")[1:]
    lines = ["v=0", "o=rtc 2867326316 0 IN IP4 127.0.0.1", "s=-", "t=0 0",
             "a=group:BUNDLE 0 1", "a=group:LS 0 1", "a=msid-semantic:WMS *",
             "a=setup:actpass", f"a=ice-ufrag:{ufrag[1]}", f"a=ice-pwd:{pwd[1]}",
             "a=ice-options:ice2,trickle", f"a=fingerprint:sha-256 {fingerprint[1]}"]
    for section in sections:
        body = section.split("\r\n")
        kind, port = body[0].split()[:2]
        if kind == "audio":
            pt = re.search(r"a=rtpmap:(\d+) opus/48000/2", section)
            assert pt
            codec = [f"a=rtpmap:{pt[1]} opus/48000/2",
                     f"a=fmtp:{pt[1]} minptime=10;maxaveragebitrate=96000;stereo=1;"
                     "sprop-stereo=1;useinbandfec=1"]
        else:
            pt = re.search(r"a=fmtp:(\d+) [^\r\n]*profile-level-id=42e01f", section)
            assert pt
            codec = [f"a=rtpmap:{pt[1]} H264/90000", f"a=rtcp-fb:{pt[1]} nack",
                     f"a=rtcp-fb:{pt[1]} nack pli", f"a=rtcp-fb:{pt[1]} goog-remb",
                     f"a=fmtp:{pt[1]} profile-level-id=42e01f;packetization-mode=1;"
                     "level-asymmetry-allowed=1"]
        mid = re.search(r"a=mid:(\S+)", section)
        msid = re.search(r"a=msid:(\S+) (\S+)", section)
        ssrc = re.search(r"a=ssrc:(\d+) cname:(\S+)", section)
        assert mid
        assert msid
        assert ssrc
        lines += [f"m={kind} {port} UDP/TLS/RTP/SAVPF {pt[1]}", "c=IN IP4 127.0.0.1",
                  f"a=mid:{mid[1]}", "a=sendonly",
                  f"a=ssrc:{ssrc[1]} cname:{ssrc[2]}",
                  f"a=ssrc:{ssrc[1]} msid:{msid[1]} {msid[2]}",
                  f"a=msid:{msid[1]} {msid[2]}", "a=rtcp-mux", *codec,
                  *re.findall(r"a=candidate:[^\r\n]+", section), "a=end-of-candidates"]
    return "\r\n".join(lines) + "\r\n"


async def test_an_obs_style_offer_records_a_playable_file(daemon: Daemon) -> None:
    peer = SyntheticPublisher(video=(1280, 720), fps=15, video_codec="H264")
    answers: list[str] = []

    async def publish(token: str) -> None:
        offer = obs_style(await peer.offer())
        async with aiohttp.ClientSession() as http, http.post(
            f"{daemon.url}/whip/obs-room", data=offer.encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/sdp"},
        ) as response:
            answers.append(await response.text())
            assert response.status == 201, answers[-1]
            assert response.headers["Location"].startswith("/whip/obs-room/")
        await peer.accept(answers[-1])
        await peer.wait_connected()

    try:
        final = await record_while(daemon, "obs-room", "mkv", publish, seconds=3)
    finally:
        await peer.close()
    assert "a=setup:active" in answers[0]
    check_playable(daemon, final, ("h264", "opus"))
