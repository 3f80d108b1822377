"""Where rooms run (RECORDER_ROOM_ISOLATION; docs/architecture.md, "Room workers").

- ``pool`` (the default): RECORDER_ROOM_WORKERS room processes, started with recorderd and
  kept warm, each hosting any number of rooms, as an SFU runs one worker per core. A new
  room goes to the least loaded worker (:mod:`recorder.service.placement`) and stays there
  while it lives, so a start in a room nobody used costs no process start. A worker that
  dies takes its rooms with it (the registry reports what they held) and a new one takes
  its index at once.
- ``process``: a process per room, started with the room and closed with it: a crash takes
  one room down, at the price of a process start per room and a process woken for every
  packet of a light stream.
- ``inline``: rooms inside recorderd (one core, no crash isolation); also whenever a test
  hands in its own capture factory, which cannot cross a process boundary.

Every host answers the same commands with the same replies, refusals and events.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from aiortc import RTCIceServer

from recorder.background import BackgroundTasks
from recorder.config.settings import RoomIsolation, Settings
from recorder.core.urls import AllowList
from recorder.room import messages as msg
from recorder.room.capture_run import CaptureFactory, media_capture
from recorder.room.process import RemoteRoom, RoomProcess
from recorder.room.session import RoomConfig, RoomSession
from recorder.room.wire import ProcessConfig
from recorder.service.placement import WorkerLoad, least_loaded
from recorder.service.room_record import Room

logger = logging.getLogger(__name__)

Emit = Callable[[str, msg.RoomEvent], None]
Accepted = Callable[[str, msg.RoomCommand], None]


class InlineRoom:
    """A room session in this process, reporting its accepted commands as a process does."""

    def __init__(self, session: RoomSession, accepted: Accepted) -> None:
        self._session = session
        self._accepted = accepted

    async def handle(self, command: msg.RoomCommand) -> msg.RoomReply:
        reply = await self._session.handle(command)
        self._accepted(self._session.room_id, command)  # same task step: still in order
        return reply

    async def close(self) -> None:
        await self._session.close()


@dataclass(frozen=True)
class WorkerInfo:
    index: int
    pid: int | None
    rooms: int
    pss_bytes: int | None  # proportional set size: its share of memory, shared pages split


def pss_bytes(pid: int | None) -> int | None:
    """A process's PSS from /proc (None when it is gone or not readable)."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


class RoomHosts:
    def __init__(self, settings: Settings, capture_factory: CaptureFactory | None,
                 emit: Emit, accepted: Accepted, lost: Callable[[RoomProcess], None],
                 price: Callable[[str], float]) -> None:
        """`emit` and `accepted` get the rooms' stream; `lost(process)` is called when a room
        process ended, with its rooms still in `process.rooms`; `price(room_id)` is what a
        room's active recordings cost (for placement). A test's `capture_factory` keeps
        rooms inline."""
        ice_servers = [RTCIceServer(urls=s.urls, username=s.username, credential=s.credential)
                       for s in settings.ice_servers]
        pull_allowed = AllowList.parse(settings.pull_allowed_urls)
        self._room_config = RoomConfig(
            max_publishers=settings.max_publishers_per_room, ice_servers=ice_servers,
            connect_timeout=settings.whip_connect_timeout_seconds,
            capture_factory=capture_factory or media_capture, pull_allowed=pull_allowed)
        self._process_config = ProcessConfig(
            max_publishers=settings.max_publishers_per_room, ice_servers=ice_servers,
            connect_timeout=settings.whip_connect_timeout_seconds,
            ice_host_addresses=list(settings.ice_host_addresses),
            log_level=logging.getLevelName(logging.getLogger().getEffectiveLevel()),
            pull_allowed=pull_allowed)
        self.isolation = RoomIsolation.INLINE if capture_factory else settings.room_isolation
        self._emit = emit
        self._accepted = accepted
        self._lost = lost
        self._price = price
        self._workers: list[RoomProcess | None] = [None] * (
            settings.workers if self.isolation is RoomIsolation.POOL else 0)
        self._per_room: list[RoomProcess] = []  # `process` isolation
        self._closing = BackgroundTasks()
        self._stopped = False
        self.restarts = 0  # workers started again after one died

    def start(self) -> None:
        """Start the pool's missing workers (they load in the background). Idempotent."""
        for index, worker in enumerate(self._workers):
            if worker is None and not self._stopped:
                self._workers[index] = self._spawn(f"worker-{index}", warm=True)

    async def ready(self) -> None:
        """Start the pool's missing workers and wait until each is ready."""
        self.start()
        await asyncio.gather(*(w.started() for w in self._workers if w is not None))

    def open(self, room_id: str) -> Room:
        if self.isolation is RoomIsolation.INLINE:
            session = RoomSession(room_id, self._room_config,
                                  lambda event: self._emit(room_id, event))
            return InlineRoom(session, self._accepted)
        if self.isolation is RoomIsolation.PROCESS:
            child = self._spawn(room_id, warm=False)
            self._per_room.append(child)
            return child.room(room_id)
        self.start()
        index = least_loaded([self._load(i, w) for i, w in enumerate(self._workers) if w])
        worker = self._workers[index]
        assert worker is not None
        logger.info("room %s: placed on worker %d", room_id, index)
        return worker.room(room_id)

    async def release(self, room_id: str, host: Room) -> None:
        """An idle room closes: its session in its worker, or its own process with it."""
        if isinstance(host, RemoteRoom):
            if host.process.release(room_id):  # its exit takes a moment: not here
                self._closing.spawn(host.process.close())
        else:
            await host.close()

    def workers(self) -> list[WorkerInfo]:
        """The pool's workers now, a pid for those ready (reads /proc: call it from a
        thread)."""
        infos = []
        for index, worker in enumerate(self._workers):
            pid = worker.pid if worker is not None and worker.ready else None
            infos.append(WorkerInfo(index, pid, len(worker.rooms) if worker else 0,
                                    pss_bytes(pid)))
        return infos

    @property
    def process_count(self) -> int:
        return sum(1 for w in self._workers if w is not None) + len(self._per_room)

    async def close(self, inline: list[Coroutine[Any, Any, None]]) -> None:
        """Close every process (files finalised; one that does not exit in time is killed),
        the given inline closes, and wait for processes already closing."""
        self._stopped = True
        children = [*(w for w in self._workers if w is not None), *self._per_room]
        results = await asyncio.gather(*inline, *(child.close() for child in children),
                                       *self._closing.running(), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                logger.error("a room did not close cleanly: %r", result)

    def _load(self, index: int, worker: RoomProcess) -> WorkerLoad:
        return WorkerLoad(index, sum(self._price(room) for room in worker.rooms),
                          len(worker.rooms))

    def _spawn(self, name: str, *, warm: bool) -> RoomProcess:
        child = RoomProcess(self._process_config, name, self._emit, self._accepted,
                            self._exited, warm=warm)
        child.start()
        return child

    def _exited(self, child: RoomProcess) -> None:
        if child in self._per_room:
            self._per_room.remove(child)
        elif child in self._workers:
            index = self._workers.index(child)
            self._workers[index] = None
            if not self._stopped and child.ready:  # a replacement is warm in about a second
                logger.error("worker %d: room process %s ended: started again", index,
                             child.pid)
                self.restarts += 1
                self._workers[index] = self._spawn(f"worker-{index}", warm=True)
            # one that never started is tried again by the next room that needs it
        self._lost(child)
