"""This node's CPU budget for live media: what its recordings cost, and what one more would.

The prices are :mod:`recorder.core.cpu`'s; this module only adds up what the node runs. A
recording of WHIP publishers is priced with its room's publishers; a pulled recording
(WHEP, Cloudflare Realtime) with one, since a room's publishers do not reach it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

from recorder.core.cpu import added_publisher_cores, recording_cores
from recorder.core.lifecycle import ACTIVE
from recorder.core.models import RecordingState, Transcode

if TYPE_CHECKING:
    from recorder.service.rooms import RoomRegistry

SLACK = 1e-9  # sums of floats: a budget met exactly is not exceeded


def _publishers(state: RecordingState, publishers: Mapping[str, int]) -> int:
    return publishers.get(state.room_id, 0) if _records_publishers(state) else 1


def _records_publishers(state: RecordingState) -> bool:
    return bool(state.source.get("type", "whip") == "whip")


def recording_cost(state: RecordingState, publishers: Mapping[str, int]) -> float:
    """Cores `state` keeps busy with the publishers its room has now."""
    return recording_cores(state.quality, state.layout, state.transcode is Transcode.DEFERRED,
                           _publishers(state, publishers))


def node_cost(recordings: Iterable[RecordingState], publishers: Mapping[str, int]) -> float:
    return sum(recording_cost(state, publishers) for state in recordings)


def publisher_cost(recordings: Iterable[RecordingState], room_id: str,
                   publishers: Mapping[str, int]) -> float:
    """What one more WHIP publisher in `room_id` adds to the recordings that would take it."""
    return sum(
        added_publisher_cores(state.quality, state.layout,
                              state.transcode is Transcode.DEFERRED, publishers.get(room_id, 0))
        for state in recordings
        if state.room_id == room_id and _records_publishers(state)
    )


class CpuBudget:
    """The node's cores (RECORDER_CPU_CAPACITY) against what its active recordings cost, with
    the starts being admitted reserved, so a burst of starts cannot all see room for one."""

    def __init__(self, capacity: float, rooms: RoomRegistry) -> None:
        self.capacity = capacity
        self._rooms = rooms
        self._reserved: dict[str, float] = {}  # cores of starts being admitted

    def active(self) -> list[RecordingState]:
        return [running.state for running in self._rooms.recordings()
                if running.state.status in ACTIVE]

    @property
    def used(self) -> float:
        return node_cost(self.active(), self._rooms.publishers_per_room()) + sum(
            self._reserved.values())

    def refuses_publisher(self, room_id: str) -> float | None:
        """The capacity when one more publisher in `room_id` would exceed it, else None."""
        more = publisher_cost(self.active(), room_id, self._rooms.publishers_per_room())
        return self._refused(more) if more else None

    @contextmanager
    def reserving(self, state: RecordingState) -> Iterator[float | None]:
        """Yields the capacity when starting `state` would exceed it, else None; its cost
        counts as used until the block ends."""
        need = recording_cost(state, self._rooms.publishers_per_room())
        refused = self._refused(need)
        self._reserved[state.recording_id] = need
        try:
            yield refused
        finally:
            del self._reserved[state.recording_id]

    def _refused(self, more: float) -> float | None:
        return self.capacity if self.used + more > self.capacity + SLACK else None
