"""The typed messages between the main process and a room session.

The main process sends commands (``RoomSession.handle``) and receives events (the ``emit``
callback given to the session). Everything that crosses is a frozen dataclass of plain
values, so the session can move into a child process by swapping the transport, not the
protocol. Refusals cross as :class:`recorder.core.errors.RecorderError` subclasses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from recorder.core.frames import FrameCounts
from recorder.core.presets import Format, Layout, Quality
from recorder.core.pulls import PullSource

# ---- commands (main -> room) ------------------------------------------------------------


@dataclass(frozen=True)
class Publish:
    """A WHIP offer. Reply: :class:`PublishAnswer`."""

    session_id: str
    publisher_id: str  # the token's `sub`
    role: str  # "camera" or "screen"
    offer_sdp: str


@dataclass(frozen=True)
class Unpublish:
    session_id: str


@dataclass(frozen=True)
class StartCapture:
    """Reply :class:`Ack` once the capture runs; with a ``source`` only after the upstream
    answered and its media connected (a refusal raises ``SourceFailed``)."""

    recording_id: str
    directory: str  # {storage_dir}/{recording_id}
    file_name: str  # recording_{recording_id}.{ext}
    format: Format
    quality: Quality
    layout: Layout = Layout.COMPOSITE
    source: PullSource | None = None  # None: the room's WHIP publishers
    # `source` only: keep every track's codec (Matroska takes VP8, H.264 and Opus), not only
    # the format's; the live part of a deferred recording, never a user's file
    as_received: bool = False


@dataclass(frozen=True)
class PauseCapture:
    recording_id: str


@dataclass(frozen=True)
class ResumeCapture:
    recording_id: str


@dataclass(frozen=True)
class StopCapture:
    """Finalise the file; :class:`CaptureFinished` (or ``CaptureFailed``) follows."""

    recording_id: str


@dataclass(frozen=True)
class CancelCapture:
    """Stop and delete the recording's files; no further event."""

    recording_id: str


RoomCommand = (
    Publish | Unpublish | StartCapture | PauseCapture | ResumeCapture | StopCapture | CancelCapture
)

# ---- replies ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Ack:
    pass


@dataclass(frozen=True)
class PublishAnswer:
    answer_sdp: str


RoomReply = Ack | PublishAnswer

# ---- events (room -> main) --------------------------------------------------------------


@dataclass(frozen=True)
class TrackAdded:
    session_id: str
    publisher_id: str
    kind: str  # "audio" | "video"
    codec: str  # "vp8", "h264", "opus", ...


@dataclass(frozen=True)
class PublisherLeft:
    session_id: str
    publisher_id: str


@dataclass(frozen=True)
class MediaStarted:
    """The first frame reached the recording; it is now `recording`."""

    recording_id: str
    at: datetime


@dataclass(frozen=True)
class CaptureProgress:
    """Sent about once a second while a capture runs."""

    recording_id: str
    media_seconds: float
    idle_seconds: float  # since the last frame from any source (0 while media flows)
    frames: FrameCounts


@dataclass(frozen=True)
class FileResult:
    path: str
    kind: str  # "composite" | "track"
    duration_seconds: float
    offset_seconds: float = 0.0  # media time of the recording where the file begins
    clock_ppm: float | None = None  # a file as received: its audio clock's measured rate


@dataclass(frozen=True)
class CaptureFinished:
    recording_id: str
    files: list[FileResult]
    duration_seconds: float
    frames: FrameCounts
    tracks: list[TrackAdded] = field(default_factory=list)


@dataclass(frozen=True)
class CaptureFailed:
    recording_id: str
    error: str
    frames: FrameCounts = field(default_factory=FrameCounts)


@dataclass(frozen=True)
class RoomLost:
    """The room's process ended without being asked to (crash, kill, codec segfault), or did
    not finish in time when asked: nothing more comes from it. Sent by the room's owner, not
    the room. ``recording_ids`` were still capturing or finalising there; their files are
    as the kill left them. ``exitcode`` is the process's (negative: the signal)."""

    recording_ids: tuple[str, ...]
    exitcode: int | None


RoomEvent = (
    TrackAdded | PublisherLeft | MediaStarted | CaptureProgress | CaptureFinished | CaptureFailed
    | RoomLost
)
