"""Capture end to end: synthetic decoded frames in, files decoded back with PyAV.

Most tests run on a fake clock (faster than real time, same code paths: the encoder
threads read the injected clock); one runs in real time.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from av.video.frame import PictureType

from recorder.core.errors import MediaError
from recorder.core.presets import PRESETS, Format, Quality
from recorder.media.capture import Capture, CaptureResult, CaptureSpec
from tests.support.file_analysis import Probe, probe
from tests.support.synth import FakeClock, Scenario, advance, play, tone, video_frame

EXPECTED_CODECS = {Format.WEBM: ("vp8", "opus"), Format.MP4: ("h264", "aac"),
                   Format.MKV: ("h264", "opus")}


async def record(
    path: Path, fmt: Format, quality: Quality, scenario: Scenario, stop_at: float,
    sources: list[tuple[str, str]],
) -> tuple[CaptureResult, Probe, int]:
    clock = FakeClock()
    capture = Capture(CaptureSpec("rec-test", path, fmt, quality), clock=clock)
    for source_id, kind in sources:
        capture.add_source(source_id, kind)
    origin = clock.now
    starts = await play(capture, scenario, clock, origin)
    clock.now = origin + stop_at
    result = await asyncio.to_thread(capture.stop)
    return result, probe(path), starts


def assert_duration(p: Probe, expected: float) -> None:
    assert p.duration == pytest.approx(expected, abs=0.2)
    assert p.video_duration == pytest.approx(expected, abs=0.2)
    assert p.audio_duration == pytest.approx(expected, abs=0.2)
    assert p.audio_duration == pytest.approx(p.video_duration, abs=0.1)


@pytest.mark.parametrize(("fmt", "quality"), [(Format.WEBM, Quality.LOW),
                                              (Format.MP4, Quality.MEDIUM),
                                              (Format.MKV, Quality.HIGH)])
async def test_file_has_the_formats_codecs_and_the_presets_size_and_rate(
        tmp_path: Path, fmt: Format, quality: Quality) -> None:
    sc = Scenario()
    sc.audio("mic", 0.0, 3.0, lambda first, n: tone(440, first, n))
    sc.video("cam", 0.0, 3.0, fps=25, size=lambda t: (640, 480), luma=lambda t: 120)
    result, p, starts = await record(tmp_path / f"r.{fmt.value}", fmt, quality, sc, 3.0,
                                     [("mic", "audio"), ("cam", "video")])

    preset = PRESETS[quality]
    assert (p.video_codec, p.audio_codec) == EXPECTED_CODECS[fmt]
    assert (p.width, p.height) == (preset.width, preset.height)
    assert p.sizes == {(preset.width, preset.height)}
    assert p.fps == pytest.approx(preset.fps, rel=0.01)
    # constant rate: the sender's 25 fps became the preset's rate
    assert len(p.frame_times) == pytest.approx(3.0 * preset.fps, abs=2)
    assert result.duration_seconds == pytest.approx(3.0, abs=0.05)
    assert_duration(p, result.duration_seconds)
    assert p.tone_level(440, 0.5, 2.5) > 0.2
    assert p.luma_at(1.5) == pytest.approx(120, abs=8)
    assert starts == 1
    assert result.frames.received == sc.pushed
    assert result.frames.dropped == 0
    audio_frames = 150
    shown = result.frames.written - audio_frames
    assert 70 <= shown <= 75  # 75 pictures sent at 25 fps, each shown at least once


async def test_a_still_picture_repeats_with_a_keyframe_every_two_seconds(
        tmp_path: Path) -> None:
    # One decoded keyframe, then nothing (a screen share of a still slide): its picture
    # type must not make every repeated slot a keyframe.
    clock = FakeClock()
    path = tmp_path / "r.mp4"
    capture = Capture(CaptureSpec("rec-still", path, Format.MP4, Quality.LOW), clock=clock)
    capture.add_source("screen", "video")
    frame = video_frame(640, 360, 150, 0)
    frame.pict_type = PictureType.I
    assert capture.push("screen", frame, clock.now) is True
    await advance(capture, clock, 5.0)
    await asyncio.to_thread(capture.stop)

    p = probe(path)
    assert len(p.frame_times) == pytest.approx(5 * 24, abs=1)
    assert all(luma == pytest.approx(150, abs=6) for luma in p.lumas)
    starts = [k - p.keyframes[0] for k in p.keyframes]
    assert starts == pytest.approx([0.0, 2.0, 4.0], abs=0.05)


async def test_pause_cuts_the_paused_span_and_resume_continues_the_file(
        tmp_path: Path) -> None:
    sc = Scenario()

    def signal(first: int, n: int) -> object:
        t = first / 48_000
        if 2.0 <= t < 4.0:
            return tone(440, first, n)  # only while paused: must not be in the file
        if 4.5 <= t < 5.5:
            return tone(880, first, n)
        return tone(440, first, n, level=0.0)

    sc.audio("mic", 0.0, 6.0, signal)  # type: ignore[arg-type]
    sc.video("cam", 0.0, 6.0, luma=lambda t: 60 if t < 2 else (230 if t < 4 else 120))
    sc.at(2.0, lambda c, now: c.pause(now))
    sc.at(4.0, lambda c, now: c.resume(now))
    result, p, _ = await record(tmp_path / "r.webm", Format.WEBM, Quality.LOW, sc, 6.0,
                                [("mic", "audio"), ("cam", "video")])

    assert result.duration_seconds == pytest.approx(4.0, abs=0.05)
    assert_duration(p, result.duration_seconds)
    assert p.tone_level(440, 0.0, p.audio_duration) < 0.01
    assert max(p.lumas) < 150  # no picture from the pause
    assert p.luma_at(1.0) == pytest.approx(60, abs=8)
    assert p.luma_at(3.0) == pytest.approx(120, abs=8)  # wall 5.0 s: after the resume
    assert p.tone_level(880, 2.6, 3.4) > 0.2  # wall 4.6-5.4 s
    # frames pushed while paused are not counted as received
    assert result.frames.received < sc.pushed - 150
    assert result.frames.dropped == 0


@pytest.mark.parametrize(("fmt", "quality"), [(Format.WEBM, Quality.LOW),
                                              (Format.MP4, Quality.MEDIUM)])
async def test_video_starting_late_stays_in_sync_with_audio(
        tmp_path: Path, fmt: Format, quality: Quality) -> None:
    sc = Scenario(jitter=0.005)
    sc.audio("mic", 0.0, 4.5,
             lambda first, n: tone(1000, first, n, level=0.5 if 3.0 <= first / 48_000 < 3.3
                                   else 0.0))
    # the camera's first frame arrives 1.5 s after the microphone's; a flash at 3.0 s
    sc.video("cam", 1.5, 4.5, luma=lambda t: 220 if 3.0 <= t < 3.3 else 50)
    result, p, _ = await record(tmp_path / f"r.{fmt.value}", fmt, quality, sc, 4.5,
                                [("mic", "audio"), ("cam", "video")])

    flash = p.first_bright(135)
    beep = p.onset(2.5, 3.6)
    assert abs(flash - beep) <= 0.04
    assert flash == pytest.approx(3.0, abs=0.06)
    assert p.luma_at(1.0) < 25  # black until the camera's first frame
    assert p.luma_at(2.0) == pytest.approx(50, abs=8)
    assert_duration(p, result.duration_seconds)


async def test_resolution_changes_are_scaled_into_the_preset_with_black_bars(
        tmp_path: Path) -> None:
    def size(t: float) -> tuple[int, int]:
        return (1280, 720) if t < 1.5 else ((640, 480) if t < 3.0 else (360, 640))

    sc = Scenario()
    sc.video("cam", 0.0, 4.5, size=size, luma=lambda t: 120)
    result, p, _ = await record(tmp_path / "r.webm", Format.WEBM, Quality.LOW, sc, 4.5,
                                [("cam", "video")])

    assert p.sizes == {(854, 480)}
    assert p.left_lumas[24] > 100  # frame 24 is at 1.0 s: 16:9 fills the width
    index_43 = min(range(len(p.frame_times)), key=lambda i: abs(p.frame_times[i] - 2.2))
    index_portrait = min(range(len(p.frame_times)), key=lambda i: abs(p.frame_times[i] - 4.0))
    assert p.left_lumas[index_43] < 25  # 4:3 gets bars left and right
    assert p.left_lumas[index_portrait] < 25
    for t in (1.0, 2.2):
        assert p.luma_at(t) == pytest.approx(120, abs=8)
    # portrait 360x640 becomes 270x480 in the middle: the probe's centre half (427 columns)
    # sees 270 columns of picture and 157 of bar
    assert p.luma_at(4.0) == pytest.approx((270 * 120 + 157 * 16) / 427, abs=6)
    # no audio source at all: the audio track is there, silent, for the whole file
    assert_duration(p, result.duration_seconds)
    assert p.rms(0.0, p.audio_duration) < 0.005


async def test_all_audio_sources_are_mixed(tmp_path: Path) -> None:
    sc = Scenario()
    sc.audio("alice", 0.0, 4.0, lambda first, n: tone(440, first, n, level=0.25))
    sc.audio("bob", 1.0, 4.0, lambda first, n: tone(1000, first, n, level=0.25))
    sc.at(3.0, lambda c, now: c.remove_source("bob"))
    sc.video("cam", 0.0, 4.0)
    _, p, _ = await record(tmp_path / "r.mkv", Format.MKV, Quality.LOW, sc, 4.0,
                           [("alice", "audio"), ("cam", "video"), ("bob", "audio")])

    assert p.tone_level(440, 0.2, 3.8) > 0.15
    assert p.tone_level(1000, 1.3, 2.7) > 0.15  # both at once
    assert p.tone_level(1000, 0.1, 0.9) < 0.02  # bob had not joined yet
    assert p.tone_level(1000, 3.4, 3.9) < 0.02  # bob left


async def test_a_slow_pipeline_drops_frames_and_counts_them(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "r.webm"
    capture = Capture(CaptureSpec("rec-slow", path, Format.WEBM, Quality.LOW), clock=clock)
    capture.add_source("cam", "video")
    origin = clock.now
    pushed = 0
    # The muxer lock is held (a stalled disk): the video thread blocks on its first
    # packet and stops taking frames; the loop must not block, frames are refused.
    with capture._outputs[0].writer._lock:
        for k in range(150):
            clock.now = origin + k / 30
            capture.push("cam", video_frame(320, 240, 100, k * 3000), clock.now)
            pushed += 1
            await asyncio.sleep(0.003)
        assert capture.frames.dropped > 0
    clock.now = origin + 150 / 30
    result = await asyncio.to_thread(capture.stop)

    frames = result.frames
    assert frames.received == pushed
    assert frames.dropped >= pushed - 60
    assert frames.written + frames.dropped <= frames.received
    # The file is still whole. The video thread came back 4.7 s late and skipped ahead
    # rather than encoding every missed slot: the picture froze, then runs to the end.
    p = probe(path)
    assert p.duration == pytest.approx(5.0, abs=0.2)
    assert p.audio_duration == pytest.approx(5.0, abs=0.2)
    assert p.frame_times[-1] == pytest.approx(5.0 - 1 / 24, abs=0.1)


async def test_realtime_capture_keeps_sync_and_duration(tmp_path: Path) -> None:
    path = tmp_path / "r.webm"
    capture = Capture(CaptureSpec("rec-live", path, Format.WEBM, Quality.LOW))
    capture.add_source("mic", "audio")
    capture.add_source("cam", "video")
    sc = Scenario(jitter=0.005)
    sc.audio("mic", 0.0, 3.0,
             lambda first, n: tone(1000, first, n, level=0.5 if 1.5 <= first / 48_000 < 1.8
                                   else 0.0))
    sc.video("cam", 0.4, 3.0, luma=lambda t: 220 if 1.5 <= t < 1.8 else 50)
    origin = time.monotonic() + 0.05
    starts = await play(capture, sc, None, origin)
    assert capture.media_seconds > 2.5
    assert capture.last_frame_at is not None
    assert capture.last_frame_at >= origin + 2.9
    await asyncio.sleep(max(0.0, origin + 3.0 - time.monotonic()))
    result = await asyncio.to_thread(capture.stop)

    p = probe(path)
    assert starts == 1
    assert result.duration_seconds == pytest.approx(3.0, abs=0.1)
    assert_duration(p, result.duration_seconds)
    assert abs(p.first_bright(135) - p.onset(1.0, 2.1)) <= 0.04
    assert result.frames.dropped == 0


async def test_an_encoding_failure_makes_stop_raise(tmp_path: Path) -> None:
    clock = FakeClock()
    # /dev/full takes the header, then every write fails with ENOSPC, like a full disk.
    capture = Capture(CaptureSpec("rec-full", Path("/dev/full"), Format.WEBM, Quality.LOW),
                      clock=clock)
    capture.add_source("mic", "audio")
    capture.add_source("cam", "video")
    sc = Scenario()
    sc.audio("mic", 0.0, 2.0, lambda first, n: tone(440, first, n))
    sc.video("cam", 0.0, 2.0)
    await play(capture, sc, clock, clock.now)
    with pytest.raises(MediaError, match="No space left"):
        await asyncio.to_thread(capture.stop)
    assert capture.error is not None


def test_an_impossible_file_fails_at_once(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="cannot"):
        Capture(CaptureSpec("rec-x", tmp_path / "missing" / "r.mp4", Format.MP4, Quality.LOW))
    with pytest.raises(ValueError, match="source"):
        Capture(CaptureSpec("rec-x", tmp_path / "r.mp4", Format.MP4, Quality.SOURCE))


async def test_abort_deletes_the_file_and_ignores_later_frames(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "r.mkv"
    capture = Capture(CaptureSpec("rec-abort", path, Format.MKV, Quality.LOW), clock=clock)
    capture.add_source("cam", "video")
    sc = Scenario()
    sc.video("cam", 0.0, 1.0)
    await play(capture, sc, clock, clock.now)
    assert path.exists()
    await asyncio.to_thread(capture.abort)
    assert not path.exists()
    assert capture.push("cam", video_frame(320, 240, 10, 99_000), clock.now) is False
