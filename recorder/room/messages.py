"""The typed messages between the main process and a room session.

The main process sends commands (``RoomSession.handle``) and receives events (the ``emit``
callback given to the session). Everything that crosses is a frozen dataclass of plain
values, so the session can move into a child process by swapping the transport, not the
protocol. Refusals cross as :class:`recorder.core.errors.RecorderError` subclasses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from recorder.core.events import DEFAULT_MAX_EVENTS_PER_SECOND, EventCounts, Incoming
from recorder.core.frames import FrameCounts
from recorder.core.models import PauseSpan
from recorder.core.presets import Format, Layout, Quality
from recorder.core.pulls import PullSource
from recorder.core.tracks import PublisherSpan, TrackInfo

# ---- commands (main -> room) ------------------------------------------------------------


@dataclass(frozen=True)
class Publish:
    """A WHIP offer. Reply: :class:`PublishAnswer`."""

    session_id: str
    publisher_id: str  # names its tracks: the token's `sub`, with "-screen" for a screen
    user_id: str  # the token's `sub`: whose publisher slot the session holds
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
    # where events.jsonl goes (the recording's folder; "": `directory`) and their cap
    folder: str = ""
    max_events_per_second: int = DEFAULT_MAX_EVENTS_PER_SECOND


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


@dataclass(frozen=True)
class RecordEvent:
    """An event posted to the API for a recording. Reply :class:`Ack` once it is stamped
    and written; refused with 409 while the capture is not recording (the drop is
    counted) and 429 ``event_rate`` over RECORDER_MAX_EVENTS_PER_SECOND."""

    recording_id: str
    event: Incoming


RoomCommand = (
    Publish | Unpublish | StartCapture | PauseCapture | ResumeCapture | StopCapture | CancelCapture
    | RecordEvent
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
    track: TrackInfo


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
    events: dict[str, EventCounts] = field(default_factory=dict)  # by channel, so far


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
    tracks: list[TrackInfo] = field(default_factory=list)
    events: dict[str, EventCounts] = field(default_factory=dict)  # by channel
    publishers: list[PublisherSpan] = field(default_factory=list)
    pauses: list[PauseSpan] = field(default_factory=list)  # as the media clock cut them
    events_file: str | None = None  # events.jsonl, when an event was recorded


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
