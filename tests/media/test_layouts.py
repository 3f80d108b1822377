"""Layouts end to end: synthetic publishers in, files decoded back with PyAV.

Each synthetic source has its own flat colour, so sampling the centre of each tile of the
decoded picture says which source it shows. Runs on a fake clock (faster than real time).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from recorder.core.presets import Format, Layout, Quality
from recorder.media.capture import Capture, CaptureResult, CaptureSpec
from recorder.media.compose import Compositor
from recorder.media.sources import SCREEN, Publisher
from tests.media.pixels import (
    BLUE,
    GREEN,
    MAGENTA,
    RED,
    YELLOW,
    YUV,
    colour_at,
    name_of,
    names_at,
    video_size,
)
from tests.support.file_analysis import probe
from tests.support.synth import FakeClock, Scenario, play, tone, video_frame


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def uv(colour: YUV) -> tuple[int, int]:
    return int(colour[1]), int(colour[2])


def coloured(sc: Scenario, source: str, start: float, end: float, colour: YUV,
             fps: float = 15.0) -> None:
    sc.video(source, start, end, fps=fps, luma=lambda t: int(colour[0]), uv=uv(colour))


def joins(sc: Scenario, at: float, source: str, kind: str, publisher: Publisher) -> None:
    sc.at(at, lambda c, now: c.add_source(source, kind, publisher))


def leaves(sc: Scenario, at: float, *sources: str) -> None:
    def run(c: Capture, now: float) -> None:
        for source in sources:
            c.remove_source(source)
    sc.at(at, run)


async def record(path: Path, layout: Layout, sc: Scenario, stop_at: float,
                 sources: Sequence[tuple[str, str, Publisher | None]],
                 quality: Quality = Quality.LOW) -> CaptureResult:
    clock = FakeClock()
    capture = Capture(CaptureSpec("rec-layout", path, Format.WEBM, quality, layout),
                      clock=clock)
    for source_id, kind, publisher in sources:
        capture.add_source(source_id, kind, publisher)
    origin = clock.now
    await play(capture, sc, clock, origin)
    clock.now = origin + stop_at
    return await asyncio.to_thread(capture.stop)


# LOW is 854x480: three tiles are 2x2 (426/428 x 240) with the third centred below.
GRID3 = {"first": (213, 120), "second": (640, 120), "third": (425, 360),
         "below left": (100, 420), "below right": (780, 420)}
SIDE_BY_SIDE = {"left": (213, 240), "right": (640, 240), "left bar": (213, 60)}


async def test_three_publishers_each_show_in_their_own_tile(tmp_path: Path) -> None:
    sc = Scenario()
    for source, colour in (("a", RED), ("b", GREEN), ("c", BLUE)):
        coloured(sc, source, 0.0, 2.0, colour)
    result = await record(tmp_path / "r.webm", Layout.COMPOSITE, sc, 2.0,
                          [(s, "video", None) for s in ("a", "b", "c")])

    assert video_size(result.path) == (854, 480)
    [seen] = names_at(result.path, [1.5], GRID3).values()
    assert seen == {"first": "red", "second": "green", "third": "blue",
                    "below left": "black", "below right": "black"}
    assert [(f.path, f.kind, f.offset_seconds) for f in result.files] == [
        (result.path, "composite", 0.0)]


async def test_a_screen_share_gets_the_large_tile(tmp_path: Path) -> None:
    sc = Scenario()
    coloured(sc, "cam1", 0.0, 2.0, RED)
    coloured(sc, "screen", 0.0, 2.0, YELLOW)
    coloured(sc, "cam2", 0.0, 2.0, GREEN)
    result = await record(tmp_path / "r.webm", Layout.COMPOSITE, sc, 2.0, [
        ("cam1", "video", Publisher("s1", "teacher")),
        ("screen", "video", Publisher("s2", "teacher-screen", SCREEN)),
        ("cam2", "video", Publisher("s3", "student")),
    ])

    # 854x480: the screen's tile is the left 642 columns, the strip the right 212
    [seen] = names_at(result.path, [1.5], {"large": (321, 240), "large left": (60, 240),
                                          "strip top": (748, 120),
                                          "strip bottom": (748, 360)}).values()
    assert seen == {"large": "yellow", "large left": "yellow", "strip top": "red",
                    "strip bottom": "green"}


async def test_the_grid_reflows_as_publishers_leave_and_join(tmp_path: Path) -> None:
    sc = Scenario()
    sc.audio("mic", 0.0, 5.0, lambda first, n: tone(440, first, n))
    coloured(sc, "a", 0.0, 4.5, RED)
    coloured(sc, "b", 0.0, 2.0, GREEN)
    coloured(sc, "c", 0.0, 4.5, BLUE)
    leaves(sc, 2.0, "b")
    joins(sc, 3.0, "d", "video", Publisher("s4", "late"))
    coloured(sc, "d", 3.05, 4.5, MAGENTA)
    leaves(sc, 4.5, "a", "c", "d")
    result = await record(tmp_path / "r.webm", Layout.COMPOSITE, sc, 5.0,
                          [("mic", "audio", None)] + [(s, "video", None) for s in "abc"])

    seen = names_at(result.path, [1.0, 2.6, 3.8, 4.8],
                    {**GRID3, **SIDE_BY_SIDE, "centre": (427, 240)})
    assert {k: seen[1.0][k] for k in ("first", "second", "third")} == {
        "first": "red", "second": "green", "third": "blue"}
    assert {k: seen[2.6][k] for k in SIDE_BY_SIDE} == {
        "left": "red", "right": "blue", "left bar": "black"}
    assert {k: seen[3.8][k] for k in ("first", "second", "third")} == {
        "first": "red", "second": "blue", "third": "magenta"}  # the late one joins below
    assert set(seen[4.8].values()) == {"black"}  # nobody left: black, not a frozen face
    p = probe(result.path)
    assert p.duration == pytest.approx(5.0, abs=0.2)
    assert p.audio_duration == pytest.approx(p.video_duration, abs=0.1)
    assert p.tone_level(440, 0.2, 4.8) > 0.2  # audio ran on through every re-flow


async def test_tracks_writes_one_file_per_publisher_and_a_reconnect_continues_it(
        tmp_path: Path) -> None:
    alice, bob = Publisher("s1", "alice"), Publisher("s2", "bob")
    alice_again, alice_back = Publisher("s3", "alice"), Publisher("s4", "alice")
    sc = Scenario()
    sc.audio("a1/audio", 0.0, 2.5, lambda first, n: tone(440, first, n))
    coloured(sc, "a1/video", 0.0, 2.5, RED)
    joins(sc, 0.5, "c/video", "video", Publisher("s9", "carol"))  # never sends anything
    joins(sc, 1.0, "b/audio", "audio", bob)
    joins(sc, 1.0, "b/video", "video", bob)
    sc.audio("b/audio", 1.0, 4.0, lambda first, n: tone(1000, first, n))
    coloured(sc, "b/video", 1.0, 4.0, GREEN)
    joins(sc, 1.5, "a3/video", "video", alice_again)  # alice on a second device
    coloured(sc, "a3/video", 1.5, 4.0, BLUE)
    leaves(sc, 2.5, "a1/audio", "a1/video")
    joins(sc, 3.0, "a4/audio", "audio", alice_back)  # the first device reconnects
    joins(sc, 3.0, "a4/video", "video", alice_back)
    sc.audio("a4/audio", 3.0, 4.0, lambda first, n: tone(440, first, n))
    coloured(sc, "a4/video", 3.0, 4.0, MAGENTA)
    result = await record(tmp_path, Layout.TRACKS, sc, 4.0,
                          [("a1/audio", "audio", alice), ("a1/video", "video", alice)])

    files = {f.path.name: f for f in result.files}
    assert list(files) == ["alice.webm", "bob.webm", "alice-2.webm"]
    assert listing(tmp_path) == sorted(files)  # no carol.webm
    assert result.path == tmp_path / "alice.webm"
    assert result.duration_seconds == pytest.approx(4.0, abs=0.05)
    expected = {"alice.webm": (0.0, 4.0), "bob.webm": (1.0, 3.0), "alice-2.webm": (1.5, 2.5)}
    for name, (offset, duration) in expected.items():
        f = files[name]
        assert f.kind == "track"
        assert f.offset_seconds == pytest.approx(offset, abs=0.05)
        assert f.duration_seconds == pytest.approx(duration, abs=0.05)
        assert f.offset_seconds + f.duration_seconds == pytest.approx(4.0, abs=0.01)
        p = probe(f.path)
        assert (p.width, p.height) == (854, 480)
        assert p.sizes == {(854, 480)}
        assert p.fps == pytest.approx(24, rel=0.01)
        assert p.video_duration == pytest.approx(duration, abs=0.15)
        assert p.audio_duration == pytest.approx(duration, abs=0.15)

    centre = {"centre": (427, 240)}
    alice_seen = names_at(tmp_path / "alice.webm", [1.0, 2.75, 3.5], centre)
    assert [alice_seen[t]["centre"] for t in (1.0, 2.75, 3.5)] == ["red", "black", "magenta"]
    a = probe(tmp_path / "alice.webm")
    assert a.tone_level(440, 0.2, 2.3) > 0.2
    assert a.rms(2.6, 2.9) < 0.01  # away: silence, and the file kept its clock
    assert a.tone_level(440, 3.2, 3.8) > 0.2  # back, at the right time
    assert a.tone_level(1000, 0.2, 3.8) < 0.02  # nobody else's audio
    b = probe(tmp_path / "bob.webm")
    assert b.tone_level(1000, 0.2, 2.8) > 0.2
    assert b.tone_level(440, 0.2, 2.8) < 0.02
    assert names_at(tmp_path / "bob.webm", [1.5], centre)[1.5]["centre"] == "green"
    assert names_at(tmp_path / "alice-2.webm", [1.0], centre)[1.0]["centre"] == "blue"
    assert b.rms(0.0, b.audio_duration) > 0.1  # bob's own file, not alice-2's silence
    assert probe(tmp_path / "alice-2.webm").rms(0.0, 2.4) < 0.01  # that device sends no audio


async def test_tracks_without_any_media_leave_no_file(tmp_path: Path) -> None:
    clock = FakeClock()
    capture = Capture(CaptureSpec("rec-empty", tmp_path, Format.MP4, Quality.LOW,
                                  Layout.TRACKS), clock=clock)
    capture.add_source("x/video", "video", Publisher("s1", "x"))
    clock.now += 1.0
    result = await asyncio.to_thread(capture.stop)
    assert result.files == ()
    assert listing(tmp_path) == []


async def test_tracks_abort_deletes_every_file(tmp_path: Path) -> None:
    sc = Scenario()
    coloured(sc, "a", 0.0, 1.0, RED)
    coloured(sc, "b", 0.0, 1.0, GREEN)
    clock = FakeClock()
    capture = Capture(CaptureSpec("rec-abort", tmp_path, Format.MKV, Quality.LOW,
                                  Layout.TRACKS), clock=clock)
    capture.add_source("a", "video", Publisher("s1", "ann"))
    capture.add_source("b", "video", Publisher("s2", "ben"))
    await play(capture, sc, clock, clock.now)
    assert listing(tmp_path) == ["ann.mkv", "ben.mkv"]
    await asyncio.to_thread(capture.abort)
    assert listing(tmp_path) == []


# ---- the compositor: work only where something changed ----------------------------------


def picture(width: int, height: int, colour: YUV) -> Any:
    return video_frame(width, height, int(colour[0]), 0, uv(colour))


def test_one_full_size_picture_goes_to_the_encoder_untouched() -> None:
    comp = Compositor(1280, 720)
    comp.arrange(["a"])
    frame = picture(1280, 720, RED)
    comp.show("a", frame)
    assert comp.render() is frame
    assert comp.render() is frame
    assert (comp.scaled, comp.painted) == (0, 0)


def test_each_picture_is_scaled_once_and_only_changed_tiles_are_painted() -> None:
    comp = Compositor(1280, 720)
    comp.arrange(["a", "b", "c", "d"])
    for source, colour in zip("abcd", (RED, GREEN, BLUE, MAGENTA), strict=True):
        comp.show(source, picture(1280, 720, colour))
    canvas = comp.render()
    assert (comp.scaled, comp.painted) == (4, 4)
    assert name_of(colour_at(canvas, 960, 540)) == "magenta"

    for _ in range(5):  # repeated slots: the same canvas, no work at all
        assert comp.render() is canvas
    assert (comp.scaled, comp.painted) == (4, 4)

    comp.show("b", picture(1280, 720, YELLOW))
    assert comp.render() is canvas  # drawn in place
    assert (comp.scaled, comp.painted) == (5, 5)
    assert name_of(colour_at(canvas, 960, 180)) == "yellow"
    assert name_of(colour_at(canvas, 320, 180)) == "red"

    comp.arrange(["a", "b", "d"])  # c left: d moves, tiles keep their size
    moved = comp.render()
    assert comp.scaled == 5  # the scaled pictures were reused
    assert comp.painted == 8
    assert name_of(colour_at(moved, 640, 540)) == "magenta"
    assert name_of(colour_at(moved, 100, 540)) == "black"


def test_a_smaller_picture_in_a_tile_leaves_no_trace_of_the_larger_one() -> None:
    comp = Compositor(1280, 720)
    comp.arrange(["a", "b"])
    comp.show("a", picture(1280, 720, RED))  # 640x360 in the left 640x720 tile
    comp.show("b", picture(1280, 720, GREEN))
    canvas = comp.render()
    assert name_of(colour_at(canvas, 20, 360)) == "red"
    comp.show("a", picture(360, 640, BLUE))  # portrait: 404x720 in the middle of the tile
    canvas = comp.render()
    assert name_of(colour_at(canvas, 320, 360)) == "blue"
    assert name_of(colour_at(canvas, 20, 360)) == "black"
    assert name_of(colour_at(canvas, 960, 360)) == "green"
