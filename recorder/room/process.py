"""recorderd's side of a room process: spawn it, talk to it, notice when it dies.

A :class:`RoomProcess` hosts one room or several; :class:`RemoteRoom` is one of its rooms
and answers like :class:`recorder.room.session.RoomSession` (``handle``, ``close``), so the
registry treats both alike. Commands go out as numbered requests naming their room; the
reply with the same number settles the caller's future, and a refusal is raised again as
the class the room raised.

The handle only transports: what each room holds is the registry's record
(:mod:`recorder.service.room_record`). So that record stays exact, the handle reports the
stream in its order, at once: ``accepted(room_id, command)`` for each reply before the
caller's future resolves, ``emit(room_id, event)`` for each event. Once the process is
reaped (``on_exit``), commands still waiting fail with 503 instead of hanging, and the
registry reports what the rooms it placed here took down with them.

The child is started with ``asyncio.create_subprocess_exec`` (a fresh interpreter, never a
fork of this threaded event loop) and receives its end of a socketpair through ``pass_fds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable

from recorder.core.errors import RecorderError, Unavailable
from recorder.room import messages as msg
from recorder.room.channel import Channel, ChannelError
from recorder.room.wire import (
    CloseRoom,
    Event,
    ProcessConfig,
    Ready,
    Refusal,
    Reply,
    Request,
    Shutdown,
)

logger = logging.getLogger(__name__)

START_TIMEOUT_SECONDS = 60.0  # a safety net: an interpreter with aiortc and PyAV loads in ~1 s
CLOSE_TIMEOUT_SECONDS = 30.0  # finalising what is left; then the process is killed
CHILD_MODULE = "recorder.room"  # its __main__ runs recorder.room.server


def describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class RoomProcess:
    def __init__(self, config: ProcessConfig, name: str,
                 emit: Callable[[str, msg.RoomEvent], None],
                 accepted: Callable[[str, msg.RoomCommand], None],
                 on_exit: Callable[[RoomProcess], None], *, warm: bool = False) -> None:
        """`emit(room_id, event)` gets its rooms' events, `accepted(room_id, command)` each
        command a room answered (both in stream order); `on_exit` is called once the process
        is reaped, whatever the reason. `name` (`worker-N` or a room id) names the process
        in ps and log lines. `warm`: a pool worker, which stays when its last room closes."""
        self.name = name
        self.warm = warm
        self._config = config
        self._emit = emit
        self._accepted = accepted
        self._on_exit = on_exit
        self._proc: asyncio.subprocess.Process | None = None
        self._channel: Channel | None = None
        self._starting: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[str, msg.RoomCommand,
                                       asyncio.Future[msg.RoomReply]]] = {}
        self.rooms: set[str] = set()  # the rooms placed here and not closed
        self._closing = False
        self._exited = asyncio.Event()
        self.exitcode: int | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def accepting(self) -> bool:
        """Whether a new room may be placed here."""
        return not self._closing and not self._exited.is_set()

    def room(self, room_id: str) -> RemoteRoom:
        """Place a room here (its session opens in the process at its first command)."""
        self.rooms.add(room_id)
        return RemoteRoom(room_id, self)

    @property
    def alive(self) -> bool:
        return not self._exited.is_set()

    async def started(self) -> None:
        """Returns once the process is ready (or raises Unavailable if it did not start)."""
        self.start()
        assert self._starting is not None
        await asyncio.shield(self._starting)

    async def exited(self) -> None:
        """Returns once the process is reaped."""
        await self._exited.wait()

    @property
    def ready(self) -> bool:
        """Whether it started and said so (a process that never did is not restarted)."""
        return self._reader is not None

    @property
    def closing(self) -> bool:
        """Whether it was asked to exit (an exit code 0 then is no loss)."""
        return self._closing

    def start(self) -> None:
        """Spawn the process in the background; commands wait for it to be ready."""
        if self._starting is None:
            self._starting = asyncio.create_task(self._start())

    async def handle(self, room_id: str, command: msg.RoomCommand) -> msg.RoomReply:
        """Send one command and wait for its reply; refusals raise the room's RecorderError."""
        self.start()
        assert self._starting is not None
        await asyncio.shield(self._starting)
        if self._closing or self._exited.is_set() or self._channel is None:
            raise Unavailable(f"room {room_id} is closing")
        request_id = next(self._ids)
        future: asyncio.Future[msg.RoomReply] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieve)
        self._pending[request_id] = (room_id, command, future)
        self._channel.send(Request(request_id, room_id, command))
        # Shielded: a caller that gives up must not lose the reply, whose bookkeeping (a
        # publisher, a recording) keeps the room from being closed under its media.
        return await asyncio.shield(future)

    def release(self, room_id: str) -> bool:
        """Let go of an idle room, at once: its session closes in the process, or, if it was
        the last room of a process that is not a warm worker, True and the process takes no
        new room (the caller closes it)."""
        self.rooms.discard(room_id)
        if self.rooms or self.warm:
            if self._channel is not None and self.alive:
                self._channel.send(CloseRoom(room_id))
            return False
        self._closing = True
        return True

    async def close(self, grace: float = CLOSE_TIMEOUT_SECONDS) -> None:
        """Ask every room to finalise and the process to exit; kill it after `grace` s.
        Safe to call twice."""
        self._closing = True
        if self._starting is None:
            return
        with contextlib.suppress(RecorderError):
            await asyncio.shield(self._starting)
        if self._proc is None:
            return
        if self._channel is not None and not self._exited.is_set():
            self._channel.send(Shutdown())
        try:
            await asyncio.wait_for(self._exited.wait(), grace)
        except TimeoutError:
            logger.error("%s: room process %d did not exit within %g s: killed", self.name,
                         self._proc.pid, grace)
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
            await self._exited.wait()

    async def kill(self) -> None:
        """SIGKILL the process and wait until it is reaped (tests, and a stuck room)."""
        if self._proc is not None and not self._exited.is_set():
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
            await self._exited.wait()

    # ---- start ---------------------------------------------------------------------------

    async def _start(self) -> None:
        began = time.monotonic()
        ours, theirs = socket.socketpair()
        try:
            try:
                self._proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", CHILD_MODULE, "--fd", str(theirs.fileno()),
                    f"--name={self.name}", pass_fds=(theirs.fileno(),),
                    stdin=subprocess.DEVNULL)
            finally:
                theirs.close()  # the child holds it now; ours must not keep it open
        except OSError as exc:
            ours.close()
            self._exited.set()
            self._on_exit(self)
            raise Unavailable(f"{self.name}: no room process could be started: {exc}") \
                from exc
        self._channel = await Channel.open(ours)
        self._channel.send(self._config)
        try:
            ready = await asyncio.wait_for(self._channel.receive(), START_TIMEOUT_SECONDS)
        except (TimeoutError, ChannelError):
            ready = None
        if not isinstance(ready, Ready):
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
            code = await self._proc.wait()
            await self._channel.close()
            self.exitcode = code
            self._exited.set()
            self._on_exit(self)
            raise Unavailable(f"{self.name}: its room process did not start "
                              f"({describe_exit(code)})")
        logger.info("%s: room process %d started in %.2f s", self.name, ready.pid,
                    time.monotonic() - began)
        self._reader = asyncio.create_task(self._read())

    # ---- the stream from the room --------------------------------------------------------

    async def _read(self) -> None:
        assert self._channel is not None
        assert self._proc is not None
        try:
            while (message := await self._channel.receive()) is not None:
                self._dispatch(message)
        except ChannelError as exc:
            logger.error("%s: room process %d sent garbage (%s): killed", self.name,
                         self._proc.pid, exc)
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
        code = await self._proc.wait()
        await self._channel.close()
        self.exitcode = code
        self._ended(code)

    def _dispatch(self, message: object) -> None:
        if isinstance(message, Event):
            self._emit(message.room_id, message.event)
        elif isinstance(message, Reply | Refusal):
            entry = self._pending.pop(message.id, None)
            if entry is None:
                return
            room_id, command, future = entry
            if isinstance(message, Reply):
                self._accepted(room_id, command)
                if not future.done():
                    future.set_result(message.reply)
            elif not future.done():
                future.set_exception(message.error.to_exception())
        else:
            logger.warning("%s: unexpected %s from the room process", self.name,
                           type(message).__name__)

    def _ended(self, code: int) -> None:
        """The process is reaped: fail what waits, then let the registry know."""
        how = describe_exit(code)
        for room_id, _, future in self._pending.values():
            if not future.done():
                future.set_exception(Unavailable(f"room {room_id}: its process ended ({how})"))
        self._pending.clear()
        self._exited.set()
        self._on_exit(self)


class RemoteRoom:
    """One room of a :class:`RoomProcess`, answering like a RoomSession."""

    def __init__(self, room_id: str, process: RoomProcess) -> None:
        self.room_id = room_id
        self.process = process

    async def handle(self, command: msg.RoomCommand) -> msg.RoomReply:
        return await self.process.handle(self.room_id, command)

    async def close(self) -> None:
        if self.process.release(self.room_id):
            await self.process.close()


def _retrieve(future: asyncio.Future[msg.RoomReply]) -> None:
    """A reply nobody awaits any more (its caller was cancelled) must not be logged as a
    never-retrieved exception."""
    if not future.cancelled():
        future.exception()
