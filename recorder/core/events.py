"""Timed events of a recording (docs/media.md, "Events"), the pure parts: what an API client
may post, what one event line holds, the per-recording rate cap, and the counts per channel.

An event is stamped where the recording's media clock lives (the room), so its ``t`` is the
same clock as ``files[].offset_seconds``: seconds of recording, pauses and cut source gaps
removed. A line of ``events.jsonl`` is :meth:`TimedEvent.line`.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, StringConstraints, field_validator

MAX_EVENT_BYTES: Final = 16 * 1024  # an API body, or one data-channel message
CHAT: Final = "chat"  # the type of a chat message, and the label of a chat data channel
MESSAGE: Final = "message"  # a data-channel message on any other label
API_SOURCE: Final = "api"  # the `source` and `channel` of events posted to the API
DEFAULT_MAX_EVENTS_PER_SECOND: Final = 20
MAX_LABEL_CHARS: Final = 128  # longer data-channel labels are cut (they name a channel)

OtherType = Annotated[str, StringConstraints(min_length=1, max_length=64,
                                              pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")]


class ChatEventBody(BaseModel):
    """A chat message from an application whose chat lives on its own servers."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["chat"]
    user: str = Field(min_length=1, max_length=256, description="Who wrote it (shown)")
    text: str = Field(min_length=1, description="The message")


class DataEventBody(BaseModel):
    """Any other timed event: a name and a JSON object."""

    model_config = ConfigDict(extra="forbid")
    type: OtherType = Field(description="Letters, digits and ._:- (not `chat`)")
    data: dict[str, Any] = Field(description="Kept as given")

    @field_validator("type")
    @classmethod
    def _not_chat(cls, value: str) -> str:
        if value == CHAT:
            raise ValueError("a chat event has `user` and `text`, not `data`")
        return value


class EventBody(RootModel[ChatEventBody | DataEventBody]):
    """`{"type": "chat", "user", "text"}` or `{"type": <other>, "data": {...}}`, nothing
    else; at most 16 KiB as sent."""


class EventCounts(BaseModel):
    """One channel's events: recorded, and dropped (not recording, over the rate, too
    large)."""

    recorded: int = 0
    dropped: int = 0


@dataclass(frozen=True)
class TimedEvent:
    """One line of ``events.jsonl``."""

    t: float  # recording media time, seconds
    at: datetime  # wall time it arrived
    source: str  # publisher id, or "api"
    channel: str  # data-channel label, or "api"
    type: str
    user: str | None = None
    text: str | None = None
    data: Any = None
    sub: str | None = None  # API events: the poster's token subject

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "t": round(self.t, 3),
            "at": self.at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "source": self.source, "channel": self.channel, "type": self.type}
        for name in ("user", "text", "sub"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.data is not None:
            out["data"] = self.data
        return out

    def line(self) -> str:
        return json.dumps(self.record(), ensure_ascii=False, separators=(",", ":")) + "\n"


@dataclass(frozen=True)
class Incoming:
    """An event before it is stamped: what the API or a data channel brought."""

    source: str
    channel: str
    type: str
    user: str | None = None
    text: str | None = None
    data: Any = None
    sub: str | None = None

    def stamped(self, t: float, at: datetime) -> TimedEvent:
        return TimedEvent(t, at, self.source, self.channel, self.type, self.user, self.text,
                          self.data, self.sub)


def from_api(body: ChatEventBody | DataEventBody, sub: str) -> Incoming:
    if isinstance(body, ChatEventBody):
        return Incoming(API_SOURCE, API_SOURCE, CHAT, user=body.user, text=body.text, sub=sub)
    return Incoming(API_SOURCE, API_SOURCE, body.type, data=body.data, sub=sub)


def from_channel(publisher_id: str, label: str, message: str | bytes) -> Incoming | None:
    """A data-channel message as an event; None when it is over 16 KiB."""
    size = len(message) if isinstance(message, bytes) else len(message.encode())
    if size > MAX_EVENT_BYTES:
        return None
    label = label[:MAX_LABEL_CHARS]
    if isinstance(message, bytes):
        return Incoming(publisher_id, label, MESSAGE,
                        data=base64.b64encode(message).decode("ascii"))
    if label == CHAT:
        return Incoming(publisher_id, label, CHAT, user=publisher_id, text=message)
    return Incoming(publisher_id, label, MESSAGE, text=message)


@dataclass
class RateWindow:
    """At most ``per_second`` events in any one-second window (a sliding log of times)."""

    per_second: int
    _times: list[float] = field(default_factory=list)

    def admit(self, now: float) -> bool:
        cutoff = now - 1.0
        times = self._times
        while times and times[0] <= cutoff:
            times.pop(0)
        if len(times) >= self.per_second:
            return False
        times.append(now)
        return True
