"""What a deferred transcode is asked to do, and what it reports: plain data as JSON.

The job crosses a process boundary (the main process writes it, a low-priority child
reads it) and outlives the process that made it: it is kept next to the live files as
``live/job.json``, so a node restarted in the middle of a transcode runs it again from
the same description. So it holds only values (paths as strings, enums by value) and
never imports the media stack.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

from recorder.core.frames import FrameCounts
from recorder.core.presets import CODECS, Format, Layout, Quality
from recorder.core.tracks import TrackInfo

AS_RECEIVED_FOLDER: Final = "live"  # a deferred recording's as-received files (its folder's)
JOB_FILE: Final = "job.json"
SCREEN_SUFFIX: Final = "-screen"


@dataclass(frozen=True)
class SourceFile:
    """One live file: a publisher's audio and video as received."""

    path: str
    offset_seconds: float  # media time of the recording where the file begins
    duration_seconds: float
    publisher_id: str  # the file's name without extension: `alice`, `alice-screen`, `bob-2`
    role: str = "camera"  # "screen" gets the large tile of a composite
    # the file runs on its publisher's audio clock, this many ppm off the recording's
    clock_ppm: float = 0.0


@dataclass(frozen=True)
class TranscodeJob:
    recording_id: str
    directory: str  # where the outputs go: the recording's folder
    format: Format
    quality: Quality
    layout: Layout
    duration_seconds: float  # media time of the recording
    sources: tuple[SourceFile, ...]
    received_frames: FrameCounts = field(default_factory=FrameCounts)  # as received
    tracks: tuple[TrackInfo, ...] = ()  # what was received

    def output_name(self, publisher_id: str | None = None) -> str:
        """The file a live recording of this layout would have made."""
        extension = CODECS[self.format].extension
        if publisher_id is None:
            return f"recording_{self.recording_id}.{extension}"
        return f"{publisher_id}.{extension}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, raw: str | bytes) -> TranscodeJob:
        data: dict[str, Any] = json.loads(raw)
        return cls(
            recording_id=str(data["recording_id"]), directory=str(data["directory"]),
            format=Format(data["format"]), quality=Quality(data["quality"]),
            layout=Layout(data["layout"]), duration_seconds=float(data["duration_seconds"]),
            sources=tuple(SourceFile(**s) for s in data["sources"]),
            received_frames=_fields(FrameCounts, data.get("received_frames")
                                    or data["live_frames"]),  # an earlier release's name
            tracks=tuple(_fields(TrackInfo, t) for t in data.get("tracks", ())),
        )

    def save(self, path: Path) -> None:
        """Write atomically: a kill never leaves half a job behind."""
        partial = path.with_name(path.name + ".part")
        partial.write_text(self.to_json())
        partial.replace(path)


@dataclass(frozen=True)
class OutputResult:
    path: str
    kind: str  # "composite" | "track"
    duration_seconds: float
    offset_seconds: float
    width: int
    height: int
    fps: float
    video_frames: int  # pictures in the file, read back
    audio_seconds: float  # decoded audio, read back


@dataclass(frozen=True)
class TranscodeResult:
    recording_id: str
    files: tuple[OutputResult, ...]
    duration_seconds: float
    frames: FrameCounts  # by the offline capture
    cpu_seconds: float = 0.0  # the child's user + system time
    wall_seconds: float = 0.0
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: str | bytes) -> TranscodeResult:
        data: dict[str, Any] = json.loads(raw)
        return cls(
            recording_id=str(data["recording_id"]),
            files=tuple(OutputResult(**f) for f in data["files"]),
            duration_seconds=float(data["duration_seconds"]),
            frames=_fields(FrameCounts, data["frames"]),
            cpu_seconds=float(data.get("cpu_seconds", 0.0)),
            wall_seconds=float(data.get("wall_seconds", 0.0)),
            error=data.get("error"),
            extra=dict(data.get("extra") or {}),
        )


def source_of(path: Path, offset_seconds: float, duration_seconds: float,
              clock_ppm: float | None = None) -> SourceFile:
    """A live file described by its name, as the passthrough capture named it."""
    publisher_id = path.stem
    base = publisher_id.rsplit("-", 1)[0] if publisher_id.rsplit("-", 1)[-1].isdigit() \
        else publisher_id
    role = "screen" if base.endswith(SCREEN_SUFFIX) else "camera"
    return SourceFile(str(path), offset_seconds, duration_seconds, publisher_id, role,
                      clock_ppm or 0.0)


T = TypeVar("T", FrameCounts, TrackInfo)


def _fields(kind: type[T], saved: Any) -> T:
    """A value saved by asdict (an object), or by an earlier release as a list of fields."""
    return kind(**saved) if isinstance(saved, dict) else kind(*saved)
