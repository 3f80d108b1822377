"""The room sessions this node runs, one per room with publishers or recordings.

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
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from typing import Protocol

from aiortc import RTCIceServer

from recorder.background import BackgroundTasks
from recorder.config.settings import Settings
from recorder.core.errors import NotFound, Unavailable
from recorder.core.urls import AllowList
from recorder.room.capture_run import CaptureFactory, media_capture
from recorder.room.messages import (
    Publish,
    RoomCommand,
    RoomEvent,
    RoomReply,
    StartCapture,
    Unpublish,
)
from recorder.room.process import RemoteRoom, RoomProcess
from recorder.room.session import PUBLISHER_RETRY_AFTER_SECONDS, RoomConfig, RoomSession
from recorder.room.wire import ProcessConfig

logger = logging.getLogger(__name__)


class Room(Protocol):
    @property
    def publisher_count(self) -> int: ...
    @property
    def idle(self) -> bool: ...
    async def handle(self, command: RoomCommand) -> RoomReply: ...
    async def close(self) -> None: ...


class RoomRegistry:
    """Creates room sessions on demand, closes idle ones, and forgets dead ones.

    Each session reports through `emit(room_id, event)`; a room process that dies reports
    a final :class:`recorder.room.messages.RoomLost` the same way.
    """

    def __init__(self, settings: Settings, emit: Callable[[str, RoomEvent], None],
                 capture_factory: CaptureFactory | None = None) -> None:
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
        self._rooms: dict[str, Room] = {}
        self._children: list[RoomProcess] = []
        self._busy: dict[str, int] = {}  # commands in flight per room: not idle meanwhile
        self._closing = BackgroundTasks()

    @property
    def processes(self) -> bool:
        """Whether rooms run in child processes."""
        return self._processes

    def _room(self, room_id: str) -> Room:
        room = self._rooms.get(room_id)
        if room is None:
            if self._processes:
                room = self._place(room_id).room(room_id)
            else:
                room = RoomSession(room_id, self._config,
                                   lambda event: self._emit(room_id, event))
            self._rooms[room_id] = room
            logger.info("room %s: session opened", room_id)
        return room

    def _place(self, room_id: str) -> RoomProcess:
        """The process with the fewest rooms if rooms may share and every core has one,
        else a new one."""
        accepting = [child for child in self._children if child.accepting]
        if self._rooms_per_process > 1 and len(accepting) >= self._cores:
            least = min(accepting, key=lambda child: len(child.rooms))
            if len(least.rooms) < self._rooms_per_process:
                return least
        child = RoomProcess(self._process_config, room_id, self._emit, self._exited)
        self._children.append(child)
        child.start()
        return child

    def _exited(self, child: RoomProcess) -> None:
        self._children.remove(child)
        for room_id, room in list(self._rooms.items()):
            if isinstance(room, RemoteRoom) and room.process is child:
                del self._rooms[room_id]

    async def send(self, room_id: str, command: RoomCommand) -> RoomReply:
        if room_id not in self._rooms and not isinstance(command, Publish | StartCapture):
            raise _absent(room_id, command)  # no room to start just to say so
        room = self._room(room_id)
        self._busy[room_id] = self._busy.get(room_id, 0) + 1
        try:
            return await room.handle(command)
        finally:
            self._busy[room_id] -= 1
            if not self._busy[room_id]:
                del self._busy[room_id]

    async def close_idle(self) -> None:
        for room_id, room in list(self._rooms.items()):
            if room.idle and room_id not in self._busy:
                del self._rooms[room_id]
                if isinstance(room, RemoteRoom):
                    if room.process.release(room_id):  # its exit takes a moment: not here
                        self._closing.spawn(room.process.close())
                else:
                    await room.close()
                logger.info("room %s: session closed (idle)", room_id)

    async def close(self) -> None:
        """Close every room (files finalised; a process that does not exit in time is
        killed) and wait for rooms already closing."""
        rooms, self._rooms = self._rooms, {}
        sessions = [room.close() for room in rooms.values() if isinstance(room, RoomSession)]
        children = [child.close() for child in list(self._children)]
        results = await asyncio.gather(*sessions, *children, *self._closing.running(),
                                       return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                logger.error("a room did not close cleanly: %r", result)

    @property
    def process_count(self) -> int:
        """Room processes running now (0 when rooms run inside recorderd)."""
        return len(self._children)

    def publisher_count(self) -> int:
        return sum(room.publisher_count for room in self._rooms.values())

    def hosted(self) -> set[str]:
        """The rooms open on this node (RECORDER_MAX_ROOMS counts them)."""
        return set(self._rooms)

    def check_publisher_room(self, room_id: str) -> None:
        """Refuse (503) a publisher for a room that has all its publishers already: the room
        checks it again, but the per-user caps that come first must not answer it."""
        room = self._rooms.get(room_id)
        limit = self._config.max_publishers
        if room is not None and room.publisher_count >= limit:
            raise Unavailable(f"room {room_id} has its {limit} publishers",
                              retry_after=PUBLISHER_RETRY_AFTER_SECONDS)


def _absent(room_id: str, command: RoomCommand) -> NotFound:
    """What the room itself would answer to a command about something it never had."""
    if isinstance(command, Unpublish):
        return NotFound(f"no publisher session {command.session_id} in room {room_id}")
    recording_id = getattr(command, "recording_id", "?")
    return NotFound(f"recording {recording_id} is not capturing in room {room_id}")
