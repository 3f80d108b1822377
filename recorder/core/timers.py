"""The limits a running recording reaches by itself: no media, maximum duration, maximum
pause. A pure function of the state, the clocks and the settings; the service looks every
quarter second and carries out what it says (docs/usage.md, "Lifecycle")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from recorder.core import lifecycle
from recorder.core.models import RecordingState, Status, StopReason


@dataclass(frozen=True)
class TimerLimits:
    no_media_seconds: float  # RECORDER_NO_MEDIA_TIMEOUT_SECONDS
    max_pause_seconds: float  # RECORDER_MAX_PAUSE_SECONDS


@dataclass(frozen=True)
class Fail:
    """A pending recording that never got media fails."""

    error: str


@dataclass(frozen=True)
class Stop:
    """A recording that has media stops and keeps it."""

    reason: StopReason


def due(state: RecordingState, limits: TimerLimits, now: datetime, waited_seconds: float,
        idle_seconds: float) -> Fail | Stop | None:
    """What `state` has reached at `now`: `waited_seconds` since it was admitted,
    `idle_seconds` since its capture last saw a frame. None while nothing is due."""
    if state.status is Status.PENDING:
        if waited_seconds >= limits.no_media_seconds:
            return Fail(f"no media within {limits.no_media_seconds:g} s")
    elif state.status is Status.RECORDING:
        if lifecycle.media_seconds(state, now) >= state.max_duration_seconds:
            return Stop(StopReason.MAX_DURATION)
        if idle_seconds >= limits.no_media_seconds:
            return Stop(StopReason.NO_MEDIA)
    elif (state.status is Status.PAUSED and state.paused_at is not None
          and (now - state.paused_at).total_seconds() >= limits.max_pause_seconds):
        return Stop(StopReason.MAX_PAUSE)
    return None
