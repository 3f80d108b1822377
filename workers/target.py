"""The seam between the job handler and a storage target (S3, Cloudflare Stream).

A target stores one file resumably and verifies it (docs/operations.md), or says whether a file
is already stored and verified without needing the local copy (a job run again after the
file was deleted). The handler owns the recording's state; targets own their protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from recorder.core.models import FileInfo, Playback
from workers.upload_record import UploadRecord


@dataclass(frozen=True)
class FileJob:
    recording_id: str
    room_id: str
    path: Path
    info: FileInfo  # as the state has it: size, sha256, and any s3_key/stream_id recorded
    record: UploadRecord
    on_progress: Callable[[int], None]  # bytes of this file the target holds so far
    duration_seconds: float | None = None


@dataclass(frozen=True)
class Stored:
    """Where a file now is. `uploaded` False: deliberately not sent (kept local)."""

    s3_key: str | None = None
    stream_id: str | None = None
    playback: Playback | None = None
    uploaded: bool = True


class Target(Protocol):
    async def store(self, job: FileJob) -> Stored:
        """Upload (resuming what an earlier try left) and verify; raise UploadError."""
        ...

    async def stored(self, job: FileJob) -> Stored | None:
        """The verified stored copy, if there already is one; None otherwise."""
        ...

    async def abandon(self, job: FileJob) -> None:
        """The job gave up on this file: release what the target holds for it."""
        ...

    async def close(self) -> None:
        ...


class Targets:
    """The targets this worker is configured for, made on first use."""

    def __init__(self, factories: dict[str, Callable[[], Target]]) -> None:
        self._factories = factories
        self._made: dict[str, Target] = {}

    def get(self, name: str) -> Target | None:
        if name not in self._made:
            factory = self._factories.get(name)
            if factory is None:
                return None
            self._made[name] = factory()
        return self._made[name]

    async def close(self) -> None:
        made, self._made = self._made, {}
        for target in made.values():
            await target.close()
