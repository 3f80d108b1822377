"""Layouts end to end: a real recorderd records real aiortc publishers, one a screen share.

The camera sends a dark picture and the screen share a bright one, so the decoded files
say who landed where: in `composite` the screen fills the large tile, in `tracks` each
publisher has a file of its own named for its token's `sub`.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
import pytest

from tests.support.api import call, wait_status
from tests.support.daemon import Daemon, run_daemon
from tests.support.publisher import WhipPublisher
from tests.support.recording_files import media_files

SIZE = (640, 360)
FPS = 15
DARK, BRIGHT = 30, 220


@pytest.fixture(scope="module")
def daemon(redis_url: str) -> Iterator[Daemon]:
    with run_daemon(redis_url, max_per_room=1, max_per_user=10) as d:
        yield d


def publisher(daemon: Daemon, room: str, sub: str, shade: int,
              screen: bool = False) -> WhipPublisher:
    token = daemon.headers(sub, rooms=[room])["Authorization"][7:]
    url = f"{daemon.url}/whip/{room}" + ("?role=screen" if screen else "")
    return WhipPublisher(url, token, video=SIZE, fps=FPS, shade=shade)


async def record(daemon: Daemon, http: aiohttp.ClientSession, room: str, sub: str,
                 body: dict[str, Any], seconds: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """Start, record ``seconds`` of media, stop; (state at start, final state)."""
    headers = daemon.headers(sub, rooms=[room])
    rooms_url = f"{daemon.url}/api/webrtc/rooms/{room}"
    started = await call(http, "POST", f"{rooms_url}/recording/start", headers, 201,
                         json={"format": "webm", "quality": "low", **body})
    base = f"{rooms_url}/recording/{started['recording_id']}"
    await wait_status(http, base, headers, {"recording"})
    await asyncio.sleep(seconds)
    await call(http, "POST", f"{base}/stop", headers, 200)
    final = await wait_status(http, base, headers, {"completed", "failed"})
    assert final["status"] == "completed", final
    return started, final


def pictures(path: Path) -> list[tuple[float, np.ndarray[Any, Any]]]:
    """(time, luma plane) of every decoded picture."""
    out = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            out.append((float(frame.time or 0.0), frame.to_ndarray(format="gray")))
    return out


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def mean_luma(path: Path, after: float = 0.0) -> float:
    return float(np.mean([y.mean() for t, y in pictures(path) if t >= after]))


async def test_composite_gives_the_screen_share_the_large_tile(daemon: Daemon) -> None:
    room = "layout-composite"
    async with publisher(daemon, room, "teacher", DARK), \
            publisher(daemon, room, "teacher", BRIGHT, screen=True), \
            aiohttp.ClientSession() as http:
        await asyncio.sleep(1.0)
        started, final = await record(daemon, http, room, "teacher", {}, 3.0)

    assert started["layout"] == "composite"
    path = daemon.storage / final["recording_id"] / final["file_name"]
    assert path.name == f"recording_{final['recording_id']}.webm"
    assert [(f["name"], f["kind"]) for f in media_files(final)] == [(path.name, "composite")]
    assert final["frames"]["dropped"] == 0
    shown = [y for t, y in pictures(path) if t >= 1.0]
    assert shown
    assert shown[0].shape == (480, 854)
    # 854x480 with a screen share: the left 642 columns are its tile, the strip the rest
    large = float(np.mean([y[100:380, 40:600].mean() for y in shown]))
    strip = float(np.mean([y[:, 650:].mean() for y in shown]))
    assert large > 150, (large, strip)  # the bright screen fills the large tile
    assert strip < 80, (large, strip)  # the dark camera is small, in the strip
    strip_picture = float(np.mean([y[200:280, 660:840].mean() for y in shown]))
    assert 20 < strip_picture < 120  # ... and it is there, not black


async def test_tracks_writes_a_file_per_publisher_named_for_its_sub(daemon: Daemon) -> None:
    room = "layout-tracks"
    async with publisher(daemon, room, "teacher", DARK), \
            publisher(daemon, room, "teacher", BRIGHT, screen=True), \
            aiohttp.ClientSession() as http:
        await asyncio.sleep(1.0)
        started, final = await record(daemon, http, room, "teacher", {"layout": "tracks"}, 3.0)

    assert (started["layout"], started["file_name"], started["files"]) == ("tracks", "", [])
    files = {f["name"]: f for f in media_files(final)}
    assert sorted(files) == ["teacher-screen.webm", "teacher.webm"]
    assert final["file_name"] == final["files"][0]["name"] == "teacher.webm"
    assert final["frames"]["dropped"] == 0
    folder = daemon.storage / final["recording_id"]
    assert listing(folder) == sorted([*files, "manifest.json", "thumbnail.jpg"])
    for name, info in files.items():
        data = (folder / name).read_bytes()
        assert info["kind"] == "track"
        assert info["size"] == len(data)
        assert info["sha256"] == hashlib.sha256(data).hexdigest()
        assert abs(info["duration_seconds"] - final["duration_seconds"]) < 0.5
        first = pictures(folder / name)[0][1]
        assert first.shape == (480, 854)  # the preset's size, letterboxed
    assert final["sha256"] == files["teacher.webm"]["sha256"]
    assert final["file_size_bytes"] == files["teacher.webm"]["size"]
    assert mean_luma(folder / "teacher-screen.webm", after=0.5) > 150
    assert mean_luma(folder / "teacher.webm", after=0.5) < 60


async def test_a_publisher_that_reconnects_continues_its_file(daemon: Daemon) -> None:
    room = "layout-reconnect"
    headers = daemon.headers("pat", rooms=[room])
    rooms_url = f"{daemon.url}/api/webrtc/rooms/{room}"
    async with aiohttp.ClientSession() as http:
        async with publisher(daemon, room, "pat", BRIGHT):
            state = await call(http, "POST", f"{rooms_url}/recording/start", headers, 201,
                               json={"format": "webm", "quality": "low", "layout": "tracks"})
            base = f"{rooms_url}/recording/{state['recording_id']}"
            await wait_status(http, base, headers, {"recording"})
            await asyncio.sleep(2.0)
        left = time.monotonic()  # the WHIP session was deleted
        await asyncio.sleep(1.5)
        async with publisher(daemon, room, "pat", BRIGHT):
            back = time.monotonic()
            await asyncio.sleep(2.0)
            await call(http, "POST", f"{base}/stop", headers, 200)
        final = await wait_status(http, base, headers, {"completed", "failed"})

    assert final["status"] == "completed", final
    assert [f["name"] for f in media_files(final)] == ["pat.webm"]  # no pat-2
    path = daemon.storage / final["recording_id"] / "pat.webm"
    shown = [(t, float(y.mean())) for t, y in pictures(path)]
    assert shown[-1][0] == pytest.approx(final["duration_seconds"], abs=0.5)
    # When audio leads, the file's first frames are black until the first picture: skip them.
    first = next(t for t, luma in shown if luma > 150)
    assert first < 0.5
    shown = [(t, luma) for t, luma in shown if t >= first]
    dark = [t for t, luma in shown if luma < 40]
    assert dark, "no gap while the publisher was away"
    gap = max(dark) - min(dark)
    assert 0.8 * (back - left) - 0.5 < gap < (back - left) + 1.0, (gap, back - left)
    assert all(luma > 150 for t, luma in shown if t < min(dark) - 0.2)
    assert all(luma > 150 for t, luma in shown if t > max(dark) + 0.5)
    assert max(t for t, _ in shown) - max(dark) > 1.0  # it went on after the return
