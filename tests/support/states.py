"""Recording states for the store tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from recorder.core.models import RecordingState, Status
from recorder.core.presets import Format, Quality, quality_settings


def make_state(
    room_id: str = "room-1",
    user_id: str = "user-1",
    node_id: str = "node-a:8080",
    *,
    status: Status = Status.PENDING,
    recording_id: str | None = None,
) -> RecordingState:
    rid = recording_id or uuid.uuid4().hex
    return RecordingState(
        recording_id=rid,
        room_id=room_id,
        user_id=user_id,
        node_id=node_id,
        format=Format.WEBM,
        quality=Quality.MEDIUM,
        quality_settings=quality_settings(Quality.MEDIUM),
        status=status,
        local_path=f"/tmp/recordings/{rid}",
        file_name=f"recording_{rid}.webm",
        created_at=datetime.now(UTC),
        max_duration_seconds=7200,
    )
