"""The limits a recording reaches by itself, as the pure function the service consults:
no media while pending or recording, maximum duration of media time, maximum pause."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from recorder.core.models import RecordingState, Status, StopReason
from recorder.core.timers import Fail, Stop, TimerLimits, due
from tests.support.states import make_state

T0 = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
LIMITS = TimerLimits(no_media_seconds=60, max_pause_seconds=1800)


def recording(max_duration: int = 7200, paused_seconds: float = 0.0) -> RecordingState:
    return make_state(status=Status.RECORDING).model_copy(update={
        "started_at": T0, "max_duration_seconds": max_duration,
        "paused_seconds": paused_seconds})


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_a_pending_recording_fails_once_no_media_came_for_the_timeout() -> None:
    pending = make_state()
    assert due(pending, LIMITS, at(59.9), waited_seconds=59.9, idle_seconds=0) is None
    assert due(pending, LIMITS, at(60), waited_seconds=60, idle_seconds=0) == Fail(
        "no media within 60 s")


def test_a_recording_stops_at_its_maximum_of_media_time_pauses_excluded() -> None:
    state = recording(max_duration=3600, paused_seconds=600)
    assert due(state, LIMITS, at(4199), waited_seconds=4199, idle_seconds=0) is None
    assert due(state, LIMITS, at(4200), waited_seconds=4200, idle_seconds=0) == Stop(
        StopReason.MAX_DURATION)


def test_a_recording_without_frames_stops_keeping_what_it_has() -> None:
    state = recording()
    assert due(state, LIMITS, at(100), waited_seconds=100, idle_seconds=59) is None
    assert due(state, LIMITS, at(100), waited_seconds=100, idle_seconds=60) == Stop(
        StopReason.NO_MEDIA)


def test_the_maximum_duration_wins_over_no_media_when_both_are_due() -> None:
    state = recording(max_duration=10)
    assert due(state, LIMITS, at(10), waited_seconds=10, idle_seconds=60) == Stop(
        StopReason.MAX_DURATION)


def test_a_paused_recording_stops_after_the_maximum_pause_and_never_for_no_media() -> None:
    paused = recording().model_copy(update={"status": Status.PAUSED, "paused_at": at(100)})
    assert due(paused, LIMITS, at(1899), waited_seconds=1899, idle_seconds=1799) is None
    assert due(paused, LIMITS, at(1900), waited_seconds=1900, idle_seconds=1800) == Stop(
        StopReason.MAX_PAUSE)


def test_nothing_is_due_for_a_recording_that_is_no_longer_active() -> None:
    for status in (Status.PROCESSING, Status.COMPLETED, Status.FAILED, Status.CANCELLED):
        state = recording().model_copy(update={"status": status})
        assert due(state, LIMITS, at(10**6), waited_seconds=10**6, idle_seconds=10**6) is None
