"""The pub/sub message on ``{prefix}events`` for every status change (docs/operations.md)."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel

from recorder.core.lifecycle import event_type
from recorder.core.models import RecordingState, Status


class StatusEvent(BaseModel):
    """Subscribers parse messages with ``StatusEvent.model_validate_json``."""

    type: str
    recording_id: str
    room_id: str
    user_id: str
    status: Status
    at: str  # ISO 8601 UTC


def iso_utc(at: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``, like the timestamps in the state JSON."""
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def status_event(before: Status | None, after: RecordingState, at: datetime) -> StatusEvent:
    return StatusEvent(
        type=event_type(before, after.status),
        recording_id=after.recording_id,
        room_id=after.room_id,
        user_id=after.user_id,
        status=after.status,
        at=iso_utc(at),
    )
