"""The recording state object stored in Redis as JSON (docs/operations.md)."""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from recorder.core.events import EventCounts
from recorder.core.frames import FrameCounts
from recorder.core.presets import Format, Layout, Quality
from recorder.core.tracks import PublisherSpan, TrackInfo

MAX_METADATA_BYTES = 16 * 1024  # a start's `metadata`, as compact UTF-8 JSON


class Status(StrEnum):
    PENDING = "pending"
    RECORDING = "recording"
    PAUSED = "paused"
    PROCESSING = "processing"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"


class StopReason(StrEnum):
    REQUESTED = "requested"
    MAX_DURATION = "max_duration"
    MAX_PAUSE = "max_pause"
    NO_MEDIA = "no_media"
    SHUTDOWN = "shutdown"
    RECOVERED = "recovered"


class UploadTarget(StrEnum):
    NONE = "none"
    S3 = "s3"
    CLOUDFLARE_STREAM = "cloudflare_stream"


class UploadState(StrEnum):
    QUEUED = "queued"
    UPLOADING = "uploading"
    UPLOADED = "uploaded"
    FAILED = "failed"
    SKIPPED = "skipped"  # target `none`


class Transcode(StrEnum):
    LIVE = "live"
    DEFERRED = "deferred"


class Playback(BaseModel):
    state: str = "pending"
    error: str | None = None


class Upload(BaseModel):
    target: UploadTarget = UploadTarget.NONE
    state: UploadState = UploadState.QUEUED
    attempts: int = 0
    bytes_sent: int = 0
    error: str | None = None


MEDIA_KINDS = ("composite", "track")  # the recording's video/audio files
SIDECAR_KINDS = ("events", "captions", "thumbnail", "manifest")  # the files beside them


class FileInfo(BaseModel):
    name: str
    kind: str  # a media kind ("composite", "track") or a sidecar's (SIDECAR_KINDS)
    size: int
    sha256: str
    duration_seconds: float | None = None
    offset_seconds: float | None = None  # where in the recording's media time it begins
    # a file written as received (`source`) runs on its publisher's audio clock: that
    # clock's measured rate against the recording's, in parts per million (else None)
    clock_ppm: float | None = None
    s3_key: str | None = None
    stream_id: str | None = None
    playback: Playback | None = None


class PauseSpan(BaseModel):
    """One pause: its wall times and where it cut the recording (recording seconds)."""

    paused_at: datetime
    resumed_at: datetime | None = None  # None: still paused when it stopped
    position_seconds: float


class RecordingState(BaseModel):
    """One recording. `version` increments on every write (compare-and-set)."""

    model_config = ConfigDict(use_enum_values=False)

    recording_id: str
    room_id: str
    user_id: str
    node_id: str
    version: int = 0
    format: Format
    quality: Quality
    quality_settings: dict[str, str | int]
    layout: Layout = Layout.COMPOSITE
    transcode: Transcode = Transcode.LIVE
    source: dict[str, Any] = Field(default_factory=lambda: {"type": "whip"})
    status: Status = Status.PENDING
    stop_reason: StopReason | None = None
    storage_backend: UploadTarget = UploadTarget.NONE
    local_path: str
    file_name: str
    files: list[FileInfo] = Field(default_factory=list)
    s3_key: str | None = None
    stream_id: str | None = None
    upload: Upload | None = None
    playback: Playback | None = None
    recovered: bool = False
    created_at: datetime
    started_at: datetime | None = None
    paused_at: datetime | None = None
    resumed_at: datetime | None = None
    stopped_at: datetime | None = None
    processed_at: datetime | None = None
    paused_seconds: float = 0.0
    duration_seconds: float | None = None
    max_duration_seconds: int
    file_size_bytes: int | None = None
    sha256: str | None = None
    tracks: list[TrackInfo] = Field(default_factory=list)
    frames: FrameCounts = Field(default_factory=FrameCounts)
    events: dict[str, EventCounts] = Field(default_factory=dict)  # by channel
    publishers: list[PublisherSpan] = Field(default_factory=list)
    pauses: list[PauseSpan] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    webhook_url: str | None = None
    error: str | None = None

    def to_json(self) -> str:
        return self.model_dump_json()

    @property
    def media_files(self) -> list[FileInfo]:
        return [f for f in self.files if f.kind in MEDIA_KINDS]

    @classmethod
    def from_json(cls, raw: str | bytes) -> RecordingState:
        return cls.model_validate_json(raw)


class WhipSource(BaseModel):
    """Media from publishers on this node's WHIP endpoint for the room (the default)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["whip"] = "whip"


class WhepSource(BaseModel):
    """Pull the room from a WHEP server (the node is the viewer)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["whep"]
    url: str = Field(pattern=r"^https?://[^\s/?#]+[^\s]*$", max_length=2048,
                     description="The WHEP endpoint URL")
    token: str | None = Field(None, min_length=1, max_length=8192, repr=False,
                              description="Sent as `Authorization: Bearer`; never stored")

    def stored(self) -> dict[str, Any]:
        """What the recording's state keeps: everything but the token."""
        return {"type": self.type, "url": self.url}


class CloudflareSource(BaseModel):
    """Pull named tracks of a publisher's session from a Cloudflare Realtime SFU app."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["cloudflare"]
    app_id: str | None = Field(None, min_length=1, max_length=128,
                               description="Default: RECORDER_CF_REALTIME_APP_ID")
    session_id: str = Field(min_length=1, max_length=128,
                            description="The publisher's session id")
    track_names: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        min_length=1, max_length=64, description="The publisher's track names to record")
    data_channels: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(
        default_factory=list, max_length=16,
        description="The publisher's data channels to record as events (`chat`: chat)")


Source = Annotated[WhipSource | WhepSource | CloudflareSource, Field(discriminator="type")]


class StartRequest(BaseModel):
    """The optional JSON body of a start (docs/api.md). Unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid")

    format: Format | None = None
    quality: Quality | None = None
    layout: Layout | None = None
    transcode: Transcode | None = None
    source: Source | None = None
    max_duration_seconds: int | None = Field(None, ge=1)
    upload: UploadTarget | None = None
    webhook_url: str | None = None
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description=f"Kept with the recording; at most {MAX_METADATA_BYTES} bytes as compact JSON")

    @field_validator("metadata")
    @classmethod
    def _metadata_size(cls, metadata: dict[str, Any]) -> dict[str, Any]:
        """Stored with every write of the state for its whole TTL: capped (docs/security.md)."""
        size = len(json.dumps(metadata, separators=(",", ":"), ensure_ascii=False).encode())
        if size > MAX_METADATA_BYTES:
            raise ValueError(f"at most {MAX_METADATA_BYTES} bytes as JSON, got {size}")
        return metadata
