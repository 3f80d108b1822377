"""End to end: a real recorderd pulls rooms from a WHEP server and a Cloudflare Realtime SFU
(both doubles serving real media from aiortc peers) and records them to files at the preset.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
import pytest

from tests.connectors.cloudflare_api import APP_ID, APP_SECRET, CloudflareDouble, serve_cloudflare
from tests.support.api import call, wait_status
from tests.support.daemon import Daemon, run_daemon
from tests.support.media import probe
from tests.support.publisher import SharedClock, SyntheticAudio, SyntheticVideo
from tests.support.recording_files import media_files
from tests.support.redis_server import free_port
from tests.support.timed_events import subtitle_cues
from tests.support.whep_server import TOKEN, WhepServer, serve_whep

NO_MEDIA_SECONDS = 12
PUBLISHER = "0d9f2c4b6a8e4f10b2c3d4e5f6a7b8c9"
WHEP_PORT = free_port()  # every WHEP server of this module serves here, one at a time
WHEP_ORIGIN = f"http://127.0.0.1:{WHEP_PORT}"  # the daemon's RECORDER_PULL_ALLOWED_URLS


@pytest.fixture(scope="module")
def cf_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def daemon(redis_url: str, cf_port: int) -> Iterator[Daemon]:
    with run_daemon(redis_url, max_per_room=1, max_per_user=10,
                    pull_allowed_urls=WHEP_ORIGIN,
                    no_media_timeout_seconds=NO_MEDIA_SECONDS,
                    cf_realtime_app_id=APP_ID, cf_realtime_app_secret=APP_SECRET,
                    cf_realtime_api_base=f"http://127.0.0.1:{cf_port}/v1") as d:
        yield d


def seconds_between(state: dict[str, Any], start: str, end: str) -> float:
    return (datetime.fromisoformat(state[end]) - datetime.fromisoformat(state[start])
            ).total_seconds()


async def record(daemon: Daemon, room: str, source: dict[str, Any], seconds: float,
                 during: Any = None, quality: str = "low") -> dict[str, Any]:
    """Start a pulled recording, let it run, stop it; returns the final state."""
    headers = daemon.headers(f"user-{room}", rooms=[room])
    rooms_url = f"{daemon.url}/api/webrtc/rooms/{room}"
    async with aiohttp.ClientSession() as http:
        state = await call(http, "POST", f"{rooms_url}/recording/start", headers, 201,
                           json={"format": "webm", "quality": quality, "source": source})
        base = f"{rooms_url}/recording/{state['recording_id']}"
        await wait_status(http, base, headers, {"recording"}, within=60)
        if during is not None:
            await during()
        await asyncio.sleep(seconds)
        stopped = await call(http, "POST", f"{base}/stop", headers, 200)
        assert stopped["stop_reason"] == "requested"
        return await wait_status(http, base, headers, {"completed", "failed"}, within=60)


def check_file(daemon: Daemon, final: dict[str, Any], gap: float = 0.0, slack: float = 0.6,
               size: tuple[int, int] = (854, 480)) -> Path:
    """The one file: VP8 + Opus at ``size`` (the preset's, or the upstream's with
    ``source``), as long as the recording minus ``gap``, with picture and sound."""
    assert final["status"] == "completed", final
    assert len(media_files(final)) == 1
    path: Path = daemon.storage / final["recording_id"] / final["file_name"]
    info = probe(path)
    assert (info.video_codec, info.audio_codec) == ("vp8", "opus")
    assert (info.width, info.height) == size
    expected = seconds_between(final, "started_at", "stopped_at") - gap
    assert abs(info.duration - expected) < slack, (info, expected)
    assert abs(final["duration_seconds"] - info.duration) < 0.5
    assert info.mean_luma > 20, "the upstream's picture is missing"
    assert info.audio_seconds > expected - 1.0
    return path


async def test_a_whep_pull_records_at_the_preset(daemon: Daemon) -> None:
    server = WhepServer(video=(640, 360), fps=15)
    async with serve_whep(server, WHEP_PORT) as url:
        final = await record(daemon, "whep-room", {"type": "whep", "url": url, "token": TOKEN},
                             seconds=4)
        assert len(server.sessions) == 1
        assert server.deletes == list(server.sessions)  # DELETE on stop
    assert final["source"] == {"type": "whep", "url": url}  # the token is never stored
    assert {(t["kind"], t["codec"]) for t in final["tracks"]} == {("video", "vp8"),
                                                                  ("audio", "opus")}
    check_file(daemon, final)


async def test_a_cloudflare_pull_records_at_the_preset(daemon: Daemon, cf_port: int) -> None:
    double = CloudflareDouble()
    clock = SharedClock()
    double.publish(PUBLISHER, {"camera": lambda: SyntheticVideo(clock, 640, 360, 15),
                               "microphone": lambda: SyntheticAudio(clock)})
    source = {"type": "cloudflare", "session_id": PUBLISHER,
              "track_names": ["camera", "microphone"]}
    async with serve_cloudflare(double, cf_port):
        final = await record(daemon, "cf-room", source, seconds=4)
    calls = [(method, re.sub(r"/sessions/[0-9a-f]{32}/", "/sessions/{id}/", path), status)
             for method, path, status in double.calls]
    assert calls == [("POST", "/sessions/new", 201), ("POST", "/sessions/{id}/tracks/new", 200),
                     ("PUT", "/sessions/{id}/renegotiate", 200),
                     ("PUT", "/sessions/{id}/tracks/close", 200)]  # closed on stop
    assert final["source"] == {**source, "app_id": APP_ID}  # the app's default, no secret
    assert {t["publisher_id"] for t in final["tracks"]} == {PUBLISHER}
    check_file(daemon, final)


def check_as_received(daemon: Daemon, final: dict[str, Any]) -> None:
    """The daemon wrote the upstream's VP8 and Opus into the file as they came, and its
    pull decoded nothing."""
    rid = final["recording_id"]
    log = daemon.log()
    assert re.search(rf"recording {rid}: writing \S+ \(video vp8 as received, "
                     rf"audio opus as received\)", log), log[-4000:]
    closed = re.findall(rf"recording {rid}: .* closed after (\d+) frames \((\d+) decoded\)",
                        log)
    assert closed, log[-4000:]
    assert sum(int(frames) for frames, _ in closed) > 100
    assert all(decoded == "0" for _, decoded in closed)


async def test_a_whep_pull_at_source_quality_records_the_upstreams_vp8_as_received(
    daemon: Daemon,
) -> None:
    server = WhepServer(video=(640, 360), fps=15)
    async with serve_whep(server, WHEP_PORT) as url:
        final = await record(daemon, "whep-source", {"type": "whep", "url": url,
                                                     "token": TOKEN}, seconds=4,
                             quality="source")
    check_file(daemon, final, size=(640, 360))
    check_as_received(daemon, final)


async def test_a_cloudflare_pull_at_source_quality_records_vp8_as_received(
    daemon: Daemon, cf_port: int,
) -> None:
    double = CloudflareDouble()
    clock = SharedClock()
    double.publish(PUBLISHER, {"camera": lambda: SyntheticVideo(clock, 640, 360, 15),
                               "microphone": lambda: SyntheticAudio(clock)})
    source = {"type": "cloudflare", "session_id": PUBLISHER,
              "track_names": ["camera", "microphone"]}
    async with serve_cloudflare(double, cf_port):
        final = await record(daemon, "cf-source", source, seconds=4, quality="source")
    check_file(daemon, final, size=(640, 360))
    check_as_received(daemon, final)


def video_frames(path: Path) -> tuple[list[float], list[np.ndarray]]:
    """Every decoded picture's mean luma, and a small copy of it."""
    lumas: list[float] = []
    thumbs: list[np.ndarray] = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            gray = frame.to_ndarray(format="gray")
            lumas.append(float(gray.mean()))
            thumbs.append(gray[::8, ::8].astype(np.int16))
    return lumas, thumbs


def longest_still(thumbs: list[np.ndarray]) -> int:
    """The longest run of consecutive pictures that do not change (a frozen picture)."""
    longest = run = 1
    for before, after in itertools.pairwise(thumbs):
        run = run + 1 if np.abs(after - before).mean() < 1.0 else 1
        longest = max(longest, run)
    return longest


# `low` makes 24 pictures a second at its size; `source` keeps the upstream's 15 at its own
@pytest.mark.parametrize(("quality", "size", "fps"), [("low", (854, 480), 24),
                                                      ("source", (640, 360), 15)])
async def test_a_whep_connection_cut_for_5_s_yields_one_continuous_file(
    daemon: Daemon, quality: str, size: tuple[int, int], fps: int,
) -> None:
    server = WhepServer(video=(640, 360), fps=15, shade=40)
    cut_at: list[float] = []

    async def cut() -> None:
        await asyncio.sleep(3)
        server.shade = 170  # the sessions after the cut show a brighter picture
        cut_at.append(time.monotonic())
        await server.cut(5.0)
        await server.wait_sessions(2)  # the node comes back on its own

    async with serve_whep(server, WHEP_PORT) as url:
        final = await record(daemon, f"cut-{quality}",
                             {"type": "whep", "url": url, "token": TOKEN},
                             seconds=3, during=cut, quality=quality)
    [_, second] = sorted(server.sessions.values(), key=lambda s: s.created_at)
    gap = second.created_at - cut_at[0]  # from the cut to the new session's answer
    assert gap >= 5.0
    # The file is shorter than the recording's wall time by the outage (plus the new
    # session's connection time, hence the larger slack).
    path = check_file(daemon, final, gap=gap, slack=1.0, size=size)
    if quality == "source":  # both sessions' pictures in the one stream, as they came
        check_as_received(daemon, final)
    assert final["stop_reason"] == "requested"  # no no_media: the outage was shorter

    lumas, thumbs = video_frames(path)
    # The file starts with the first media of either kind; when audio leads, the first
    # frames are black until the first picture: that is not the outage, skip them.
    first = next(i for i, luma in enumerate(lumas) if luma > 30)
    assert first < 5
    lumas, thumbs = lumas[first:], thumbs[first:]
    before = [luma for luma in lumas if luma < 110]
    after = [luma for luma in lumas if luma >= 110]
    assert len(before) > fps * 2  # both sessions are in the one file
    assert len(after) > fps * 2
    assert lumas.index(after[0]) > lumas.index(before[-1]) - 2  # first the old, then the new
    # The outage is cut, not held: no picture stands still for a second, none is black.
    assert longest_still(thumbs) < fps
    assert min(lumas) > 30


async def test_an_upstream_that_never_returns_stops_with_no_media(daemon: Daemon) -> None:
    server = WhepServer(video=(640, 360), fps=15)
    room = "gone-room"
    headers = daemon.headers(f"user-{room}", rooms=[room])
    rooms_url = f"{daemon.url}/api/webrtc/rooms/{room}"
    async with serve_whep(server, WHEP_PORT) as url, aiohttp.ClientSession() as http:
        state = await call(http, "POST", f"{rooms_url}/recording/start", headers, 201,
                           json={"quality": "low", "source": {"type": "whep", "url": url,
                                                              "token": TOKEN}})
        base = f"{rooms_url}/recording/{state['recording_id']}"
        await wait_status(http, base, headers, {"recording"}, within=60)
        await asyncio.sleep(2)
        cut_at = time.monotonic()
        await server.cut(3600)
        final = await wait_status(http, base, headers, {"completed", "failed"},
                                  within=NO_MEDIA_SECONDS + 60)
        waited = time.monotonic() - cut_at
    assert final["status"] == "completed", final
    assert final["stop_reason"] == "no_media"
    assert waited >= NO_MEDIA_SECONDS - 1  # it kept trying for the whole timeout
    assert len(server.posts) > 2  # reconnects were attempted meanwhile
    info = probe(daemon.storage / final["recording_id"] / final["file_name"])
    assert abs(info.duration - 2.0) < 0.6, info  # what came before the cut, without the gap


async def start_refused(daemon: Daemon, room: str, source: dict[str, Any]) -> dict[str, Any]:
    headers = daemon.headers(f"user-{room}", rooms=[room])
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{daemon.url}/api/webrtc/rooms/{room}/recording/start",
                             headers=headers, json={"source": source}) as response:
            assert response.status == 502, await response.text()
            assert response.content_type == "application/problem+json"
            problem: dict[str, Any] = await response.json()
        state = await call(http, "GET", f"{daemon.url}/api/webrtc/rooms/{room}/recording/"
                           f"{problem['recording_id']}/status", headers, 200)
    assert state["status"] == "failed"
    assert state["error"].startswith("source: ")
    return problem


async def test_unreachable_and_refusing_sources_fail_with_502_and_free_the_slot(
    daemon: Daemon,
) -> None:
    room = "refused-room"  # max_per_room is 1: a second start only passes if the slot is free
    problem = await start_refused(daemon, room, {
        "type": "whep", "url": f"{WHEP_ORIGIN}/whep/nothing"})  # allowed, nothing listens
    assert "upstream_status" not in problem  # nothing answered
    assert "unreachable" in problem["detail"]

    server = WhepServer()
    async with serve_whep(server, WHEP_PORT) as url:
        problem = await start_refused(daemon, room, {"type": "whep", "url": url,
                                                     "token": "wrong"})
        assert problem["upstream_status"] == 401
        server.refuse = (403, None)
        problem = await start_refused(daemon, room, {"type": "whep", "url": url,
                                                     "token": TOKEN})
    assert problem["upstream_status"] == 403
    assert problem["status"] == 502
    assert server.posts[0]["Authorization"] == "Bearer wrong"  # the start's token was sent


async def test_malformed_sdp_from_upstream_fails_the_recording_not_the_node(
    daemon: Daemon,
) -> None:
    server = WhepServer(mode="malformed")
    async with serve_whep(server, WHEP_PORT) as url:
        problem = await start_refused(daemon, "malformed-room",
                                      {"type": "whep", "url": url, "token": TOKEN})
        assert server.deletes == list(server.sessions)  # the bad session was ended
    assert problem["upstream_status"] == 201
    assert "SDP" in problem["detail"]
    assert daemon.process.poll() is None
    async with aiohttp.ClientSession() as http, http.get(f"{daemon.url}/healthz") as response:
        assert response.status == 200


async def test_a_cloudflare_pull_records_the_publishers_data_channel(
    daemon: Daemon, cf_port: int,
) -> None:
    double = CloudflareDouble()
    clock = SharedClock()
    double.publish(PUBLISHER, {"camera": lambda: SyntheticVideo(clock, 640, 360, 15),
                               "microphone": lambda: SyntheticAudio(clock)},
                   data_channels=("chat", "cursor"))
    source = {"type": "cloudflare", "session_id": PUBLISHER,
              "track_names": ["camera", "microphone"], "data_channels": ["chat"]}

    async def chat() -> None:
        await asyncio.wait_for(double.channel_open.wait(), 30)
        await asyncio.sleep(0.5)
        for text in ("hello from the SFU", "second"):
            assert double.send(PUBLISHER, "chat", text) == 1
            await asyncio.sleep(0.6)
        double.send(PUBLISHER, "cursor", "not subscribed")

    async with serve_cloudflare(double, cf_port):
        final = await record(daemon, "cf-chat", source, seconds=2, during=chat)
    calls = [(method, re.sub(r"/sessions/[0-9a-f]{32}/", "/sessions/{id}/", path), status)
             for method, path, status in double.calls]
    assert calls[:6] == [
        ("POST", "/sessions/new", 201), ("POST", "/sessions/{id}/tracks/new", 200),
        ("PUT", "/sessions/{id}/renegotiate", 200),
        ("POST", "/sessions/{id}/datachannels/establish", 200),
        ("PUT", "/sessions/{id}/renegotiate", 200),
        ("POST", "/sessions/{id}/datachannels/new", 200)]
    assert final["source"]["data_channels"] == ["chat"]
    check_file(daemon, final)
    folder = daemon.storage / final["recording_id"]
    lines = [json.loads(x) for x in (folder / "events.jsonl").read_text().splitlines()]
    assert [(e["source"], e["channel"], e["type"], e["user"], e["text"]) for e in lines] == [
        (PUBLISHER, "chat", "chat", PUBLISHER, "hello from the SFU"),
        (PUBLISHER, "chat", "chat", PUBLISHER, "second")]
    assert final["events"] == {"chat": {"recorded": 2, "dropped": 0}}
    cues = subtitle_cues(folder / final["file_name"])
    assert [text for _, _, text in cues] == [f"<v {PUBLISHER}>hello from the SFU",
                                             f"<v {PUBLISHER}>second"]
