"""The rooms this node runs, one record each (:mod:`recorder.service.room_record`), and where
each runs.

By default each room runs in a child process of its own (``settings.room_processes``,
:mod:`recorder.room.process`): Python's GIL caps a process at about one core of packet
handling and codec work, and a crash in a codec must take down one room, not the node.
``settings.rooms_per_process`` above 1 lets rooms share processes once every core has one:
a new room then goes to the process with the fewest rooms, while it has fewer than that
many. A process woken for every packet of a single light stream costs more per stream than
one serving several (bench/RESULTS.md); the price is that a crash takes down every room of
its process. With ``room_processes`` off, or when a test hands in its own capture factory
(which cannot cross a process boundary), rooms run in this process. The service cannot tell
the difference: all answer the same commands with the same replies, refusals and events.

Every reply and event passes here in the room's order: the record is updated first, then
the event goes on to the service (``emit``). When a room process dies, the registry reports
what its rooms held: a :class:`~recorder.room.messages.PublisherLeft` per publisher and a
:class:`~recorder.room.messages.RoomLost` naming the recordings it was capturing.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

from aiortc import RTCIceServer

from recorder.background import BackgroundTasks
from recorder.config.settings import Settings
from recorder.core.errors import NotFound, Unavailable
from recorder.core.frames import FrameCounts
from recorder.core.tracks import TrackInfo
from recorder.core.urls import AllowList
from recorder.room import messages as msg
from recorder.room.capture_run import CaptureFactory, media_capture
from recorder.room.process import RemoteRoom, RoomProcess, describe_exit
from recorder.room.session import PUBLISHER_RETRY_AFTER_SECONDS, RoomConfig, RoomSession
from recorder.room.wire import ProcessConfig
from recorder.service.room_record import Publisher, Room, RoomRecord, RunningRecording

logger = logging.getLogger(__name__)


class InlineRoom:
    """A room session in this process, reporting its accepted commands as a process does."""

    def __init__(self, session: RoomSession,
                 accepted: Callable[[str, msg.RoomCommand], None]) -> None:
        self._session = session
        self._accepted = accepted

    async def handle(self, command: msg.RoomCommand) -> msg.RoomReply:
        reply = await self._session.handle(command)
        self._accepted(self._session.room_id, command)  # same task step: still in order
        return reply

    async def close(self) -> None:
        await self._session.close()


class RoomRegistry:
    def __init__(self, settings: Settings, emit: Callable[[str, msg.RoomEvent], None],
                 capture_factory: CaptureFactory | None = None) -> None:
        """`emit(room_id, event)` gets every room event once the record has seen it, and the
        PublisherLeft/RoomLost a process death implies."""
        ice_servers = [RTCIceServer(urls=s.urls, username=s.username, credential=s.credential)
                       for s in settings.ice_servers]
        pull_allowed = AllowList.parse(settings.pull_allowed_urls)
        self._config = RoomConfig(max_publishers=settings.max_publishers_per_room,
                                  ice_servers=ice_servers,
                                  connect_timeout=settings.whip_connect_timeout_seconds,
                                  capture_factory=capture_factory or media_capture,
                                  pull_allowed=pull_allowed)
        self._processes = settings.room_processes and capture_factory is None
        self._rooms_per_process = settings.rooms_per_process
        self._cores = len(os.sched_getaffinity(0))
        self._process_config = ProcessConfig(
            max_publishers=settings.max_publishers_per_room,
            ice_servers=ice_servers,
            connect_timeout=settings.whip_connect_timeout_seconds,
            ice_host_addresses=list(settings.ice_host_addresses),
            log_level=logging.getLevelName(logging.getLogger().getEffectiveLevel()),
            pull_allowed=pull_allowed,
        )
        self._emit = emit
        self._records: dict[str, RoomRecord] = {}
        self._forgotten_frames = FrameCounts()  # of recordings no longer running
        self._children: list[RoomProcess] = []
        self._closing = BackgroundTasks()

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
        limit = self._config.max_publishers
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
        if self._processes:
            return self._place(room_id).room(room_id)
        session = RoomSession(room_id, self._config, lambda event: self._event(room_id, event))
        return InlineRoom(session, self._accepted)

    def _place(self, room_id: str) -> RoomProcess:
        """The process with the fewest rooms if rooms may share and every core has one,
        else a new one."""
        accepting = [child for child in self._children if child.accepting]
        if self._rooms_per_process > 1 and len(accepting) >= self._cores:
            least = min(accepting, key=lambda child: len(child.rooms))
            if len(least.rooms) < self._rooms_per_process:
                return least
        child = RoomProcess(self._process_config, room_id, self._event, self._accepted,
                            self._exited)
        self._children.append(child)
        child.start()
        return child

    # ---- the rooms' stream -----------------------------------------------------------------

    def _accepted(self, room_id: str, command: msg.RoomCommand) -> None:
        if (record := self._records.get(room_id)) is not None:
            record.accepted(command)

    def _event(self, room_id: str, event: msg.RoomEvent) -> None:
        record = self._records.get(room_id)
        if record is None or record.observe(event):
            self._emit(room_id, event)

    def _exited(self, child: RoomProcess) -> None:
        """A room process was reaped: its rooms lose their host and report what they held."""
        self._children.remove(child)
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
            host = record.host
            if isinstance(host, RemoteRoom):
                if host.process.release(room_id):  # its exit takes a moment: not here
                    self._closing.spawn(host.process.close())
            elif host is not None:
                await host.close()
            logger.info("room %s: session closed (idle)", room_id)

    async def close(self) -> None:
        """Close every room (files finalised; a process that does not exit in time is
        killed) and wait for rooms already closing."""
        inline: list[Coroutine[Any, Any, None]] = []
        for record in self._records.values():
            if isinstance(record.host, InlineRoom):
                inline.append(record.host.close())
                record.host = None
        children = [child.close() for child in list(self._children)]
        results = await asyncio.gather(*inline, *children, *self._closing.running(),
                                       return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                logger.error("a room did not close cleanly: %r", result)

    @property
    def process_count(self) -> int:
        """Room processes running now (0 when rooms run inside recorderd)."""
        return len(self._children)

def _absent(room_id: str, command: msg.RoomCommand) -> NotFound:
    """What the room itself would answer to a command about something it never had."""
    if isinstance(command, msg.Unpublish):
        return NotFound(f"no publisher session {command.session_id} in room {room_id}")
    recording_id = getattr(command, "recording_id", "?")
    return NotFound(f"recording {recording_id} is not capturing in room {room_id}")
