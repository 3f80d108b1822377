"""The offline transcode of live passthrough files, run as the node runs it: in the child
process, from a job file, with the outputs decoded back by PyAV."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from recorder.core.presets import Format, Layout, Quality
from recorder.media.transcode_job import TranscodeJob, TranscodeResult, source_of
from tests.deferred.livefiles import live_file
from tests.support.file_analysis import probe

SIZE = (320, 180)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Alice from 0 s for 4 s (flash and beep at 1.5 s); Bob, portrait, joins at 1.5 s for
    2.5 s (flash and beep at his 1.0 s, the recording's 2.5 s)."""
    folder = tmp_path_factory.mktemp("rec") / "live"
    folder.mkdir()
    live_file(folder / "alice.mkv", 4.0, size=SIZE, flashes=(1.5,), tone_hz=300)
    live_file(folder / "bob.mkv", 2.5, size=(180, 320), flashes=(1.0,), tone_hz=500)
    return folder


def job(live: Path, out: Path, fmt: Format, quality: Quality, layout: Layout) -> TranscodeJob:
    out.mkdir(exist_ok=True)
    return TranscodeJob(
        recording_id="rec-1", directory=str(out), format=fmt, quality=quality, layout=layout,
        duration_seconds=4.0,
        sources=(source_of(live / "alice.mkv", 0.0, 4.0), source_of(live / "bob.mkv", 1.5, 2.5)),
    )


def run_child(job: TranscodeJob, folder: Path) -> tuple[int, TranscodeResult]:
    job_path, result_path = folder / "job.json", folder / "result.json"
    job.save(job_path)
    done = subprocess.run([sys.executable, "-m", "recorder.media.transcode_child",
                           str(job_path), str(result_path)], check=False)
    return done.returncode, TranscodeResult.from_json(result_path.read_text())


def test_two_publishers_become_one_composite_webm_at_medium(live: Path, tmp_path: Path) -> None:
    code, result = run_child(job(live, tmp_path / "out", Format.WEBM, Quality.MEDIUM,
                                 Layout.COMPOSITE), tmp_path)
    assert code == 0
    assert result.error is None
    [out] = result.files
    assert Path(out.path) == tmp_path / "out" / "recording_rec-1.webm"
    assert result.frames.dropped == 0  # offline: nothing dropped
    p = probe(Path(out.path))
    assert (p.video_codec, p.audio_codec) == ("vp8", "opus")
    assert (p.width, p.height, round(p.fps)) == (1280, 720, 30)
    assert len(p.frame_times) == out.video_frames == 120  # every slot of 4 s at 30 fps
    assert p.duration == pytest.approx(4.0, abs=0.1)
    assert p.audio_duration == pytest.approx(4.0, abs=0.1)
    # both are mixed: Alice's tone all along, Bob's only once he joined
    assert p.tone_level(300, 0.2, 1.2) > 0.01
    assert p.tone_level(500, 0.2, 1.2) < 0.005 < p.tone_level(500, 2.0, 3.5)
    # A/V: Alice's flash and beep at 1.5 s, Bob's at 2.5 s, each within 40 ms
    for at in (1.5, 2.5):
        flash = p.first_bright(p.luma_at(at - 0.3) + 25, after=at - 0.3)
        beep = p.onset(at - 0.3, at + 0.3)
        assert flash == pytest.approx(at, abs=0.05)
        assert abs(flash - beep) <= 0.04
    # live files are the service's to delete, never the child's
    assert sorted(f.name for f in live.iterdir()) == ["alice.mkv", "bob.mkv"]


def test_tracks_become_one_mp4_per_publisher_at_low(live: Path, tmp_path: Path) -> None:
    code, result = run_child(job(live, tmp_path / "out", Format.MP4, Quality.LOW,
                                 Layout.TRACKS), tmp_path)
    assert code == 0
    assert result.error is None
    assert result.frames.dropped == 0
    files = {Path(f.path).name: f for f in result.files}
    assert sorted(files) == ["alice.mp4", "bob.mp4"]
    assert files["alice.mp4"].offset_seconds == pytest.approx(0.0, abs=0.01)
    assert files["bob.mp4"].offset_seconds == pytest.approx(1.5, abs=0.05)
    for name, duration, flash_at in (("alice.mp4", 4.0, 1.5), ("bob.mp4", 2.5, 1.0)):
        p = probe(tmp_path / "out" / name)
        assert (p.video_codec, p.audio_codec) == ("h264", "aac")
        assert (p.width, p.height) == (854, 480)
        assert len(p.frame_times) == round(duration * 24)
        assert p.duration == pytest.approx(duration, abs=0.1)
        assert p.audio_duration == pytest.approx(duration, abs=0.1)
        flash = p.first_bright(p.luma_at(flash_at - 0.3) + 25, after=flash_at - 0.3)
        assert flash == pytest.approx(flash_at, abs=0.05)
        assert abs(flash - p.onset(flash_at - 0.3, flash_at + 0.3)) <= 0.04


def test_a_broken_live_file_fails_with_the_reason_and_leaves_no_output(tmp_path: Path) -> None:
    (tmp_path / "live").mkdir()
    broken = tmp_path / "live" / "alice.mkv"
    broken.write_bytes(b"\x1aE\xdf\xa3 not really matroska")
    bad = TranscodeJob("rec-2", str(tmp_path), Format.WEBM, Quality.LOW, Layout.COMPOSITE, 2.0,
                       (source_of(broken, 0.0, 2.0),))
    code, result = run_child(bad, tmp_path)
    assert code == 1
    assert result.error is not None
    assert "alice.mkv" in result.error
    assert not (tmp_path / "recording_rec-2.webm").exists()


def test_ultra_makes_3840x2160_at_60_fps(live: Path, tmp_path: Path) -> None:
    """3 s of one publisher at ultra on this box (no timing limit: a benchmark's job)."""
    out = tmp_path / "out"
    out.mkdir()
    ultra = TranscodeJob("rec-3", str(out), Format.MP4, Quality.ULTRA, Layout.COMPOSITE, 3.0,
                         (source_of(live / "alice.mkv", 0.0, 3.0),))
    started = time.monotonic()
    code, result = run_child(ultra, tmp_path)
    took = time.monotonic() - started
    print(f"ultra: 3 s of media in {took:.1f} s, child CPU {result.cpu_seconds:.1f} s")
    assert code == 0
    assert result.error is None
    assert result.frames.dropped == 0
    p = probe(out / "recording_rec-3.mp4")
    assert (p.width, p.height, round(p.fps)) == (3840, 2160, 60)
    assert len(p.frame_times) == 180
    assert p.audio_duration == pytest.approx(3.0, abs=0.1)
    flash = p.first_bright(p.luma_at(1.2) + 25, after=1.2)
    assert flash == pytest.approx(1.5, abs=0.03)
    assert abs(flash - p.onset(1.2, 1.8)) <= 0.04
