"""How a recording's files become a completed recording on this node: a finished capture is
described and stored (`lifecycle.captured`), or handed to a deferred transcode first, then
queued for upload; what a dead room process or a crashed node left is recovered the same
way (docs/operations.md, "Recovery").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from recorder.core import lifecycle
from recorder.core.errors import InvalidTransition, NotFound, RecorderError, Unavailable
from recorder.core.models import Status
from recorder.room import messages as msg
from recorder.room.process import describe_exit
from recorder.service.deferred import DeferredTranscodes, captured_as_received
from recorder.service.handoff import UploadHandoff, describe_file, upload_waiting
from recorder.service.recovery import OrphanRecovery
from recorder.state.store import StateStore

logger = logging.getLogger(__name__)

RECOVERY_RETRY_SECONDS = 5.0  # pause before start-up recovery tries again while the store is down

Fail = Callable[[str, str], Awaitable[None]]


class Completion:
    def __init__(self, node_id: str, store: StateStore, uploads: UploadHandoff | None,
                 deferred_concurrency: int, fail: Fail) -> None:
        """`fail(recording_id, error)` fails a recording the service runs."""
        self._node_id = node_id
        self._store = store
        self._uploads = uploads
        self._fail = fail
        self.deferred = DeferredTranscodes(deferred_concurrency, self.complete, fail)

    async def complete(self, event: msg.CaptureFinished) -> None:
        """Describe finished files in the state, complete it and queue its upload; a deferred
        recording's as-received files go to its transcode first."""
        recording_id = event.recording_id
        if captured_as_received(event):
            try:
                await self.deferred.submit(await self._store.get(recording_id), event)
            except OSError as exc:
                await self._fail(recording_id, f"transcode: {exc}")
            return
        try:
            files = [await asyncio.to_thread(describe_file, Path(f.path), f.kind,
                                             f.duration_seconds, f.offset_seconds)
                     for f in event.files]
        except OSError as exc:
            await self._fail(recording_id, f"file: {exc}")
            return
        try:
            state = await self._store.update(recording_id, lambda state: lifecycle.captured(
                state, files, event.duration_seconds, event.frames, event.tracks))
        except InvalidTransition:
            return
        logger.info("recording %s: %s, %s bytes, %.2f s", recording_id, state.status.value,
                    state.file_size_bytes, state.duration_seconds or 0.0)
        if (self._uploads is not None and state.status is Status.PROCESSING
                and upload_waiting(state)):
            await self._uploads.queue(state, "finished")

    async def recover_lost(self, room_id: str, event: msg.RoomLost) -> None:
        """A room process died: its recordings end as crash recovery ends them, files
        recovered, `recovered` set; nothing else on the node is touched."""
        cause = f"room process ended ({describe_exit(event.exitcode)}) before media"
        recovery = OrphanRecovery(self._node_id, self._store, self.complete,
                                  lambda recording_id: False)
        for recording_id in event.recording_ids:
            logger.warning("recording %s: room %s process ended (%s): recovering",
                           recording_id, room_id, describe_exit(event.exitcode))
            try:
                await recovery.recover_lost(recording_id, cause)
            except RecorderError as exc:
                logger.warning("recording %s: not recovered: %s", recording_id, exc.detail)

    async def recover_at_start(self, runs_here: Callable[[str], bool]) -> None:
        """At start-up: deferred transcodes a drain or crash interrupted run again, what a
        crash of this node left is finished, then its uploads resume; in this order, so a
        recovered recording is queued once. Retried while the store is down."""
        recovery = OrphanRecovery(self._node_id, self._store, self.complete,
                                  lambda rid: runs_here(rid) or self.deferred.owns(rid))
        while True:
            try:
                await self._resume_deferred()
                await recovery.run()
                break
            except Unavailable as exc:
                logger.warning("orphaned recordings not recovered yet: %s", exc.detail)
                await asyncio.sleep(RECOVERY_RETRY_SECONDS)
        if self._uploads is not None:
            await self._uploads.requeue_missing(self._node_id)

    async def _resume_deferred(self) -> None:
        states = []
        for recording_id in sorted(await self._store.processing_ids(self._node_id)):
            with contextlib.suppress(NotFound):
                states.append(await self._store.get(recording_id))
        await self.deferred.resume(states)
