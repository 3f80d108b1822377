"""The seam between the HTTP edge and the node: what the routes may ask of the service.

A Protocol rather than a base class so the node's service (and the tests' in-memory fake)
satisfy it structurally, and the edge never imports the node's machinery.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Protocol

from recorder.core.access import Caller
from recorder.core.events import ChatEventBody, DataEventBody
from recorder.core.fleet import NodesView, QueuesView, StorageView, Timeline
from recorder.core.models import RecordingState, StartRequest, Status
from recorder.core.outbox_status import ReplayResult, WebhookStatus
from recorder.core.paging import ListFilter, Page, PageRequest
from recorder.state.events import StatusEvent


class RecordingsService(Protocol):
    """Every method raises :class:`~recorder.core.errors.RecorderError` subclasses for refusals."""

    async def start(self, caller: Caller, room_id: str, request: StartRequest) -> RecordingState:
        ...

    async def stop(self, caller: Caller, room_id: str, recording_id: str) -> RecordingState:
        ...

    async def pause(self, caller: Caller, room_id: str, recording_id: str) -> RecordingState:
        ...

    async def resume(self, caller: Caller, room_id: str, recording_id: str) -> RecordingState:
        ...

    async def cancel(self, caller: Caller, room_id: str, recording_id: str) -> RecordingState:
        ...

    async def status(self, caller: Caller, room_id: str, recording_id: str) -> RecordingState:
        ...

    async def record_event(self, caller: Caller, room_id: str, recording_id: str,
                           body: ChatEventBody | DataEventBody) -> None:
        """A timed event for a recording that records now (409 otherwise)."""
        ...

    async def list_room(self, caller: Caller, room_id: str,
                        page: PageRequest) -> Page[RecordingState]:
        ...

    async def list_user(self, caller: Caller, user_id: str | None, status: Status | None,
                        page: PageRequest) -> Page[RecordingState]:
        """Only recordings in the caller's `rooms` (recorder.core.access)."""
        ...

    async def file_path(self, caller: Caller, recording_id: str, name: str | None) -> Path:
        ...

    async def publish(
        self, caller: Caller, room_id: str, role: str, offer_sdp: str
    ) -> tuple[str, str]:
        """Returns (session_id, answer_sdp); `role` is "camera" or "screen"."""
        ...

    async def unpublish(self, caller: Caller, room_id: str, session_id: str) -> None:
        ...

    async def readiness(self) -> list[str]:
        """[] when ready; otherwise why not (store unreachable, disk full, draining)."""
        ...


class PlaybackService(Protocol):
    """Signed playback URLs and Stream's webhook; see recorder.service.playback."""

    async def playback_url(self, caller: Caller, recording_id: str, expiry_hours: float,
                           name: str | None = None) -> Any:
        """A model with `recording_id`, `signed_url`, `expires_at`."""
        ...

    async def signed_file(self, recording_id: str, name: str, exp: int, sig: str) -> Path:
        ...

    async def stream_notification(self, body: bytes, signature: str | None) -> Any:
        """A model saying what Stream's webhook changed; Unauthorized when unsigned."""
        ...

    async def register_stream_webhook(self, url: str) -> dict[str, Any]:
        ...


class WebhookAdmin(Protocol):
    """The outgoing webhook outbox, for admins; see workers.outbox."""

    async def status(self, configured: list[str]) -> WebhookStatus:
        ...

    async def replay(self) -> ReplayResult:
        ...


class FleetAdmin(Protocol):
    """The whole cluster for admins (recorder.service.fleet); the routes check the role."""

    async def recordings(self, only: ListFilter, room_id: str | None,
                         page: PageRequest) -> Page[RecordingState]:
        ...

    async def nodes(self) -> NodesView:
        ...

    async def queues(self) -> QueuesView:
        ...

    async def storage(self, days: int) -> StorageView:
        ...

    async def timeline(self, recording_id: str) -> Timeline:
        ...

    async def thumbnail(self, recording_id: str) -> bytes:
        """A JPEG; NotFound when the recording has no picture on this node."""
        ...


class UploadsService(Protocol):
    """Upload administration; a node without uploads leaves it out of the app."""

    async def retry_upload(self, caller: Caller, recording_id: str) -> RecordingState:
        """Admin: a recording whose upload failed goes back to `processing`, job re-queued."""
        ...


class StatusSubscription(Protocol):
    @property
    def ended(self) -> str | None:
        """Why the feed stopped serving this subscription (None while it does)."""
        ...

    async def next_event(self, wait_seconds: float) -> StatusEvent | None:
        """The next status event of the watched recording, or None after `wait_seconds` or
        once `ended` is set."""
        ...


class StatusFeed(Protocol):
    """Live status events (the `{prefix}events` channel); see recorder.state.feed."""

    def watch(self, user_id: str | None,
              recording_id: str) -> AbstractAsyncContextManager[StatusSubscription]:
        """Subscribe, holding one of `user_id`'s watcher slots (None: an admin, none);
        LimitReached when the user has them all."""
        ...

    async def close(self) -> None:
        """End every subscription (the node shuts down)."""
        ...
