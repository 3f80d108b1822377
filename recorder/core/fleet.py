"""What the admin routes answer about the cluster (docs/api.md, tag `admin`).

The fleet view (recorder/service/fleet.py) builds these from Redis and the routes return
them as they are, so the OpenAPI schema and the answer are one definition. Nothing here
carries an upstream's words: dead letters hold a status code or a fixed reason, and nodes
report only what they measured themselves.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from recorder.core.events import EventCounts
from recorder.core.outbox_status import WebhookStatus
from recorder.core.tracks import TrackInfo


class NodeDisk(BaseModel):
    """The node's storage directory, measured at its last heartbeat."""

    used_bytes: int = 0  # files under the storage directory
    free_bytes: int = 0  # free on its filesystem
    total_bytes: int = 0  # size of its filesystem
    kept_uploaded: int = 0  # recording folders still on disk after a verified upload
    kept_uploaded_bytes: int = 0


NodeHealth = Literal["ok", "late", "gone"]
LATE_HEARTBEATS = 2.0  # a heartbeat older than this many periods is late


class NodeRow(BaseModel):
    node_id: str
    health: NodeHealth = Field(
        description="ok; late: its last heartbeat is older than two periods; gone: its "
                    "`node:` key expired and only the last-seen record (24 h) is left")
    public_url: str
    version: str
    pid: int
    started_at: datetime
    last_seen_at: datetime | None = Field(description="When its last heartbeat was written")
    heartbeat_age_seconds: float | None
    heartbeat_seconds: float
    cpu_used: float
    cpu_capacity: float
    rooms: int
    room_workers: int
    active_recordings: int
    draining: bool
    disk: NodeDisk | None


class NodesView(BaseModel):
    nodes: list[NodeRow] = Field(description="Sorted by node id")
    count: int


class UploadQueueRow(BaseModel):
    node_id: str
    depth: int = Field(description="Jobs in the node's upload stream (waiting or running)")
    in_progress: int = Field(description="Jobs a worker holds and has not finished")
    oldest_age_seconds: float | None


class QueuesView(BaseModel):
    uploads: list[UploadQueueRow]
    webhooks: WebhookStatus


class DayUploads(BaseModel):
    day: str = Field(description="UTC day, YYYY-MM-DD")
    uploaded_bytes: dict[str, int] = Field(description="Verified bytes by target")
    upload_failures: dict[str, int] = Field(description="Uploads given up by target")


class NodeStorage(BaseModel):
    node_id: str
    health: NodeHealth
    disk: NodeDisk | None = Field(description="As measured at its last heartbeat")


class StorageView(BaseModel):
    nodes: list[NodeStorage]
    uploaded_bytes: dict[str, int] = Field(description="Verified bytes by target, all time")
    upload_failures: dict[str, int]
    days: list[DayUploads] = Field(description="Newest first")
    kept_uploaded: int = Field(description="Folders still on disk after their upload")
    kept_uploaded_bytes: int


TimelineKind = Literal["status", "publisher_joined", "publisher_left", "playback"]


class TimelineEntry(BaseModel):
    at: datetime
    kind: TimelineKind
    event: str = Field(description="The event's type (recording_paused, publisher_left...)")
    status: str | None = None
    publisher_id: str | None = None
    track: str | None = Field(None, description="publisher_joined: kind/codec of the track")


class Pause(BaseModel):
    started_at: datetime
    ended_at: datetime | None = Field(description="null while it lasts, or if it never ended")


class Timeline(BaseModel):
    recording_id: str
    room_id: str
    status: str
    created_at: datetime
    entries: list[TimelineEntry] = Field(description="Oldest first")
    pauses: list[Pause]
    tracks: list[TrackInfo] = Field(description="The tracks the files hold (once finished)")
    events: dict[str, EventCounts] = Field(
        default_factory=dict, description="Timed events per channel: recorded and dropped")
    complete: bool = Field(description="False when the entries were rebuilt from the "
                           "state's own times (a recording older than its history)")
