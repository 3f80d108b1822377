"""This node's CPU budget for live media: what its recordings cost, and what one more would.

The prices are :mod:`recorder.core.cpu`'s; this module only adds up what the node runs. A
recording of WHIP publishers is priced with its room's publishers; a pulled recording
(WHEP, Cloudflare Realtime) with one, since a room's publishers do not reach it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from recorder.core.cpu import added_publisher_cores, recording_cores
from recorder.core.models import RecordingState, Transcode


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
