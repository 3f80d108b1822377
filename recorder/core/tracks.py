"""A track a recording received: whose, audio or video, which codec. The same value in the
room's reports, the service and the stored state's `tracks`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrackInfo:
    publisher_id: str
    kind: str  # "audio" | "video"
    codec: str  # "vp8", "h264", "opus", ...
