"""A recording's timed events in the room: stamped on the capture's media clock, counted per
channel, and appended to ``events.jsonl`` in the recording's folder.

The room is where the media clock lives, so an event arriving here gets the ``t`` a frame
arriving at the same moment would get (pauses and cut upstream gaps removed). Lines are
kept in memory and written and flushed once a second (:meth:`EventLog.flush`, called by the
capture's progress tick): a killed room process loses at most the last second. What may wait
in memory is bounded by the rate cap (RECORDER_MAX_EVENTS_PER_SECOND events of at most
16 KiB each per second).

An event is recorded only while the recording records (media started, not paused); one that
comes before, during a pause, over the rate, or too large (data channels) is dropped and
counted under its channel.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, Final

from recorder.core.events import EventCounts, Incoming, RateWindow

logger = logging.getLogger(__name__)

EVENTS_FILE: Final = "events.jsonl"
MAX_CHANNELS: Final = 64  # channels counted apart; further labels are counted as "other"
OTHER_CHANNEL: Final = "other"


class Outcome(StrEnum):
    RECORDED = "recorded"
    NOT_RECORDING = "not_recording"
    RATE = "event_rate"
    TOO_LARGE = "too_large"


class EventLog:
    def __init__(self, recording_id: str, folder: Path, media_time: Callable[[], float],
                 max_per_second: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.recording_id = recording_id
        self.path = folder / EVENTS_FILE
        self.counts: dict[str, EventCounts] = {}
        self.limit = max_per_second
        self._media_time = media_time
        self._rate = RateWindow(max_per_second)
        self._clock = clock
        self._lines: list[str] = []
        self._file: IO[str] | None = None
        self._recorded = 0
        self._closed = False

    @property
    def recorded(self) -> int:
        return self._recorded

    def offer(self, incoming: Incoming | None, channel: str, recording: bool) -> Outcome:
        """Stamp and keep ``incoming`` (None: a data-channel message over 16 KiB)."""
        counts = self._counts(channel)
        outcome = self._judge(incoming, recording)
        if outcome is not Outcome.RECORDED or incoming is None:
            counts.dropped += 1
            return outcome
        event = incoming.stamped(self._media_time(), datetime.now(UTC))
        self._lines.append(event.line())
        counts.recorded += 1
        self._recorded += 1
        return outcome

    def _judge(self, incoming: Incoming | None, recording: bool) -> Outcome:
        if self._closed or not recording:
            return Outcome.NOT_RECORDING
        if incoming is None:
            return Outcome.TOO_LARGE
        if not self._rate.admit(self._clock()):
            return Outcome.RATE
        return Outcome.RECORDED

    def _counts(self, channel: str) -> EventCounts:
        counts = self.counts.get(channel)
        if counts is None:
            if len(self.counts) >= MAX_CHANNELS:
                channel = OTHER_CHANNEL
            counts = self.counts.setdefault(channel, EventCounts())
        return counts

    def snapshot(self) -> dict[str, EventCounts]:
        return {channel: c.model_copy() for channel, c in self.counts.items()}

    def flush(self) -> None:
        """Append what came since the last flush and hand it to the OS."""
        if not self._lines:
            return
        lines, self._lines = self._lines, []
        try:
            if self._file is None:
                self._file = self.path.open("a", encoding="utf-8")
            self._file.write("".join(lines))
            self._file.flush()
        except OSError as exc:
            logger.error("recording %s: events not written: %s", self.recording_id, exc)

    def close(self) -> Path | None:
        """Write what is left and close; the file, if any event was recorded."""
        self.flush()
        self._closed = True
        if self._file is not None:
            try:
                self._file.close()
            except OSError as exc:
                logger.error("recording %s: events file: %s", self.recording_id, exc)
            self._file = None
        return self.path if self._recorded and self.path.is_file() else None

    def discard(self) -> None:
        """Close and delete the file (a cancelled recording keeps no events)."""
        self._lines.clear()
        self.close()
        self.path.unlink(missing_ok=True)
