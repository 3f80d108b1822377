"""The final states of the recordings this node finished lately, written back if the store
loses them (docs/operations.md, "When the store fails").

A recording that completed is no longer run by any node, so without this a store restarted
empty would answer 404 for it although its files are safe. The node keeps the last
MAX_FINISHED final states it saw (about 5 KiB each) and writes them back once after every
loss of data it notices, never over a newer version. A worker that finished an upload leaves
the completed state in the folder's ``.uploaded`` marker, so one the node had not seen yet
comes back too.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path

from pydantic import ValidationError

from recorder.core.lifecycle import TERMINAL
from recorder.core.models import RecordingState

logger = logging.getLogger(__name__)

MAX_FINISHED = 5000
UPLOADED_MARKER = ".uploaded"  # a verified upload's folder (retention sweeps these only)


def write_uploaded_marker(folder: Path, state: RecordingState | None = None) -> None:
    """Mark the folder uploaded; with `state`, keep the completed state in the marker (a
    reader that meets it half-written takes it for a bare marker). Blocking."""
    marker = folder / UPLOADED_MARKER
    if state is None:
        marker.touch()
        return
    marker.write_text(state.to_json(), encoding="utf-8")


def read_uploaded_marker(folder: Path) -> RecordingState | None:
    """The completed state a worker left in the folder's marker (None: none). Blocking."""
    try:
        text = (folder / UPLOADED_MARKER).read_text(encoding="utf-8")
    except OSError:
        return None
    if not text.strip():
        return None
    try:
        return RecordingState.from_json(text)
    except (ValidationError, ValueError) as exc:
        logger.warning("%s: unreadable state in %s: %s", folder, UPLOADED_MARKER, exc)
        return None


class FinishedStates:
    def __init__(self, limit: int = MAX_FINISHED) -> None:
        self._limit = limit
        self._states: OrderedDict[str, RecordingState] = OrderedDict()

    def keep(self, state: RecordingState) -> None:
        """Keep a final state (one that is not final yet is not kept)."""
        if state.status not in TERMINAL:
            return
        self._states[state.recording_id] = state
        self._states.move_to_end(state.recording_id)
        while len(self._states) > self._limit:
            self._states.popitem(last=False)

    def states(self) -> list[RecordingState]:
        return list(self._states.values())
