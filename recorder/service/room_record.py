"""What one room holds on this node, kept once: its publishers, its recordings, its commands
in flight (docs/architecture.md, "One record per room").

The registry (:mod:`recorder.service.rooms`) keeps one :class:`RoomRecord` per room and
updates it from the room's stream in order: a command the room accepted
(:meth:`RoomRecord.accepted`) and every event (:meth:`RoomRecord.observe`). The stream is
ordered, so the record is exact, and it alone answers "may this room close?"
(:attr:`RoomRecord.idle`) and "what did its death take down?" (:meth:`RoomRecord.lost`).
The recording service keeps its per-recording knowledge (state, timers' inputs, frame
counts) in the same record, as a :class:`RunningRecording`.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from typing import Protocol

from recorder.core.frames import FrameCounts
from recorder.core.models import RecordingState
from recorder.core.tracks import TrackInfo
from recorder.room import messages as msg


@dataclass
class RunningRecording:
    """A recording this node runs: from its admission until its files are described (or it
    is discarded). ``capturing`` is true while the room captures it (from the room's Ack of
    the start to its finished, failed or cancelled capture)."""

    state: RecordingState
    admitted_at: float = math.inf  # loop time the capture began: the no-media clock
    idle_seconds: float = 0.0
    frames: FrameCounts = field(default_factory=FrameCounts)
    stopping: bool = False
    capturing: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)  # set when this node lets go


class Room(Protocol):
    """Where a room runs: a session in this process or one in a room process."""

    async def handle(self, command: msg.RoomCommand) -> msg.RoomReply: ...
    async def close(self) -> None: ...


@dataclass
class Publisher:
    """A WHIP session the room answered, and the tracks it has started sending."""

    session_id: str
    publisher_id: str
    user_id: str
    tracks: list[TrackInfo] = field(default_factory=list)


@dataclass
class RoomRecord:
    room_id: str
    host: Room | None = None  # None until its first command, and after its process died
    publishers: dict[str, Publisher] = field(default_factory=dict)  # by session id
    recordings: dict[str, RunningRecording] = field(default_factory=dict)  # by recording id
    in_flight: int = 0  # commands sent and not answered

    @property
    def idle(self) -> bool:
        """No publisher, no recording and no command in flight: the room may close."""
        return not self.publishers and not self.recordings and not self.in_flight

    def accepted(self, command: msg.RoomCommand) -> None:
        """The room answered `command` (not a refusal)."""
        if isinstance(command, msg.Publish):
            self.publishers[command.session_id] = Publisher(
                command.session_id, command.publisher_id, command.user_id)
        elif isinstance(command, msg.StartCapture):
            if (running := self.recordings.get(command.recording_id)) is not None:
                running.capturing = True
        elif isinstance(command, msg.CancelCapture):
            self._captured(command.recording_id)

    def observe(self, event: msg.RoomEvent) -> bool:
        """Take in an event; False when it tells nothing new (a track the room announces
        again when its captures change). A PublisherLeft leaves the publisher here until
        the service has given its slot back (`RoomRegistry.leave`)."""
        if isinstance(event, msg.TrackAdded):
            publisher = self.publishers.get(event.session_id)
            if publisher is not None:
                if event.track in publisher.tracks:
                    return False
                publisher.tracks.append(event.track)
        elif isinstance(event, msg.CaptureProgress):
            if (running := self.recordings.get(event.recording_id)) is not None:
                running.idle_seconds = event.idle_seconds
                running.frames = event.frames
        elif isinstance(event, msg.CaptureFinished):
            if (running := self.recordings.get(event.recording_id)) is not None:
                running.frames = event.frames  # the final counts
            self._captured(event.recording_id)
        elif isinstance(event, msg.CaptureFailed):
            self._captured(event.recording_id)
        return True

    def lost(self) -> tuple[str, ...]:
        """The recordings a death of the room takes down: those still capturing."""
        return tuple(sorted(rid for rid, r in self.recordings.items() if r.capturing))

    def _captured(self, recording_id: str) -> None:
        if (running := self.recordings.get(recording_id)) is not None:
            running.capturing = False
