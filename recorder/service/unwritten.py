"""Status changes this node made while the store was unreachable, written when it returns,
in order (docs/operations.md, "When the store fails").

Recordings never stop because of the store: a timer (max duration, max pause, no media), a
capture that failed or media that started acts at once on the node, and its change waits
here. The recording's state as the store last had it (`base`) is what the node re-asserts
meanwhile; once the store answers, the changes are written one by one with the ordinary
compare-and-set, each with the time it happened, so the store, the events and the webhooks
see them as if the store had never gone. A control request for a recording with waiting
changes answers 503: it would otherwise be written before them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from recorder.core.errors import InvalidTransition, NotFound
from recorder.core.models import RecordingState
from recorder.state.store import Change, StateStore

logger = logging.getLogger(__name__)


@dataclass
class _Waiting:
    base: RecordingState  # the state as the store last had it
    changes: list[Change] = field(default_factory=list)
    settled: asyncio.Event = field(default_factory=asyncio.Event)


class UnwrittenChanges:
    def __init__(self) -> None:
        self._waiting: dict[str, _Waiting] = {}  # by recording id, in the order they came

    def waiting(self, recording_id: str) -> bool:
        return recording_id in self._waiting

    def add(self, stored: RecordingState, change: Change) -> None:
        """Keep `change` for when the store answers; `stored` is the recording's state as
        the store last had it (kept from the first change on)."""
        entry = self._waiting.setdefault(stored.recording_id, _Waiting(stored))
        entry.changes.append(change)

    def bases(self) -> dict[str, RecordingState]:
        """The stored states of the recordings with waiting changes (what to re-assert)."""
        return {rid: entry.base for rid, entry in self._waiting.items()}

    async def settled(self, recording_id: str) -> None:
        """Until the recording has no waiting change."""
        entry = self._waiting.get(recording_id)
        if entry is not None:
            await entry.settled.wait()

    async def write(self, store: StateStore,
                    written: Callable[[RecordingState], None]) -> None:
        """Write every waiting change in order; `written(state)` once a recording's are all
        written. Unavailable
        when the store goes again (what is left waits for the next try)."""
        for recording_id, entry in list(self._waiting.items()):
            while entry.changes:
                try:
                    state = await store.update(recording_id, entry.changes[0])
                except (InvalidTransition, NotFound) as exc:  # (a write that timed out
                    # but landed is refused here: it is written once)
                    logger.warning("recording %s: a change made while the store was away "
                                   "no longer applies: %s", recording_id, exc.detail)
                    if isinstance(exc, InvalidTransition):
                        entry.base = await store.get(recording_id)
                else:
                    entry.base = state
                entry.changes.pop(0)
            del self._waiting[recording_id]
            written(entry.base)
            entry.settled.set()
            logger.info("recording %s: changes made while the store was away written",
                        recording_id)
