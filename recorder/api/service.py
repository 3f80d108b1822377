"""The seam between the HTTP edge and the node: what the routes may ask of the service.

A Protocol rather than a base class so the node's service (and the tests' in-memory fake)
satisfy it structurally, and the edge never imports the node's machinery.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from recorder.core.access import Caller
from recorder.core.models import RecordingState, StartRequest, Status


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

    async def list_room(self, caller: Caller, room_id: str) -> list[RecordingState]:
        ...

    async def list_user(
        self, caller: Caller, user_id: str | None, status: Status | None
    ) -> list[RecordingState]:
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
