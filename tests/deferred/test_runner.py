"""The node's side of deferred transcodes: children at most N at once, outputs handed on,
live files deleted only after that, failures reported with the live files kept."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from recorder.core.frames import FrameCounts
from recorder.core.models import RecordingState, Status, Transcode
from recorder.core.presets import Format, Layout, Quality, quality_settings
from recorder.core.tracks import TrackInfo
from recorder.room import messages as msg
from recorder.service.deferred import DeferredTranscodes, captured_as_received
from tests.deferred.livefiles import live_file


def state(folder: Path, recording_id: str, layout: Layout = Layout.COMPOSITE) -> RecordingState:
    return RecordingState(
        recording_id=recording_id, room_id="room", user_id="user", node_id="node",
        format=Format.WEBM, quality=Quality.LOW, quality_settings=quality_settings(Quality.LOW),
        layout=layout, transcode=Transcode.DEFERRED, status=Status.PROCESSING,
        local_path=str(folder), file_name="", created_at=datetime.now(UTC),
        max_duration_seconds=60)


def finished(folder: Path, recording_id: str, seconds: float = 1.5) -> msg.CaptureFinished:
    live = folder / "live"
    live.mkdir(parents=True)
    path = live_file(live / "alice.mkv", seconds, size=(160, 90))
    return msg.CaptureFinished(recording_id, [msg.FileResult(str(path), "track", seconds)],
                               seconds, FrameCounts(100, 100, 0),
                               [TrackInfo("alice", "video", "vp8")])


class Outcomes:
    def __init__(self) -> None:
        self.completed: list[msg.CaptureFinished] = []
        self.failed: list[tuple[str, str]] = []
        self.live_files_at_completion: list[bool] = []
        self.done = asyncio.Event()

    async def complete(self, event: msg.CaptureFinished) -> None:
        self.completed.append(event)
        self.live_files_at_completion.append(
            all((Path(f.path).parent / "live" / "alice.mkv").is_file() for f in event.files))
        self.done.set()

    async def fail(self, recording_id: str, error: str) -> None:
        self.failed.append((recording_id, error))
        self.done.set()


async def test_outputs_are_handed_on_before_the_live_files_go(tmp_path: Path) -> None:
    outcomes = Outcomes()
    runner = DeferredTranscodes(1, outcomes.complete, outcomes.fail)
    event = finished(tmp_path, "rec-ok")
    assert captured_as_received(event)
    await runner.submit(state(tmp_path, "rec-ok"), event)
    assert runner.owns("rec-ok")
    # what the node writes back while it transcodes, should the store lose it
    assert [s.recording_id for s in runner.states()] == ["rec-ok"]
    await asyncio.wait_for(outcomes.done.wait(), 600)
    assert outcomes.failed == []
    [done] = outcomes.completed
    assert not captured_as_received(done)
    assert [Path(f.path) for f in done.files] == [tmp_path / "recording_rec-ok.webm"]
    assert done.frames == FrameCounts(100, 100, 0)
    assert [t.publisher_id for t in done.tracks] == ["alice"]
    assert outcomes.live_files_at_completion == [True]
    await asyncio.sleep(0.5)
    assert not (tmp_path / "live").exists()
    assert runner.states() == []
    assert (tmp_path / "recording_rec-ok.webm").stat().st_size > 0
    await runner.stop()


async def test_a_failed_transcode_fails_the_recording_and_keeps_the_live_files(
        tmp_path: Path) -> None:
    outcomes = Outcomes()
    runner = DeferredTranscodes(1, outcomes.complete, outcomes.fail)
    event = finished(tmp_path, "rec-bad")
    (tmp_path / "live" / "alice.mkv").write_bytes(b"garbage, not a recording")
    await runner.submit(state(tmp_path, "rec-bad"), event)
    await asyncio.wait_for(outcomes.done.wait(), 600)
    assert outcomes.completed == []
    [(rid, error)] = outcomes.failed
    assert rid == "rec-bad"
    assert error.startswith("transcode: ")
    assert (tmp_path / "live" / "alice.mkv").is_file()
    assert (tmp_path / "live" / "job.json").is_file()  # what a retry starts from
    await runner.stop()


@pytest.mark.parametrize("concurrency", [1, 2])
async def test_at_most_the_configured_number_run_at_once(tmp_path: Path,
                                                         concurrency: int) -> None:
    outcomes = Outcomes()
    runner = DeferredTranscodes(concurrency, outcomes.complete, outcomes.fail)
    for n in range(3):
        folder = tmp_path / f"r{n}"
        await runner.submit(state(folder, f"r{n}"), finished(folder, f"r{n}", 3.0))
    most = 0
    while len(outcomes.completed) + len(outcomes.failed) < 3:
        most = max(most, runner.running)
        await asyncio.sleep(0.01)
    assert outcomes.failed == []
    assert most == concurrency
    await runner.stop()


async def test_stop_leaves_the_job_for_the_restart(tmp_path: Path) -> None:
    outcomes = Outcomes()
    runner = DeferredTranscodes(1, outcomes.complete, outcomes.fail)
    recording = state(tmp_path, "rec-drain")
    await runner.submit(recording, finished(tmp_path, "rec-drain", 3.0))
    while not runner.running:  # noqa: ASYNC110 (a child process, no event to await)
        await asyncio.sleep(0.01)
    await runner.stop()
    assert outcomes.completed == []
    assert outcomes.failed == []
    assert (tmp_path / "live" / "job.json").is_file()
    # the restarted node finds it from the state and the job file
    again = DeferredTranscodes(1, outcomes.complete, outcomes.fail)
    assert await again.resume([recording]) == 1
    await asyncio.wait_for(outcomes.done.wait(), 600)
    assert outcomes.failed == []
    assert [Path(f.path).name for f in outcomes.completed[0].files] == [
        "recording_rec-drain.webm"]
    await again.stop()
