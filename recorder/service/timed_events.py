"""Timed events on the node's side: an API event checked and sent to the room that records
it, and the rooms' running counts kept in the state (docs/media.md, "Events").

The room stamps and writes events (its capture owns the media clock) and refuses them (409,
counted) while it does not record; the node answers who may post (owner or admin, the
token's rooms), 409 for a recording that no longer runs, and keeps ``events`` in the state
current while a recording runs, written at most every :data:`COUNTS_WRITE_SECONDS` when
they changed (no status event).
"""

from __future__ import annotations

import logging
import time
from typing import Final

from recorder.core.errors import InvalidTransition, NotFound
from recorder.core.events import EventCounts
from recorder.core.lifecycle import ACTIVE
from recorder.core.models import RecordingState
from recorder.room import messages as msg
from recorder.state.store import StateStore

logger = logging.getLogger(__name__)

COUNTS_WRITE_SECONDS: Final = 2.0


def check_recording(state: RecordingState) -> None:
    """409 for a recording that no longer runs. One that is pending or paused is the room's
    to refuse (409 too), so the drop is counted where the counts are kept."""
    if state.status not in ACTIVE:
        raise InvalidTransition(state.status.value, "record an event for")


class EventCountsWriter:
    """Writes a running recording's event counts into its state when they change."""

    def __init__(self, store: StateStore) -> None:
        self._store = store
        self._written: dict[str, tuple[float, dict[str, EventCounts]]] = {}

    async def progress(self, event: msg.CaptureProgress) -> None:
        rid = event.recording_id
        if not event.events:
            return
        at, counts = self._written.get(rid, (0.0, {}))
        now = time.monotonic()
        if counts == event.events or now - at < COUNTS_WRITE_SECONDS:
            return
        self._written[rid] = (now, dict(event.events))

        def change(state: RecordingState) -> RecordingState:
            if state.status not in ACTIVE:
                raise InvalidTransition(state.status.value, "count events of")
            state.events = dict(event.events)
            return state

        try:
            await self._store.update(rid, change)
        except (NotFound, InvalidTransition):
            self.forget(rid)

    def forget(self, recording_id: str) -> None:
        self._written.pop(recording_id, None)
