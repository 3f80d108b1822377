"""The recording lifecycle (docs/usage.md) as one pure state machine.

Every status change in the system goes through :func:`apply`: it checks the transition table
and returns the new state with its timestamps and counters set, or raises
:class:`InvalidTransition` and changes nothing. The store's compare-and-set writer persists
what this returns; nothing else decides a status.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from recorder.core.errors import InvalidTransition
from recorder.core.events import EventCounts
from recorder.core.frames import FrameCounts
from recorder.core.models import (
    MEDIA_KINDS,
    FileInfo,
    PauseSpan,
    RecordingState,
    Status,
    StopReason,
    Upload,
    UploadState,
    UploadTarget,
)
from recorder.core.tracks import PublisherSpan, TrackInfo


class Action(StrEnum):
    MEDIA_STARTED = "media_started"  # first frame
    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"  # requested, or a limit / timer / drain / recovery (see StopReason)
    CANCEL = "cancel"  # DELETE
    FAIL = "fail"  # an error that leaves no usable file, or no media while pending
    COMPLETE = "complete"  # file final and stored at its target
    UPLOAD_FAILED = "upload_failed"
    RETRY_UPLOAD = "retry_upload"


ACTIVE: frozenset[Status] = frozenset({Status.PENDING, Status.RECORDING, Status.PAUSED})
TERMINAL: frozenset[Status] = frozenset({Status.COMPLETED, Status.CANCELLED, Status.FAILED})

# (from, action) -> to. STOP from pending is a cancel (no media, nothing to keep).
TRANSITIONS: dict[tuple[Status, Action], Status] = {
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

# Webhook/pub-sub event type for each status reached (docs/operations.md).
EVENT_TYPES: dict[Status, str] = {
    Status.PENDING: "recording_pending",
    Status.RECORDING: "recording_started",
    Status.PAUSED: "recording_paused",
    Status.PROCESSING: "recording_stopped",
    Status.COMPLETED: "recording_completed",
    Status.FAILED: "recording_failed",
    Status.CANCELLED: "recording_cancelled",
}


def event_type(before: Status | None, after: Status) -> str:
    """The pub/sub `type` of a change; a return to `recording` from `paused` is a resume."""
    if before is Status.PAUSED and after is Status.RECORDING:
        return "recording_resumed"
    return EVENT_TYPES[after]


def now() -> datetime:
    return datetime.now(UTC)


def target_status(current: Status, action: Action) -> Status:
    to = TRANSITIONS.get((current, action))
    if to is None:
        raise InvalidTransition(current.value, action.value)
    return to


def apply(
    state: RecordingState,
    action: Action,
    at: datetime,
    *,
    stop_reason: StopReason | None = None,
    error: str | None = None,
) -> RecordingState:
    """Return `state` after `action` at time `at`; raise InvalidTransition if not allowed."""
    to = target_status(state.status, action)
    if action is Action.RETRY_UPLOAD and (
        state.upload is None or state.upload.state is not UploadState.FAILED
    ):
        raise InvalidTransition(state.status.value, action.value)
    new = state.model_copy(deep=True)
    new.status = to
    if action is Action.MEDIA_STARTED:
        new.started_at = at
    elif action is Action.PAUSE:
        _paused(new, state, at)
    elif action is Action.RESUME:
        _resumed(new, state, at)
    elif action in (Action.STOP, Action.CANCEL) or (
        action is Action.FAIL and state.status in ACTIVE
    ):
        if state.status is Status.PAUSED and state.paused_at is not None:
            new.paused_seconds += (at - state.paused_at).total_seconds()
        if state.status in ACTIVE:
            new.stopped_at = at
            new.duration_seconds = media_seconds(state, at)
        if action is Action.STOP and to is Status.PROCESSING:
            new.stop_reason = stop_reason or StopReason.REQUESTED
    elif action is Action.COMPLETE:
        new.processed_at = at
    elif action is Action.UPLOAD_FAILED:
        # RETRY_UPLOAD requires it: without it a given-up upload could never be retried.
        if new.upload is None:
            new.upload = Upload(target=state.storage_backend)
        new.upload.state = UploadState.FAILED
    elif action is Action.RETRY_UPLOAD:
        assert new.upload is not None
        new.upload.state = UploadState.QUEUED
        new.upload.error = None
        new.error = None
    if action in (Action.FAIL, Action.UPLOAD_FAILED):
        new.error = error or "unknown error"
    return new


def _paused(new: RecordingState, state: RecordingState, at: datetime) -> None:
    new.paused_at = at
    new.pauses.append(PauseSpan(paused_at=at,
                                position_seconds=round(media_seconds(state, at), 3)))


def _resumed(new: RecordingState, state: RecordingState, at: datetime) -> None:
    assert state.paused_at is not None
    new.paused_seconds += (at - state.paused_at).total_seconds()
    new.resumed_at = at
    if new.pauses and new.pauses[-1].resumed_at is None:
        new.pauses[-1].resumed_at = at


def media_seconds(state: RecordingState, at: datetime) -> float:
    """Media time at `at`: wall time since the first frame, pauses cut out."""
    if state.started_at is None:
        return 0.0
    end = at
    if state.status is Status.PAUSED and state.paused_at is not None:
        end = state.paused_at
    elif state.stopped_at is not None and state.status not in ACTIVE:
        end = state.stopped_at
    return max(0.0, (end - state.started_at).total_seconds() - state.paused_seconds)


def captured(state: RecordingState, files: list[FileInfo], duration_seconds: float,
             frames: FrameCounts, tracks: list[TrackInfo], *,
             events: dict[str, EventCounts] | None = None,
             publishers: list[PublisherSpan] | None = None,
             pauses: list[PauseSpan] | None = None) -> RecordingState:
    """`state` with what its capture wrote (the first media file is the main one): queued
    for upload, or completed at once when it goes nowhere."""
    new = state.model_copy(deep=True)
    if events is not None:
        new.events = dict(events)
    if publishers is not None:
        new.publishers = list(publishers)
    if pauses:  # the room's own record of its cuts is exact; the state's is the request's
        new.pauses = [p.model_copy() for p in pauses]
    new.files = files
    media = [f for f in files if f.kind in MEDIA_KINDS]
    if media:
        main = media[0]
        new.file_name, new.file_size_bytes, new.sha256 = main.name, main.size, main.sha256
    new.duration_seconds = round(duration_seconds, 3)
    new.frames = frames
    new.tracks = tracks
    if new.upload is not None and new.upload.target is UploadTarget.NONE:
        new.upload.state = UploadState.SKIPPED
        return apply(new, Action.COMPLETE, now())
    if new.upload is not None:
        new.upload.state = UploadState.QUEUED
    return new
