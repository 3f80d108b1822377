"""A recording's timeline from its history (recorder/state/history.py) and its state.

Pure: the history's entries are read elsewhere. A recording whose history is empty (it was
made before histories were kept, or its history expired) gets entries rebuilt from the
state's own times, marked `complete: false`: those show the last pause only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ValidationError

from recorder.core.fleet import Pause, Timeline, TimelineEntry
from recorder.core.models import RecordingState, Status

_PUBLISHER_KINDS = {"publisher_joined", "publisher_left"}


def build_timeline(state: RecordingState, history: list[dict[str, Any]]) -> Timeline:
    entries = [TimelineEntry(at=state.created_at, kind="status", event="recording_pending",
                             status=Status.PENDING.value, track=None)]
    parsed = [e for e in (_entry(raw) for raw in history) if e is not None]
    complete = bool(parsed)
    entries += parsed if complete else _from_state(state)
    entries.sort(key=lambda e: e.at)
    return Timeline(recording_id=state.recording_id, room_id=state.room_id,
                    status=state.status.value, created_at=state.created_at, entries=entries,
                    pauses=_pauses(entries), tracks=state.tracks, events=state.events,
                    complete=complete)


def _entry(raw: dict[str, Any]) -> TimelineEntry | None:
    event = str(raw.get("type", ""))
    if event in _PUBLISHER_KINDS:
        kind = event
    elif event == "recording_ready" or (event == "recording_failed"
                                        and raw.get("status") != Status.FAILED.value):
        kind = "playback"  # Stream's outcome: the status does not change
    elif event.startswith("recording_"):
        kind = "status"
    else:
        return None
    try:
        return TimelineEntry.model_validate({
            "at": raw.get("at"), "kind": kind, "event": event, "status": raw.get("status"),
            "publisher_id": raw.get("publisher_id"), "track": raw.get("track")})
    except ValidationError:
        return None


def _from_state(state: RecordingState) -> list[TimelineEntry]:
    times: list[tuple[datetime | None, str, Status]] = [
        (state.started_at, "recording_started", Status.RECORDING),
        (state.paused_at, "recording_paused", Status.PAUSED),
        (state.resumed_at, "recording_resumed", Status.RECORDING),
        (state.stopped_at, "recording_stopped", Status.PROCESSING),
    ]
    if state.status in (Status.COMPLETED, Status.FAILED, Status.CANCELLED):
        times.append((state.processed_at or state.stopped_at,
                      f"recording_{state.status.value}", state.status))
    return [TimelineEntry(at=at, kind="status", event=event, status=status.value, track=None)
            for at, event, status in times if at is not None]


def _pauses(entries: list[TimelineEntry]) -> list[Pause]:
    pauses: list[Pause] = []
    for entry in entries:
        if entry.kind != "status":
            continue
        if entry.status == Status.PAUSED.value:
            if not pauses or pauses[-1].ended_at is not None:
                pauses.append(Pause(started_at=entry.at, ended_at=None))
        elif pauses and pauses[-1].ended_at is None:
            pauses[-1].ended_at = entry.at
    return pauses
