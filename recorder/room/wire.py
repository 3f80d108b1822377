"""What crosses the pipe between recorderd and a room process, around the room messages.

The room protocol itself (:mod:`recorder.room.messages`) stays as it is; this module wraps it
in envelopes: the room a command or an event is about (a process may host several rooms), a
request id so a reply finds its command among several in flight, and a refusal that carries
a :class:`recorder.core.errors.RecorderError` as plain data. Exceptions do not pickle
reliably (several of ours take other constructor arguments than their message), so a
refusal names the class and copies its attributes, and the parent builds the same class
again: a 404 raised in the room answers 404 in the API, exactly as in-process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCIceServer

from recorder.core import errors
from recorder.core.errors import MediaError, RecorderError
from recorder.core.urls import AllowList
from recorder.room.messages import RoomCommand, RoomEvent, RoomReply
from recorder.rtc.publisher import CONNECT_TIMEOUT_SECONDS


@dataclass(frozen=True)
class ProcessConfig:
    """Everything a room process needs, sent as its first message (no settings reading);
    the same for every room it hosts.

    The test-only hooks of :class:`recorder.room.session.RoomConfig` (capture factory, pull
    timing) stay out: a room process always records with the real pipeline.
    """

    max_publishers: int
    ice_servers: list[RTCIceServer] = field(default_factory=list)
    connect_timeout: float = CONNECT_TIMEOUT_SECONDS  # RECORDER_WHIP_CONNECT_TIMEOUT_SECONDS
    ice_host_addresses: list[str] = field(default_factory=list)  # empty: all interfaces
    log_level: str = "INFO"
    pull_allowed: AllowList = field(default_factory=AllowList)  # RECORDER_PULL_ALLOWED_URLS


# ---- parent -> child ----------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """A command for one room; the process opens the room's session at its first one."""

    id: int
    room_id: str
    command: RoomCommand


@dataclass(frozen=True)
class CloseRoom:
    """Close one room's session (recorderd found it idle); the process goes on."""

    room_id: str


@dataclass(frozen=True)
class Shutdown:
    """Close every room (captures stopped and finalised, peers closed), then exit 0."""


# ---- child -> parent ----------------------------------------------------------------------


@dataclass(frozen=True)
class Ready:
    """The room runs; commands may come."""

    pid: int


@dataclass(frozen=True)
class Reply:
    id: int
    reply: RoomReply


@dataclass(frozen=True)
class Refusal:
    id: int
    error: ErrorInfo


@dataclass(frozen=True)
class Event:
    room_id: str
    event: RoomEvent


ToChild = ProcessConfig | Request | CloseRoom | Shutdown
ToParent = Ready | Reply | Refusal | Event


# ---- refusals -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorInfo:
    """A RecorderError as data: its class name in :mod:`recorder.core.errors`, its detail,
    and its other attributes (retry_after, upstream_status, current/action...)."""

    name: str
    detail: str
    attributes: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, exc: BaseException) -> ErrorInfo:
        """Anything that is not one of ours becomes a MediaError naming it: the room failed."""
        if not isinstance(exc, RecorderError) or _error_class(type(exc).__name__) is None:
            exc = MediaError(f"room process: {type(exc).__name__}: {exc}")
        attributes = {k: v for k, v in vars(exc).items() if k != "detail"}
        return cls(type(exc).__name__, exc.detail, attributes)

    def to_exception(self) -> RecorderError:
        """The same class again, with the same detail and attributes."""
        kind = _error_class(self.name) or MediaError
        exc = kind.__new__(kind)
        Exception.__init__(exc, self.detail)
        exc.detail = self.detail
        vars(exc).update(self.attributes)
        return exc


def _error_class(name: str) -> type[RecorderError] | None:
    kind = getattr(errors, name, None)
    if isinstance(kind, type) and issubclass(kind, RecorderError):
        return kind
    return None
