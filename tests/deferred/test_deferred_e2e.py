"""`transcode: deferred` end to end: a real recorderd on a node too small for `ultra` live
records a real aiortc publisher as received, and after the stop makes the 4K60 file in a
low-priority child; a SIGTERM in the middle of that transcode is survived by a restart."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from tests.support.api import call, wait_status
from tests.support.daemon import Daemon, run_daemon, stop_cleanly
from tests.support.file_analysis import probe
from tests.support.publisher import WhipPublisher
from tests.support.recording_files import media_files

# A 4K60 encode runs many times slower than real time on two shared cores.
TRANSCODE_WAIT_SECONDS = 900
PREFIX = "webrtc:recording:"
BODY = {"format": "mp4", "quality": "ultra", "transcode": "deferred"}


async def record_deferred(daemon: Daemon, http: aiohttp.ClientSession, room: str,
                          seconds: float) -> tuple[str, dict[str, str], dict[str, Any]]:
    """Start deferred ultra, publish ``seconds``, stop; (status URL base, headers, state)."""
    headers = daemon.headers("host", rooms=[room])
    rooms_url = f"{daemon.url}/api/webrtc/rooms/{room}"
    async with WhipPublisher(f"{daemon.url}/whip/{room}", headers["Authorization"][7:],
                             video=(640, 360), fps=15):
        started = await call(http, "POST", f"{rooms_url}/recording/start", headers, 201,
                             json=BODY)
        assert (started["transcode"], started["quality"], started["format"]) == (
            "deferred", "ultra", "mp4")
        assert started["quality_settings"]["resolution"] == "3840x2160"
        base = f"{rooms_url}/recording/{started['recording_id']}"
        await wait_status(http, base, headers, {"recording"})
        await asyncio.sleep(seconds)
        stopped = await call(http, "POST", f"{base}/stop", headers, 200)
    assert stopped["status"] == "processing"
    return base, headers, stopped


def assert_ultra_file(daemon: Daemon, state: dict[str, Any], seconds: float) -> None:
    assert state["status"] == "completed", state
    folder = daemon.storage / state["recording_id"]
    name = f"recording_{state['recording_id']}.mp4"
    assert state["file_name"] == name
    assert [f["name"] for f in media_files(state)] == [name]
    assert sorted(p.name for p in folder.iterdir()) == sorted(  # the live files are gone
        [name, "manifest.json", "thumbnail.jpg"])
    assert state["frames"]["dropped"] == 0
    p = probe(folder / name)
    assert (p.width, p.height, round(p.fps)) == (3840, 2160, 60)
    assert p.video_codec == "h264"
    assert p.audio_codec == "aac"
    assert abs(p.duration - state["duration_seconds"]) < 0.2
    assert state["duration_seconds"] > seconds - 1.0
    assert len(p.frame_times) == round(state["duration_seconds"] * 60)
    assert p.rms(0.5, p.duration - 0.5) > 0.01  # the publisher's tone came through


async def test_deferred_ultra_completes_at_4k60_where_live_ultra_is_refused(
        redis_url: str) -> None:
    with run_daemon(redis_url, cpu_capacity=2, max_per_user=10) as daemon:
        async with aiohttp.ClientSession() as http:
            headers = daemon.headers("host", rooms=["live-ultra"])
            url = f"{daemon.url}/api/webrtc/rooms/live-ultra/recording/start"
            async with http.post(url, headers=headers,
                                 json={"format": "mp4", "quality": "ultra"}) as resp:
                assert resp.status == 429
                assert "cpu" in await resp.text()
            started_at = time.monotonic()
            base, headers, _ = await record_deferred(daemon, http, "deferred-ultra", 3.0)
            final = await wait_status(http, base, headers, {"completed", "failed"},
                                      within=TRANSCODE_WAIT_SECONDS)
            print(f"deferred ultra: stop to completed in {time.monotonic() - started_at:.1f} s")
            # the live part kept the publisher's VP8 as it came (no encoder ran live)
            assert "(video vp8 as received" in daemon.log()
            assert_ultra_file(daemon, final, 3.0)
            assert "nice 19" in daemon.log()


async def test_a_transcode_stopped_by_sigterm_finishes_after_the_restart(
        redis_url: str, tmp_path: Path) -> None:
    storage = tmp_path / "recordings"
    node = "deferred-node:1"
    with run_daemon(redis_url, storage=storage, node_id=node, cpu_capacity=2) as daemon:
        async with aiohttp.ClientSession() as http:
            base, headers, stopped = await record_deferred(daemon, http, "deferred-drain", 3.0)
            for _ in range(600):  # the child is at work, far from done
                if "transcode started" in daemon.log():
                    break
                await asyncio.sleep(0.1)
            assert "transcode started" in daemon.log()
            await asyncio.sleep(2.0)
        stop_cleanly(daemon.process, 40, "recorderd", daemon.log)  # SIGTERM, exit 0
        log = daemon.log()
    assert "runs again after the restart" in log, log[-3000:]
    store = aioredis.from_url(redis_url, decode_responses=True)
    try:  # between the two runs: `processing`, listed for its node, nothing described
        raw = await store.get(f"{PREFIX}state:{stopped['recording_id']}")
        assert raw is not None
        between = json.loads(raw)
        assert (between["status"], between["files"]) == ("processing", [])
        assert await store.sismember(f"{PREFIX}processing:{node}", stopped["recording_id"])
    finally:
        await store.aclose()
    live = daemon.storage / stopped["recording_id"] / "live"
    assert (live / "job.json").is_file()
    path = base.removeprefix(daemon.url)
    with run_daemon(redis_url, storage=storage, node_id=node, cpu_capacity=2) as daemon:
        async with aiohttp.ClientSession() as http:
            final = await wait_status(http, daemon.url + path, headers,
                                      {"completed", "failed"}, within=TRANSCODE_WAIT_SECONDS)
            assert_ultra_file(daemon, final, 3.0)
            assert "resuming its deferred transcode" in daemon.log()


async def test_a_node_killed_while_recording_live_transcodes_after_the_restart(
        redis_url: str, tmp_path: Path) -> None:
    """SIGKILL during the live part: the restarted node recovers the live files and makes
    the requested file from them (`recovered`, as any crash recovery)."""
    storage = tmp_path / "recordings"
    node = "deferred-crash:1"
    room = "deferred-crash"
    with run_daemon(redis_url, storage=storage, node_id=node) as daemon:
        headers = daemon.headers("host", rooms=[room])
        base = f"{daemon.url}/api/webrtc/rooms/{room}/recording"
        async with WhipPublisher(f"{daemon.url}/whip/{room}", headers["Authorization"][7:],
                                 video=(640, 360), fps=15) as publisher, \
                aiohttp.ClientSession() as http:
            started = await call(http, "POST", f"{base}/start", headers, 201, json={
                "format": "webm", "quality": "medium", "transcode": "deferred"})
            rid = started["recording_id"]
            await wait_status(http, f"{base}/{rid}", headers, {"recording"})
            await asyncio.sleep(4.0)
            daemon.process.send_signal(signal.SIGKILL)
            assert daemon.process.wait(10) == -signal.SIGKILL
            publisher.delete_status = 0  # its server is gone: nothing to delete
    with run_daemon(redis_url, storage=storage, node_id=node) as daemon:
        async with aiohttp.ClientSession() as http:
            path = f"/api/webrtc/rooms/{room}/recording/{rid}"
            final = await wait_status(http, daemon.url + path, headers,
                                      {"completed", "failed"}, within=TRANSCODE_WAIT_SECONDS)
            log = daemon.log()
    assert final["status"] == "completed", (final, log[-3000:])
    assert (final["stop_reason"], final["recovered"]) == ("recovered", True)
    name = f"recording_{rid}.webm"
    assert [f["name"] for f in media_files(final)] == [name]
    assert sorted(p.name for p in (storage / rid).iterdir()) == sorted(
        [name, "manifest.json", "thumbnail.jpg"])
    p = probe(storage / rid / name)
    assert (p.width, p.height, round(p.fps)) == (1280, 720, 30)
    assert p.duration > 4.0 - 2.0  # a kill loses at most the last 2 s
