"""The rooms this node runs, one record each (:mod:`recorder.service.room_record`).

Every reply and event of a room passes here in the room's order: the record is updated
first, then the event goes on to the service (``emit``). Where the rooms run (a pool of warm
workers, a process per room, or inline) is :mod:`recorder.service.room_hosts`; when a room
process dies, the registry reports what its rooms held: a
:class:`~recorder.room.messages.PublisherLeft` per publisher and a
:class:`~recorder.room.messages.RoomLost` naming the recordings it was capturing.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

from recorder.config.settings import Settings
from recorder.core.errors import NotFound, Unavailable
from recorder.core.frames import FrameCounts
from recorder.core.lifecycle import ACTIVE
from recorder.core.tracks import TrackInfo
from recorder.room import messages as msg
from recorder.room.capture_run import CaptureFactory
from recorder.room.process import RemoteRoom, RoomProcess, describe_exit
from recorder.room.session import PUBLISHER_RETRY_AFTER_SECONDS
from recorder.service.budget import node_cost
from recorder.service.room_hosts import InlineRoom, RoomHosts
from recorder.service.room_record import Publisher, Room, RoomRecord, RunningRecording

logger = logging.getLogger(__name__)


class RoomRegistry:
    def __init__(self, settings: Settings, emit: Callable[[str, msg.RoomEvent], None],
                 capture_factory: CaptureFactory | None = None) -> None:
        """`emit(room_id, event)` gets every room event once the record has seen it, and the
        PublisherLeft/RoomLost a process death implies."""
        self._max_publishers = settings.max_publishers_per_room
        self._emit = emit
        self._records: dict[str, RoomRecord] = {}
        self._forgotten_frames = FrameCounts()  # of recordings no longer running
        self.hosts = RoomHosts(settings, capture_factory, self._event, self._accepted,
                               self._process_lost, self._price)

    # ---- what the rooms hold -----------------------------------------------------------------

    def records(self) -> list[RoomRecord]:
        return list(self._records.values())

    def hosted(self) -> set[str]:
        """The rooms open on this node (RECORDER_MAX_ROOMS counts them)."""
        return set(self._records)

    def add_recording(self, running: RunningRecording) -> None:
        """An admitted recording: its room holds it from now on, until :meth:`forget`."""
        self._record(running.state.room_id).recordings[running.state.recording_id] = running

    def recording(self, recording_id: str) -> RunningRecording | None:
        for record in self._records.values():
            if (running := record.recordings.get(recording_id)) is not None:
                return running
        return None

    def recordings(self) -> list[RunningRecording]:
        return [running for record in self._records.values()
                for running in record.recordings.values()]

    def forget(self, recording_id: str) -> RunningRecording | None:
        for record in self._records.values():
            if (running := record.recordings.pop(recording_id, None)) is not None:
                self._forgotten_frames += running.frames
                return running
        return None

    def frame_totals(self) -> tuple[int, int]:
        """Frames received and dropped by every recording this node ran since it started:
        the forgotten ones' final counts and the running ones' latest (for /metrics)."""
        total = sum((r.frames for r in self.recordings()), self._forgotten_frames)
        return total.received, total.dropped

    def publisher(self, session_id: str) -> tuple[str, Publisher] | None:
        """The room and publisher of a WHIP session the room answered."""
        for room_id, record in self._records.items():
            if (publisher := record.publishers.get(session_id)) is not None:
                return room_id, publisher
        return None

    def leave(self, session_id: str) -> Publisher | None:
        """Forget a WHIP session: the publisher it was, the first time only."""
        for record in self._records.values():
            if (publisher := record.publishers.pop(session_id, None)) is not None:
                return publisher
        return None

    def tracks(self, room_id: str) -> list[TrackInfo]:
        """What the room's publishers send now, in the order it started."""
        record = self._records.get(room_id)
        return [] if record is None else [
            track for publisher in record.publishers.values() for track in publisher.tracks]

    def publishers_per_room(self) -> Counter[str]:
        return Counter({room_id: len(record.publishers)
                        for room_id, record in self._records.items() if record.publishers})

    def check_publisher_room(self, room_id: str) -> None:
        """Refuse (503) a publisher for a room that has all its publishers already: the room
        checks it again, but the per-user caps that come first must not answer it."""
        record = self._records.get(room_id)
        limit = self._max_publishers
        if record is not None and len(record.publishers) >= limit:
            raise Unavailable(f"room {room_id} has its {limit} publishers",
                              retry_after=PUBLISHER_RETRY_AFTER_SECONDS)

    # ---- commands ------------------------------------------------------------------------

    async def send(self, room_id: str, command: msg.RoomCommand) -> msg.RoomReply:
        record = self._records.get(room_id)
        if (record is None or record.host is None) and not isinstance(
                command, msg.Publish | msg.StartCapture):
            raise _absent(room_id, command)  # no room to start just to say so
        record = self._record(room_id)
        if record.host is None:
            record.host = self._open(room_id)
        record.in_flight += 1
        try:
            return await record.host.handle(command)
        finally:
            record.in_flight -= 1

    def _record(self, room_id: str) -> RoomRecord:
        if (record := self._records.get(room_id)) is None:
            record = self._records[room_id] = RoomRecord(room_id)
        return record

    def _open(self, room_id: str) -> Room:
        logger.info("room %s: session opened", room_id)
        return self.hosts.open(room_id)

    def _price(self, room_id: str) -> float:
        """Cores the room's active recordings are priced at (placement weighs workers)."""
        record = self._records.get(room_id)
        if record is None:
            return 0.0
        return node_cost((running.state for running in record.recordings.values()
                          if running.state.status in ACTIVE), self.publishers_per_room())

    # ---- the rooms' stream -----------------------------------------------------------------

    def _accepted(self, room_id: str, command: msg.RoomCommand) -> None:
        if (record := self._records.get(room_id)) is not None:
            record.accepted(command)

    def _event(self, room_id: str, event: msg.RoomEvent) -> None:
        record = self._records.get(room_id)
        if record is None or record.observe(event):
            self._emit(room_id, event)

    def _process_lost(self, child: RoomProcess) -> None:
        """A room process was reaped: its rooms lose their host and report what they held."""
        how = describe_exit(child.exitcode)
        for room_id in sorted(child.rooms):
            record = self._records.get(room_id)
            if (record is None or not isinstance(record.host, RemoteRoom)
                    or record.host.process is not child):
                continue
            record.host = None
            lost = record.lost()
            expected = child.closing and child.exitcode == 0 and not lost
            if expected:
                logger.info("room %s: process %s exited", room_id, child.pid)
            else:
                logger.error("room %s: process %s ended (%s) with %d recording(s): %s",
                             room_id, child.pid, how, len(lost), ", ".join(lost) or "none")
            for recording_id in lost:
                record.recordings[recording_id].capturing = False
            for publisher in list(record.publishers.values()):
                self._emit(room_id, msg.PublisherLeft(publisher.session_id,
                                                      publisher.publisher_id))
            if not expected:
                self._emit(room_id, msg.RoomLost(lost, child.exitcode))

    # ---- closing ---------------------------------------------------------------------------

    async def close_idle(self) -> None:
        for room_id, record in list(self._records.items()):
            if not record.idle:
                continue
            del self._records[room_id]
            if record.host is not None:
                await self.hosts.release(room_id, record.host)
            logger.info("room %s: session closed (idle)", room_id)

    async def close(self) -> None:
        """Close every room (files finalised; a process that does not exit in time is
        killed) and wait for rooms already closing."""
        inline: list[Coroutine[Any, Any, None]] = []
        for record in self._records.values():
            if isinstance(record.host, InlineRoom):
                inline.append(record.host.close())
                record.host = None
        await self.hosts.close(inline)


def _absent(room_id: str, command: msg.RoomCommand) -> NotFound:
    """What the room itself would answer to a command about something it never had."""
    if isinstance(command, msg.Unpublish):
        return NotFound(f"no publisher session {command.session_id} in room {room_id}")
    recording_id = getattr(command, "recording_id", "?")
    return NotFound(f"recording {recording_id} is not capturing in room {room_id}")
