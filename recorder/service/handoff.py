"""Finished files handed to the upload worker: described, then queued on their node's stream.

A file is described once (size, duration, SHA-256: what the worker later verifies the
upload against) and its recording's job goes on `jobs:upload:{node_id}` of the node whose
disk holds it. The store may be down when a recording finishes: queueing is tried again for
a while, and a job that never made it is found at the node's next start, through its
`processing:` set (:meth:`UploadHandoff.requeue_missing`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

from recorder.core.errors import NotFound, Unavailable
from recorder.core.models import FileInfo, RecordingState, UploadState, UploadTarget
from recorder.state.jobs import UploadQueue
from recorder.state.store import StateStore

logger = logging.getLogger(__name__)

QUEUE_RETRY_SECONDS = 5.0  # pause before queueing an upload again while the store is down
QUEUE_TRIES = 12  # then the node's next start finds it through `processing:{node_id}`


def describe_file(path: Path, kind: str, duration: float | None,
                  offset: float | None = 0.0, clock_ppm: float | None = None) -> FileInfo:
    """What the state says of a finished file (blocking: it reads the whole file); a
    sidecar (events, captions, thumbnail, manifest) has no duration or offset."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return FileInfo(name=path.name, kind=kind, size=path.stat().st_size,
                    sha256=digest.hexdigest(),
                    duration_seconds=None if duration is None else round(duration, 3),
                    offset_seconds=None if duration is None or offset is None
                    else round(offset, 3), clock_ppm=clock_ppm)


def upload_waiting(state: RecordingState) -> bool:
    """The recording has files that wait for a worker."""
    return (bool(state.files) and state.upload is not None
            and state.upload.target is not UploadTarget.NONE
            and state.upload.state in (UploadState.QUEUED, UploadState.UPLOADING))


class UploadHandoff:
    def __init__(self, store: StateStore, queue_of: Callable[[str], UploadQueue]) -> None:
        """`queue_of(node_id)` is a node's upload stream."""
        self._store = store
        self._queue_of = queue_of
        # what this node handed to its workers, written back if the store loses it
        # (service/reassertion.py); forgotten there once the store shows it finished
        self.handed_off: dict[str, RecordingState] = {}

    async def enqueue(self, state: RecordingState, reason: str) -> None:
        """Queue once; Unavailable if the store cannot be reached."""
        self.handed_off[state.recording_id] = state
        await self._queue_of(state.node_id).enqueue(state.recording_id, reason)

    async def queue(self, state: RecordingState, reason: str) -> None:
        """Queue the job, trying again for a while when the store is down."""
        for _ in range(QUEUE_TRIES):
            try:
                await self.enqueue(state, reason)
                return
            except Unavailable as exc:
                logger.warning("recording %s: upload not queued yet: %s", state.recording_id,
                               exc.detail)
                await asyncio.sleep(QUEUE_RETRY_SECONDS)
        logger.error("recording %s: upload not queued; the node's next start queues it",
                     state.recording_id)

    async def requeue_missing(self, node_id: str) -> None:
        """At start-up: `node_id`'s `processing` recordings whose upload waits but whose job
        is not in the stream (lost in a crash before it was queued) are queued again."""
        queue = self._queue_of(node_id)
        while True:
            try:
                waiting = await self._store.processing_ids(node_id)
                queued = await queue.queued_recordings()
                for recording_id in sorted(waiting - queued):
                    try:
                        state = await self._store.get(recording_id)
                    except NotFound:
                        continue
                    if upload_waiting(state):
                        await queue.enqueue(recording_id, "requeued")
                return
            except Unavailable as exc:
                logger.warning("uploads not re-queued yet: %s", exc.detail)
                await asyncio.sleep(QUEUE_RETRY_SECONDS)
