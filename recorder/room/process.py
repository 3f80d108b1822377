"""A room in its own process: ``python -m recorder.room --fd N --room=ROOM``.

recorderd starts one per active room (:mod:`recorder.room.remote`) so that a room's packet
handling and codecs use a core of their own and a crash takes down one room, not the node.
The process runs the same :class:`recorder.room.session.RoomSession` as the in-process mode;
only the transport differs: commands arrive as :class:`recorder.room.wire.Request` on the
socketpair end ``--fd``, replies, refusals and events go back on it. It never touches Redis.

How it ends matters more than how it runs, because its files must be finalised:

- a :class:`~recorder.room.wire.Shutdown` from recorderd (idle room, drain, stop), or SIGTERM
  (an operator or a service manager signalling the whole group): close the room (captures
  stopped, files finalised), then exit 0;
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

from recorder.core.errors import RecorderError
from recorder.logs import configure_logging
from recorder.room.channel import Channel
from recorder.room.messages import RoomEvent
from recorder.room.session import RoomConfig, RoomSession
from recorder.room.wire import (
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
    parser.add_argument("--room", required=True, help="the room id (shown by ps)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sock = socket.socket(fileno=args.fd)
    return uvloop.run(_serve(sock, args.room))


async def _serve(sock: socket.socket, room_id: str) -> int:
    channel = await Channel.open(sock)
    config = await channel.receive()
    if not isinstance(config, ProcessConfig) or config.room_id != room_id:
        print(f"recorder-room {room_id}: no configuration from recorderd", file=sys.stderr)
        return EXIT_BAD_START
    _configure_logging(config)
    restrict_host_addresses(config.ice_host_addresses)
    return await RoomServer(config, channel).run()


def _configure_logging(config: ProcessConfig) -> None:
    """recorderd's logging, with the room and this pid on every line."""
    configure_logging(config.log_level)
    room = config.room_id.replace("%", "%%")
    formatter = logging.Formatter(
        f"%(asctime)s %(levelname)s %(name)s [room {room} pid %(process)d]: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter)


class RoomServer:
    """Serves one room's session over a channel until Shutdown, SIGTERM or EOF."""

    def __init__(self, config: ProcessConfig, channel: Channel) -> None:
        self._room_id = config.room_id
        self._channel = channel
        self._session = RoomSession(
            config.room_id,
            RoomConfig(max_publishers=config.max_publishers, ice_servers=config.ice_servers),
            self._emit,
        )
        self._handlers: set[asyncio.Task[None]] = set()

    def _emit(self, event: RoomEvent) -> None:
        self._channel.send(Event(event))

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        terminated = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, terminated.set)
        self._channel.send(Ready(os.getpid()))
        logger.info("room %s: process %d serving", self._room_id, os.getpid())
        reading = asyncio.create_task(self._read())
        signalled = asyncio.create_task(terminated.wait())
        try:
            await asyncio.wait({reading, signalled}, return_when=asyncio.FIRST_COMPLETED)
            why = reading.result() if reading.done() else "SIGTERM"
        finally:
            reading.cancel()
            signalled.cancel()
        logger.info("room %s: closing (%s)", self._room_id, why)
        await self._session.close()
        if self._handlers:  # commands still waiting end now that the room is closed
            await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._channel.flush()
        await self._channel.close()
        logger.info("room %s: process %d exits", self._room_id, os.getpid())
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
                task = asyncio.create_task(self._handle(message))
                self._handlers.add(task)
                task.add_done_callback(self._handlers.discard)
            else:
                logger.warning("room %s: unexpected message %s ignored", self._room_id,
                               type(message).__name__)

    async def _handle(self, request: Request) -> None:
        try:
            reply = await self._session.handle(request.command)
        except Exception as exc:
            if not isinstance(exc, RecorderError):
                logger.exception("room %s: %s failed", self._room_id,
                                 type(request.command).__name__)
            self._channel.send(Refusal(request.id, ErrorInfo.of(exc)))
        else:
            self._channel.send(Reply(request.id, reply))
