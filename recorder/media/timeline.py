"""The media clock shared by the event loop and the encoder threads.

The loop places frames on the timeline and pauses or resumes it; the encoder threads ask
how far they may emit. Live, that is the media clock minus a small latency, so frames
delayed by network jitter still reach their slot; at stop it is the stop's media time
exactly, so the file ends where the recording did. One lock makes every read consistent.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from recorder.media.clock import MediaClock

# Emitting this far behind the media clock absorbs network and decoder jitter.
DEFAULT_LATENCY = 0.25


@dataclass(frozen=True)
class Horizon:
    """How far a pipeline may emit: media time ``until``; ``final`` once stopping."""

    until: float
    final: bool
    aborted: bool = False


class HorizonSource(Protocol):
    """What an encoder thread reads: the recording's timeline, or one file's view of it."""

    def horizon(self) -> Horizon: ...


class Timeline:
    def __init__(self, clock: Callable[[], float], latency: float = DEFAULT_LATENCY) -> None:
        self._clock = clock
        self._latency = latency
        self._media = MediaClock()
        self._lock = threading.Lock()
        self._end: float | None = None
        self._aborted = False

    def place(self, wall: float) -> tuple[float | None, bool]:
        """Media time of a frame at ``wall`` (None: cut or after stop) and whether it began
        the recording."""
        with self._lock:
            if self._end is not None:
                return None, False
            first = False
            if not self._media.started:
                if self._media.paused:
                    return None, False
                self._media.begin(wall)
                first = True
            return self._media.media_time(wall), first

    def cuts_before(self, wall: float) -> int:
        """Resumes at or before ``wall``: a frame's stretch of the recording."""
        with self._lock:
            return self._media.cuts_before(wall)

    def pause(self, at: float) -> None:
        with self._lock:
            self._media.pause(at)

    def resume(self, at: float) -> None:
        with self._lock:
            self._media.resume(at)

    @property
    def paused(self) -> bool:
        with self._lock:
            return self._media.paused

    @property
    def started(self) -> bool:
        with self._lock:
            return self._media.started

    def media_now(self) -> float:
        with self._lock:
            if self._end is not None:
                return self._end
            return self._media.now(self._clock())

    def horizon(self) -> Horizon:
        with self._lock:
            if self._end is not None:
                return Horizon(self._end, True, self._aborted)
            if not self._media.started:
                return Horizon(-1.0, False)
            return Horizon(self._media.now(self._clock()) - self._latency, False)

    def end(self, aborted: bool = False) -> float:
        """Freeze the timeline at the current media time; returns it. Idempotent."""
        with self._lock:
            if self._end is None:
                self._end = self._media.now(self._clock()) if self._media.started else 0.0
            self._aborted = self._aborted or aborted
            return self._end
