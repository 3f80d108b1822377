"""Length-prefixed pickled messages over one end of a socketpair.

Both ends are our own code, started by us, on one machine: pickle is the simplest faithful
encoding of the room messages (frozen dataclasses with enums, datetimes and tuples), and a
socketpair is private to the two processes. A 4-byte big-endian length comes first so a
reader never has to guess where a message ends; a message over :data:`MAX_MESSAGE_BYTES`
means the stream is corrupt and the channel is given up.

``send`` does not wait: it appends to the transport's buffer, which is what lets the room's
synchronous ``emit`` callback send events. ``receive`` returns None at EOF: the other process
is gone (or closed its end), which both sides treat as "stop".
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import socket
import struct
from typing import Final

HEADER: Final = struct.Struct(">I")
MAX_MESSAGE_BYTES: Final = 64 << 20


class ChannelError(Exception):
    """The byte stream does not hold our messages any more."""


class Channel:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, sock: socket.socket) -> Channel:
        reader, writer = await asyncio.open_connection(sock=sock, limit=MAX_MESSAGE_BYTES)
        return cls(reader, writer)

    @property
    def closed(self) -> bool:
        return self._writer.is_closing()

    def send(self, message: object) -> None:
        """Queue one message; silently dropped once the channel is closed (the peer is gone
        and will learn nothing more, which the EOF on its side already says)."""
        if self._writer.is_closing():
            return
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        if len(data) > MAX_MESSAGE_BYTES:
            raise ChannelError(f"message of {len(data)} bytes is too large")
        self._writer.write(HEADER.pack(len(data)) + data)

    async def flush(self) -> None:
        """Wait until what was sent left this process (or the peer is gone)."""
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.drain()

    async def receive(self) -> object | None:
        """The next message, or None at EOF (also at a connection reset)."""
        try:
            header = await self._reader.readexactly(HEADER.size)
            (size,) = HEADER.unpack(header)
            if size > MAX_MESSAGE_BYTES:
                raise ChannelError(f"message of {size} bytes announced: stream corrupt")
            data = await self._reader.readexactly(size)
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        try:
            message: object = pickle.loads(data)
        except Exception as exc:
            raise ChannelError(f"unreadable message: {type(exc).__name__}: {exc}") from exc
        return message

    async def close(self) -> None:
        """Close our end; safe to call twice."""
        if not self._writer.is_closing():
            self._writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()
