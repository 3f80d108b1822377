"""The job file a restarted node reads back, and what a live file's name says."""

from __future__ import annotations

from pathlib import Path

import pytest

from recorder.core.frames import FrameCounts
from recorder.core.presets import Format, Layout, Quality
from recorder.core.tracks import TrackInfo
from recorder.media.transcode_job import TranscodeJob, source_of


@pytest.mark.parametrize(("name", "publisher_id", "role"), [
    ("alice.mkv", "alice", "camera"),
    ("alice-2.mkv", "alice-2", "camera"),
    ("alice-screen.mkv", "alice-screen", "screen"),
    ("alice-screen-3.mkv", "alice-screen-3", "screen"),
    ("screen-share-bot.mkv", "screen-share-bot", "camera"),
])
def test_a_live_file_name_gives_the_publisher_and_its_role(name: str, publisher_id: str,
                                                           role: str) -> None:
    source = source_of(Path("/r/live") / name, 1.5, 2.0)
    assert (source.publisher_id, source.role) == (publisher_id, role)


def test_outputs_are_named_as_a_live_recording_of_the_layout_names_them() -> None:
    job = TranscodeJob("rid", "/r", Format.MP4, Quality.LOW, Layout.TRACKS, 3.0, ())
    assert job.output_name() == "recording_rid.mp4"
    assert job.output_name("alice-screen") == "alice-screen.mp4"


def test_a_saved_job_reads_back_the_same(tmp_path: Path) -> None:
    job = TranscodeJob("rid", str(tmp_path), Format.WEBM, Quality.ULTRA, Layout.COMPOSITE, 12.5,
                       (source_of(tmp_path / "a.mkv", 0.0, 12.5),
                        source_of(tmp_path / "b-screen.mkv", 3.25, 9.0)),
                       received_frames=FrameCounts(10, 9, 1),
                       tracks=(TrackInfo("a", "video", "vp8"),))
    job.save(tmp_path / "job.json")
    assert TranscodeJob.from_json((tmp_path / "job.json").read_text()) == job
    assert [p.name for p in tmp_path.iterdir()] == ["job.json"]  # no partial file left
