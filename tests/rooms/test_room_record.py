"""A room's record decides idleness and loss from the room's stream alone (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime

from recorder.core.frames import FrameCounts
from recorder.core.presets import Format, Quality
from recorder.room import messages as msg
from recorder.service.room_record import RoomRecord, RunningRecording
from tests.support.states import make_state


def start(recording_id: str) -> msg.StartCapture:
    return msg.StartCapture(recording_id, "/tmp/x", "x.webm", Format.WEBM, Quality.LOW)


def test_a_room_is_idle_only_without_publishers_recordings_or_commands() -> None:
    record = RoomRecord("room-1")
    assert record.idle
    record.in_flight += 1
    assert not record.idle
    record.in_flight -= 1
    record.accepted(msg.Publish("s1", "alice-screen", "alice", "screen", "sdp"))
    assert not record.idle
    assert record.publishers["s1"].user_id == "alice"
    record.observe(msg.PublisherLeft("s1", "alice-screen"))
    assert not record.idle  # until the service has given the slot back
    del record.publishers["s1"]
    record.recordings["rec-1"] = RunningRecording(make_state("room-1", recording_id="rec-1"))
    assert not record.idle  # admitted, not yet capturing
    del record.recordings["rec-1"]
    assert record.idle


def test_a_death_takes_down_what_is_capturing_and_nothing_else() -> None:
    record = RoomRecord("room-1")
    for rid in ("admitted", "capturing", "finished", "failed", "cancelled"):
        record.recordings[rid] = RunningRecording(make_state("room-1", recording_id=rid))
    for rid in ("capturing", "finished", "failed", "cancelled"):
        record.accepted(start(rid))
    assert record.lost() == ("cancelled", "capturing", "failed", "finished")
    frames = FrameCounts(10, 9, 1)
    record.observe(msg.CaptureFinished("finished", [], 1.0, frames))
    record.observe(msg.CaptureFailed("failed", "encoder"))
    record.accepted(msg.CancelCapture("cancelled"))
    record.observe(msg.MediaStarted("capturing", datetime.now(UTC)))
    assert record.lost() == ("capturing",)
    assert record.recordings["finished"].frames == frames  # the final counts kept


def test_progress_feeds_the_timers_inputs() -> None:
    record = RoomRecord("room-1")
    running = record.recordings["rec-1"] = RunningRecording(
        make_state("room-1", recording_id="rec-1"))
    record.accepted(start("rec-1"))
    record.observe(msg.CaptureProgress("rec-1", 3.0, 1.5, FrameCounts(90, 90, 0)))
    assert (running.idle_seconds, running.frames) == (1.5, FrameCounts(90, 90, 0))
    record.observe(msg.CaptureProgress("other", 3.0, 9.0, FrameCounts(1, 1, 0)))  # not ours
    assert running.idle_seconds == 1.5
