"""The pure lifecycle: the whole transition table, and the clocks users see in a state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from recorder.core.errors import InvalidTransition
from recorder.core.lifecycle import (
    ACTIVE,
    TERMINAL,
    Action,
    apply,
    event_type,
    media_seconds,
)
from recorder.core.models import RecordingState, Status, StopReason, Upload, UploadState
from tests.support.states import make_state

T0 = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)

# The lifecycle of docs/usage.md, written out independently of the module's own table.
ALLOWED: dict[tuple[Status, Action], Status] = {
    (Status.PENDING, Action.MEDIA_STARTED): Status.RECORDING,
    (Status.PENDING, Action.STOP): Status.CANCELLED,
    (Status.PENDING, Action.CANCEL): Status.CANCELLED,
    (Status.PENDING, Action.FAIL): Status.FAILED,
    (Status.RECORDING, Action.PAUSE): Status.PAUSED,
    (Status.PAUSED, Action.RESUME): Status.RECORDING,
    (Status.RECORDING, Action.STOP): Status.PROCESSING,
    (Status.PAUSED, Action.STOP): Status.PROCESSING,
    (Status.RECORDING, Action.CANCEL): Status.CANCELLED,
    (Status.PAUSED, Action.CANCEL): Status.CANCELLED,
    (Status.RECORDING, Action.FAIL): Status.FAILED,
    (Status.PAUSED, Action.FAIL): Status.FAILED,
    (Status.PROCESSING, Action.FAIL): Status.FAILED,
    (Status.PROCESSING, Action.COMPLETE): Status.COMPLETED,
    (Status.PROCESSING, Action.UPLOAD_FAILED): Status.FAILED,
    (Status.FAILED, Action.RETRY_UPLOAD): Status.PROCESSING,
}


def in_status(status: Status) -> RecordingState:
    """A state that reached `status` the normal way, so it carries the fields it would have."""
    state = make_state(status=status)
    if status is not Status.PENDING:
        state.started_at = T0
    if status is Status.PAUSED:
        state.paused_at = T0 + timedelta(seconds=30)
    if status is Status.FAILED:
        state.upload = Upload(state=UploadState.FAILED, error="upload: gave up")
    return state


PAIRS = [(s, a) for s in Status for a in Action]


@pytest.mark.parametrize(("status", "action"), PAIRS, ids=[f"{s}-{a}" for s, a in PAIRS])
def test_every_pair_follows_the_table(status: Status, action: Action) -> None:
    state = in_status(status)
    before = state.model_dump()
    at = T0 + timedelta(minutes=5)
    if (status, action) in ALLOWED:
        assert apply(state, action, at, error="boom").status is ALLOWED[(status, action)]
    else:
        with pytest.raises(InvalidTransition) as info:
            apply(state, action, at)
        assert info.value.current == status.value
        assert info.value.action == action.value
    assert state.model_dump() == before  # the input is never modified


def test_active_and_terminal_sets() -> None:
    assert {Status.PENDING, Status.RECORDING, Status.PAUSED} == ACTIVE
    assert {Status.COMPLETED, Status.CANCELLED, Status.FAILED} == TERMINAL


def test_retry_upload_needs_a_failed_upload() -> None:
    failed_recording = make_state(status=Status.FAILED)  # e.g. a capture error: no upload
    with pytest.raises(InvalidTransition):
        apply(failed_recording, Action.RETRY_UPLOAD, T0)
    failed_recording.upload = Upload(state=UploadState.UPLOADING)
    with pytest.raises(InvalidTransition):
        apply(failed_recording, Action.RETRY_UPLOAD, T0)


def test_given_up_upload_can_be_retried() -> None:
    state = apply(in_status(Status.RECORDING), Action.STOP, T0 + timedelta(minutes=1))
    failed = apply(state, Action.UPLOAD_FAILED, T0 + timedelta(minutes=2), error="upload: 503")
    assert failed.status is Status.FAILED
    assert failed.error == "upload: 503"
    assert failed.upload is not None
    assert failed.upload.state is UploadState.FAILED
    retried = apply(failed, Action.RETRY_UPLOAD, T0 + timedelta(minutes=3))
    assert retried.status is Status.PROCESSING
    assert retried.upload is not None
    assert retried.upload.state is UploadState.QUEUED
    assert retried.error is None


def test_pause_resume_stop_cut_pauses_out_of_the_duration() -> None:
    state = apply(make_state(), Action.MEDIA_STARTED, T0)
    assert state.started_at == T0
    state = apply(state, Action.PAUSE, T0 + timedelta(minutes=10))
    assert state.paused_at == T0 + timedelta(minutes=10)
    assert media_seconds(state, T0 + timedelta(minutes=11)) == 600.0
    state = apply(state, Action.RESUME, T0 + timedelta(minutes=12))
    assert state.resumed_at == T0 + timedelta(minutes=12)
    assert state.paused_seconds == 120.0
    assert media_seconds(state, T0 + timedelta(minutes=13)) == 660.0
    state = apply(state, Action.STOP, T0 + timedelta(hours=1), stop_reason=StopReason.MAX_DURATION)
    assert state.status is Status.PROCESSING
    assert state.stopped_at == T0 + timedelta(hours=1)
    assert state.duration_seconds == 3480.0
    assert state.stop_reason is StopReason.MAX_DURATION
    done = apply(state, Action.COMPLETE, T0 + timedelta(hours=1, seconds=2))
    assert done.status is Status.COMPLETED
    assert done.processed_at == T0 + timedelta(hours=1, seconds=2)
    assert done.duration_seconds == 3480.0


def test_stop_while_paused_ends_the_media_at_the_pause() -> None:
    state = apply(make_state(), Action.MEDIA_STARTED, T0)
    state = apply(state, Action.PAUSE, T0 + timedelta(minutes=10))
    stopped = apply(state, Action.STOP, T0 + timedelta(minutes=40))
    assert stopped.duration_seconds == 600.0
    assert stopped.paused_seconds == 1800.0
    assert stopped.stop_reason is StopReason.REQUESTED


@pytest.mark.parametrize("action", [Action.CANCEL, Action.FAIL])
def test_cancel_or_fail_while_active_records_the_stop(action: Action) -> None:
    state = apply(make_state(), Action.MEDIA_STARTED, T0)
    state = apply(state, Action.PAUSE, T0 + timedelta(seconds=90))
    ended = apply(state, action, T0 + timedelta(seconds=200), error="source: gone")
    assert ended.stopped_at == T0 + timedelta(seconds=200)
    assert ended.duration_seconds == 90.0
    assert ended.stop_reason is None
    assert ended.error == ("source: gone" if action is Action.FAIL else None)


def test_stop_before_media_cancels_with_no_duration() -> None:
    cancelled = apply(make_state(), Action.STOP, T0)
    assert cancelled.status is Status.CANCELLED
    assert cancelled.duration_seconds == 0.0
    assert cancelled.stop_reason is None


def test_failure_without_a_message_still_says_something() -> None:
    assert apply(make_state(), Action.FAIL, T0).error == "unknown error"


def test_event_types() -> None:
    assert event_type(None, Status.PENDING) == "recording_pending"
    assert event_type(Status.PENDING, Status.RECORDING) == "recording_started"
    assert event_type(Status.RECORDING, Status.PAUSED) == "recording_paused"
    assert event_type(Status.PAUSED, Status.RECORDING) == "recording_resumed"
    assert event_type(Status.PAUSED, Status.PROCESSING) == "recording_stopped"
    assert event_type(Status.PROCESSING, Status.COMPLETED) == "recording_completed"
    assert event_type(Status.PROCESSING, Status.FAILED) == "recording_failed"
    assert event_type(Status.RECORDING, Status.CANCELLED) == "recording_cancelled"
