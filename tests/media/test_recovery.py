"""Kill safety: a capture process killed with SIGKILL leaves a file that recovers to all
but its last 2 s, and recovery never makes a file worse.

The killed captures run in real time in a child process (tests.media.killed_capture),
with the real Capture and encoders, so what is on disk at the kill is what the recorder
really leaves behind.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import av
import pytest

from recorder.core.errors import MediaError
from recorder.core.presets import PRESETS, Format, Layout, Quality
from recorder.media.capture import Capture, CaptureSpec
from recorder.media.muxer import MediaWriter
from recorder.media.repair import RecoveredFile, recover_file
from tests.support.file_analysis import probe
from tests.support.synth import FakeClock, Scenario, play, tone

MAX_LOSS = 2.0  # docs/media.md
RECORD_SECONDS = 6.0
CODECS = {Format.WEBM: ("vp8", "opus"), Format.MP4: ("h264", "aac"),
          Format.MKV: ("h264", "opus")}
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Killed:
    media_at_kill: float  # media time the capture had reached when it was killed
    files: list[Path]


def record_and_kill(target: Path, fmt: Format, layout: Layout,
                    seconds: float = RECORD_SECONDS) -> Killed:
    """Record in a child process for ``seconds`` of media, then SIGKILL it."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.media.killed_capture", str(target), fmt.value,
         layout.value], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.startswith("started "), f"the capture did not start: {line!r}"
        started = float(line.split()[1])
        time.sleep(max(0.0, started + seconds - time.monotonic()))
        killed_at = time.monotonic()
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()  # no-op once it is dead; never leave an orphan on failure
        child.wait()
    assert child.returncode == -signal.SIGKILL
    files = [target] if layout is Layout.COMPOSITE else sorted(target.iterdir())
    return Killed(killed_at - started, files)


def assert_plays_to(path: Path, fmt: Format, recovered: RecoveredFile, at_least: float) -> None:
    """Decoded from start to end: both streams, without error, up to ``at_least``."""
    p = probe(path)
    assert (p.video_codec, p.audio_codec) == CODECS[fmt]
    assert (p.width, p.height) == (PRESETS[Quality.LOW].width, PRESETS[Quality.LOW].height)
    # the container now states its real duration, which is what the decoder gets
    assert p.duration == pytest.approx(recovered.duration_seconds, abs=0.1)
    assert recovered.duration_seconds >= at_least
    assert recovered.video_seconds >= at_least
    assert recovered.audio_seconds >= at_least
    assert p.frame_times[0] < 0.1  # from the start
    assert p.video_duration >= at_least
    assert p.audio_start < 0.1
    assert p.audio_duration >= at_least
    end = p.audio_start + p.audio_duration
    assert p.tone_level(440, end - 1.0, end) > 0.1  # sound up to the end
    assert len(set(round(luma) for luma in p.lumas[-30:])) > 1  # a moving picture
    if fmt is Format.MP4:  # a plain MP4, its index in front: browsers play it at once
        head = path.read_bytes()
        assert 0 <= head.find(b"moov") < head.find(b"mdat")
        assert head.find(b"moof") == -1


@pytest.mark.parametrize("fmt", [Format.WEBM, Format.MP4, Format.MKV])
def test_a_killed_recording_recovers_all_but_its_last_two_seconds(
        tmp_path: Path, fmt: Format) -> None:
    path = tmp_path / f"recording.{fmt.value}"
    killed = record_and_kill(path, fmt, Layout.COMPOSITE)
    with av.open(str(path)) as left:
        stated = left.duration
    if fmt is not Format.MP4:  # PyAV sums up the fragments of an MP4
        assert stated is None  # no trailer: no duration for a player to show

    recovered = recover_file(path)

    assert recovered.path == path
    assert_plays_to(path, fmt, recovered, killed.media_at_kill - MAX_LOSS)
    assert not list(tmp_path.glob(".*"))  # no copy left behind


def test_killed_per_publisher_files_each_recover(tmp_path: Path) -> None:
    folder = tmp_path / "rec"
    folder.mkdir()
    killed = record_and_kill(folder, Format.MP4, Layout.TRACKS)
    assert [f.name for f in killed.files] == ["alice.mp4", "bob.mp4"]

    for path in killed.files:
        recovered = recover_file(path)
        assert_plays_to(path, Format.MP4, recovered, killed.media_at_kill - MAX_LOSS)


async def finished_file(path: Path, fmt: Format, seconds: float = 4.0) -> Path:
    """A recording stopped normally (on a fake clock: quick)."""
    clock = FakeClock()
    capture = Capture(CaptureSpec("rec-good", path, fmt, Quality.LOW), clock=clock)
    capture.add_source("mic", "audio")
    capture.add_source("cam", "video")
    sc = Scenario()
    sc.audio("mic", 0.0, seconds, lambda first, n: tone(440, first, n))
    sc.video("cam", 0.0, seconds, luma=lambda t: 40 + int(t * 40))
    origin = clock.now
    await play(capture, sc, clock, origin)
    clock.now = origin + seconds
    await asyncio.to_thread(capture.stop)
    return path


@pytest.mark.parametrize("fmt", [Format.WEBM, Format.MP4, Format.MKV])
async def test_recovering_a_whole_file_twice_changes_nothing_a_viewer_sees(
        tmp_path: Path, fmt: Format) -> None:
    path = await finished_file(tmp_path / f"good.{fmt.value}", fmt)
    before = probe(path)

    first = await asyncio.to_thread(recover_file, path)
    second = await asyncio.to_thread(recover_file, path)

    assert first.dropped_packets == second.dropped_packets == 0
    assert second.packets == first.packets
    assert second.duration_seconds == pytest.approx(first.duration_seconds, abs=0.001)
    assert first.duration_seconds == pytest.approx(4.0, abs=0.1)
    after = probe(path)
    assert len(after.frame_times) == len(before.frame_times)
    assert after.frame_times == pytest.approx(before.frame_times, abs=0.002)
    assert after.lumas == pytest.approx(before.lumas, abs=0.5)
    assert len(after.audio) == pytest.approx(len(before.audio), abs=1024)
    assert after.duration == pytest.approx(before.duration, abs=0.05)


def complete_until(path: Path, size: int) -> dict[str, float]:
    """Per kind, the end of the last packet lying wholly in the first ``size`` bytes."""
    ends: dict[str, float] = {}
    with av.open(str(path)) as container:
        for packet in container.demux():
            if packet.pts is None or packet.pos is None or packet.pos + packet.size > size:
                continue
            assert packet.time_base is not None
            end = float((packet.pts + (packet.duration or 0)) * packet.time_base)
            kind = packet.stream.type
            ends[kind] = max(ends.get(kind, 0.0), end)
    return ends


@pytest.mark.parametrize("fmt", [Format.WEBM, Format.MP4, Format.MKV])
async def test_a_file_cut_anywhere_keeps_every_packet_written_before_the_cut(
        tmp_path: Path, fmt: Format) -> None:
    # What a kill in the middle of writing a cluster or fragment leaves, at several points.
    good = await finished_file(tmp_path / f"good.{fmt.value}", fmt)
    data = good.read_bytes()
    for fraction in (0.3, 0.55, 0.8, 0.999):
        cut = int(len(data) * fraction)
        path = tmp_path / f"cut.{fmt.value}"
        path.write_bytes(data[:cut])
        expected = complete_until(good, cut)

        recovered = await asyncio.to_thread(recover_file, path)

        assert recovered.video_seconds >= expected["video"] - 0.001, fraction
        assert recovered.audio_seconds >= expected["audio"] - 0.001, fraction
        assert recovered.duration_seconds < 4.0 + 0.05
        p = probe(path)  # decodes from start to end
        assert p.duration == pytest.approx(recovered.duration_seconds, abs=0.1)
        assert p.frame_times[0] < 0.1


def header_only(path: Path, fmt: Format) -> bytes:
    """The bytes a recording killed right after writing its header leaves."""
    writer = MediaWriter("rec-header", path, fmt, PRESETS[Quality.LOW])
    try:
        return path.read_bytes()
    finally:
        writer.close()


@pytest.mark.parametrize("fmt", [Format.WEBM, Format.MP4, Format.MKV])
def test_a_file_with_no_media_is_refused_and_left_as_it_was(
        tmp_path: Path, fmt: Format) -> None:
    cases = {"empty": b"", "header": header_only(tmp_path / f"h.{fmt.value}", fmt)}
    cases["half-header"] = cases["header"][: len(cases["header"]) // 2]
    for name, data in cases.items():
        path = tmp_path / f"{name}.{fmt.value}"
        path.write_bytes(data)

        with pytest.raises(MediaError, match="nothing to recover"):
            recover_file(path)

        assert path.read_bytes() == data, name
    assert not list(tmp_path.glob(".*"))


def test_files_that_are_not_recordings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="no such file"):
        recover_file(tmp_path / "missing.webm")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(MediaError, match=r"not a \.webm"):
        recover_file(text)
    assert text.read_text() == "hello"


async def test_a_recovery_killed_midway_leaves_the_original_and_is_redone(
        tmp_path: Path) -> None:
    path = await finished_file(tmp_path / "good.webm", Format.WEBM)
    data = path.read_bytes()
    leftover = tmp_path / ".good.recovering.webm"
    leftover.write_bytes(data[:1000])  # a copy cut short by a kill during recovery

    recovered = await asyncio.to_thread(recover_file, path)

    assert recovered.duration_seconds == pytest.approx(4.0, abs=0.1)
    assert not leftover.exists()
    assert os.listdir(tmp_path) == ["good.webm"]


async def test_a_file_damaged_inside_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    # Not what a kill leaves: replacing it with what decodes would lose what lies beyond.
    path = await finished_file(tmp_path / "damaged.webm", Format.WEBM)
    data = bytearray(path.read_bytes())
    a, b = int(len(data) * 0.4), int(len(data) * 0.5)
    data[a:b] = bytes(b - a)
    path.write_bytes(bytes(data))

    with pytest.raises(MediaError, match=r"damaged\.webm does not decode"):
        await asyncio.to_thread(recover_file, path)

    assert path.read_bytes() == data
    assert os.listdir(tmp_path) == ["damaged.webm"]
