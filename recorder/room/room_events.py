"""Where a room's timed events go: an API event to its recording, a publisher's data-channel
message to every recording of the room's WHIP publishers (docs/media.md, "Events").

The API's refusals come from here (the room decides, since its capture knows whether it
records): 409 while the capture is not recording, 429 ``event_rate`` over the cap; both
counted as dropped. Data-channel messages have no one to answer: over the cap, too large
or while not recording they are dropped and counted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from recorder.core.errors import InvalidTransition, LimitReached
from recorder.core.events import API_SOURCE, from_channel
from recorder.room.capture_run import CaptureLike, CaptureRun
from recorder.room.event_log import EventLog, Outcome
from recorder.room.messages import RecordEvent, StartCapture

logger = logging.getLogger(__name__)

EVENT_RETRY_AFTER_SECONDS = 1


def event_log(command: StartCapture, capture: CaptureLike) -> EventLog:
    """The log of a starting capture, in the recording's folder, on the capture's clock."""
    folder = Path(command.folder or command.directory)
    return EventLog(command.recording_id, folder, lambda: capture.media_seconds,
                    command.max_events_per_second)


def record_api_event(run: CaptureRun, command: RecordEvent, limit: int) -> None:
    outcome = run.offer_event(command.event, API_SOURCE)
    if outcome is Outcome.RATE:
        raise LimitReached("event_rate", limit, retry_after=EVENT_RETRY_AFTER_SECONDS)
    if outcome is not Outcome.RECORDED:
        current = "paused" if run.started else "pending"
        raise InvalidTransition(current, "record an event for")


def channel_message(runs: Iterable[CaptureRun], session_id: str, publisher_id: str,
                    role: str, label: str, message: str | bytes | None) -> None:
    """A message on a publisher's data channel (None: the channel just opened)."""
    incoming = None if message is None else from_channel(publisher_id, label, message)
    for run in runs:
        run.publisher_seen(session_id, publisher_id, role)
        if message is not None:
            outcome = run.offer_event(incoming, label[:128])
            if outcome is Outcome.TOO_LARGE:
                logger.info("recording %s: a message on %s of %s over 16 KiB dropped",
                            run.recording_id, label[:128], publisher_id)
