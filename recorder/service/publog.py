"""Publishers joining and leaving, written into the histories of the recordings they appear
in (recorder/state/history.py), for the admin timeline.

What a room's publishers send is in its record (recorder/service/room_record.py): the
record tells a new track from one the room announces again, so this module keeps nothing.
A recording that starts while publishers are already sending gets their tracks as joined at
its start.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from recorder.core.tracks import TrackInfo
from recorder.state.events import iso_utc
from recorder.state.history import RecordingHistory


class PublisherLog:
    def __init__(self, history: RecordingHistory) -> None:
        self._history = history

    async def joined(self, recording_ids: Iterable[str], tracks: Iterable[TrackInfo]) -> None:
        ids = list(recording_ids)
        for track in tracks:
            await self._history.append(ids, {
                "type": "publisher_joined", "publisher_id": track.publisher_id,
                "track": f"{track.kind}/{track.codec}", "at": iso_utc(datetime.now(UTC))})

    async def left(self, recording_ids: Iterable[str], publisher_id: str) -> None:
        await self._history.append(recording_ids, {
            "type": "publisher_left", "publisher_id": publisher_id,
            "at": iso_utc(datetime.now(UTC))})
