"""Rooms in a child process: ``python -m recorder.room --fd N --name=NAME``.

recorderd starts these (:mod:`recorder.room.process`, :mod:`recorder.service.rooms`) so that
packet handling and codecs use cores of their own and a crash takes down the rooms of one
process, not the node: by default a pool of warm workers (``--name=worker-N``), each hosting
many rooms, or with ``RECORDER_ROOM_ISOLATION=process`` one process per room (``--name`` is
the room). Each room is the same :class:`recorder.room.session.RoomSession` as in the inline
mode; only the transport differs: commands arrive as :class:`recorder.room.wire.Request`
(naming their room) on the socketpair end ``--fd``, replies, refusals and events go back on
it. It never touches Redis.

How it ends matters more than how it runs, because its files must be finalised:

- a :class:`~recorder.room.wire.CloseRoom` closes one idle room; the process goes on;
- a :class:`~recorder.room.wire.Shutdown` from recorderd (the last room of a per-room
  process idle, drain, stop),
  or SIGTERM (an operator or a service manager signalling the whole group): close every room
  (captures stopped, files finalised), then exit 0;
- EOF on the socket: recorderd is gone (crashed, killed). Same close, so the files are whole
  for the restarted node's recovery, then exit;
- SIGINT is ignored: ctrl-c in a terminal reaches the whole process group, and recorderd, not
  the room, decides when its recordings stop (it drains, then sends Shutdown).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys

import uvloop

from recorder.background import BackgroundTasks
from recorder.core.errors import RecorderError
from recorder.logs import configure_logging
from recorder.room.channel import Channel
from recorder.room.session import RoomConfig, RoomSession
from recorder.room.wire import (
    CloseRoom,
    ErrorInfo,
    Event,
    ProcessConfig,
    Ready,
    Refusal,
    Reply,
    Request,
    Shutdown,
)
from recorder.rtc.ice import restrict_host_addresses

logger = logging.getLogger(__name__)

EXIT_BAD_START = 2  # no usable configuration arrived: recorderd reports the exit code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="recorder-room", description=__doc__)
    parser.add_argument("--fd", type=int, required=True, help="this end of the socketpair")
    parser.add_argument("--name", required=True,
                        help="worker-N, or the room it was started for (ps)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sock = socket.socket(fileno=args.fd)
    return uvloop.run(_serve(sock, args.name))


async def _serve(sock: socket.socket, name: str) -> int:
    channel = await Channel.open(sock)
    config = await channel.receive()
    if not isinstance(config, ProcessConfig):
        print(f"recorder-room {name}: no configuration from recorderd", file=sys.stderr)
        return EXIT_BAD_START
    _configure_logging(config)
    restrict_host_addresses(config.ice_host_addresses)
    return await RoomServer(config, channel).run()


def _configure_logging(config: ProcessConfig) -> None:
    """recorderd's logging, with this pid on every line (room lines name their room)."""
    configure_logging(config.log_level)
    formatter = logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s [room process %(process)d]: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter)


class RoomServer:
    """Serves its rooms' sessions over a channel until Shutdown, SIGTERM or EOF."""

    def __init__(self, config: ProcessConfig, channel: Channel) -> None:
        self._channel = channel
        self._room_config = RoomConfig(max_publishers=config.max_publishers,
                                       ice_servers=config.ice_servers,
                                       pull_allowed=config.pull_allowed,
                                       connect_timeout=config.connect_timeout)
        self._sessions: dict[str, RoomSession] = {}
        self._closing: dict[str, asyncio.Task[None]] = {}  # rooms closing after CloseRoom
        self._handlers = BackgroundTasks()

    def _session(self, room_id: str) -> RoomSession:
        session = self._sessions.get(room_id)
        if session is None:
            session = RoomSession(room_id, self._room_config,
                                  lambda event: self._channel.send(Event(room_id, event)))
            self._sessions[room_id] = session
        return session

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        terminated = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, terminated.set)
        self._channel.send(Ready(os.getpid()))
        logger.info("room process %d serving", os.getpid())
        reading = asyncio.create_task(self._read())
        signalled = asyncio.create_task(terminated.wait())
        try:
            await asyncio.wait({reading, signalled}, return_when=asyncio.FIRST_COMPLETED)
            why = reading.result() if reading.done() else "SIGTERM"
        finally:
            reading.cancel()
            signalled.cancel()
        logger.info("room process %d: closing %d room(s) (%s)", os.getpid(),
                    len(self._sessions), why)
        sessions, self._sessions = list(self._sessions.values()), {}
        await asyncio.gather(*(session.close() for session in sessions),
                             *self._closing.values())
        await self._handlers.wait()  # commands still waiting end now the rooms are closed
        await self._channel.flush()
        await self._channel.close()
        logger.info("room process %d exits", os.getpid())
        return 0

    async def _read(self) -> str:
        """Dispatch requests until the parent says stop; returns why reading ended."""
        while True:
            message = await self._channel.receive()
            if message is None:
                return "recorderd is gone"
            if isinstance(message, Shutdown):
                return "asked by recorderd"
            if isinstance(message, Request):
                self._handlers.spawn(self._handle(message))
            elif isinstance(message, CloseRoom):
                self._close_room(message.room_id)
            else:
                logger.warning("room process: unexpected message %s ignored",
                               type(message).__name__)

    def _close_room(self, room_id: str) -> None:
        session = self._sessions.pop(room_id, None)
        if session is None:
            return
        task = asyncio.create_task(session.close())
        self._closing[room_id] = task
        task.add_done_callback(lambda done: self._closed(room_id, done))

    def _closed(self, room_id: str, task: asyncio.Task[None]) -> None:
        if self._closing.get(room_id) is task:
            del self._closing[room_id]

    async def _handle(self, request: Request) -> None:
        try:
            closing = self._closing.get(request.room_id)
            if closing is not None:  # the room opens again once its old session is closed
                await asyncio.shield(closing)
            reply = await self._session(request.room_id).handle(request.command)
        except Exception as exc:
            if not isinstance(exc, RecorderError):
                logger.exception("room %s: %s failed", request.room_id,
                                 type(request.command).__name__)
            self._channel.send(Refusal(request.id, ErrorInfo.of(exc)))
        else:
            self._channel.send(Reply(request.id, reply))
