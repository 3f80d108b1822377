"""Publishers joining and leaving, written into the histories of the recordings they appear
in (recorder/state/history.py), for the admin timeline.

A room reports each publisher track as it starts (``TrackAdded``) and each publisher that
leaves (``PublisherLeft``); this node appends them to every recording live in that room.
A recording that starts while publishers are already sending gets them as joined at its
start. What is remembered per room is the tracks of publishers still there, so it is
bounded by the publisher caps.
"""

from __future__ import annotations

from collections.abc import Coroutine, Iterable
from datetime import UTC, datetime
from typing import Any

from recorder.room import messages as msg
from recorder.state.events import iso_utc
from recorder.state.history import RecordingHistory


class PublisherLog:
    def __init__(self, history: RecordingHistory) -> None:
        self._history = history
        self._tracks: dict[str, dict[str, list[msg.TrackAdded]]] = {}  # room -> session

    async def track_added(self, room_id: str, event: msg.TrackAdded,
                          recording_ids: Iterable[str]) -> None:
        tracks = self._tracks.setdefault(room_id, {}).setdefault(event.session_id, [])
        if any((t.kind, t.codec) == (event.kind, event.codec) for t in tracks):
            return  # the room announces a track again when its captures change
        tracks.append(event)
        await self._history.append(recording_ids, _joined(event))

    async def publisher_left(self, room_id: str, event: msg.PublisherLeft,
                             recording_ids: Iterable[str]) -> None:
        sessions = self._tracks.get(room_id, {})
        sessions.pop(event.session_id, None)
        if not sessions:
            self._tracks.pop(room_id, None)
        await self._history.append(recording_ids, {
            "type": "publisher_left", "publisher_id": event.publisher_id,
            "at": iso_utc(datetime.now(UTC))})

    def recording_started(self, room_id: str,
                          recording_id: str) -> Coroutine[Any, Any, None]:
        """The publishers already in the room join the new recording now. Call it when the
        recording becomes live in the room: the tracks are taken at once (later ones reach it
        through track_added), the returned awaitable writes them."""
        joined = [_joined(track) for tracks in self._tracks.get(room_id, {}).values()
                  for track in tracks]
        return self._write(recording_id, joined)

    async def _write(self, recording_id: str, entries: list[dict[str, Any]]) -> None:
        for entry in entries:
            await self._history.append([recording_id], entry)

    def room_lost(self, room_id: str) -> None:
        self._tracks.pop(room_id, None)


def _joined(event: msg.TrackAdded) -> dict[str, Any]:
    return {"type": "publisher_joined", "publisher_id": event.publisher_id,
            "track": f"{event.kind}/{event.codec}", "at": iso_utc(datetime.now(UTC))}
