"""A track a recording received: whose, audio or video, which codec. The same value in the
room's reports, the service and the stored state's `tracks`."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TrackInfo:
    publisher_id: str
    kind: str  # "audio" | "video"
    codec: str  # "vp8", "h264", "opus", ...


@dataclass(frozen=True)
class PublisherSpan:
    """A publisher a recording had: when it joined and left in recording time (seconds,
    pauses cut; ``left`` None: there at the end), and what it sent. A publisher that only
    opened data channels has no tracks."""

    publisher_id: str
    role: str  # "camera" | "screen"
    joined_seconds: float
    left_seconds: float | None = None
    tracks: tuple[TrackInfo, ...] = field(default=())
