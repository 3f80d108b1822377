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
from recorder.core.events import EventCounts
from recorder.core.manifest import with_manifest
from recorder.core.models import FileInfo, RecordingState, Status
from recorder.room import messages as msg
from recorder.room.process import describe_exit
from recorder.service.deferred import DeferredTranscodes, captured_as_received
from recorder.service.handoff import UploadHandoff, describe_file, upload_waiting
from recorder.service.manifests import write_manifest
from recorder.service.recovery import OrphanRecovery
from recorder.service.sidecars import make_sidecars
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
        """Make the sidecars, describe the files in the state with the manifest, complete it
        and queue its upload; a deferred recording's as-received files go to its transcode
        first (what the room knew of its publishers and events is kept meanwhile)."""
        recording_id = event.recording_id
        if captured_as_received(event):
            try:
                await self._keep_room_report(event)
                await self.deferred.submit(await self._store.get(recording_id), event)
            except OSError as exc:
                await self._fail(recording_id, f"transcode: {exc}")
            return
        try:
            files, counted = await self._describe(event)
            state = await self._captured(event, files, counted)
        except OSError as exc:
            await self._fail(recording_id, f"file: {exc}")
            return
        except InvalidTransition:
            return
        logger.info("recording %s: %s, %s bytes, %.2f s", recording_id, state.status.value,
                    state.file_size_bytes, state.duration_seconds or 0.0)
        if (self._uploads is not None and state.status is Status.PROCESSING
                and upload_waiting(state)):
            await self._uploads.queue(state, "finished")

    async def _describe(self, event: msg.CaptureFinished
                        ) -> tuple[list[FileInfo], dict[str, EventCounts]]:
        """The sidecars made (the media files get their subtitle tracks first), then every
        file described: media first, in the capture's order."""
        state = await self._store.get(event.recording_id)
        events_file = None if event.events_file is None else Path(event.events_file)
        made = await asyncio.to_thread(make_sidecars, Path(state.local_path), event.files,
                                       events_file)
        files = [await asyncio.to_thread(describe_file, Path(f.path), f.kind,
                                         f.duration_seconds, f.offset_seconds, f.clock_ppm)
                 for f in event.files]
        files += [await asyncio.to_thread(describe_file, path, kind, None)
                  for path, kind in made.files]
        return files, made.counted

    async def _captured(self, event: msg.CaptureFinished, files: list[FileInfo],
                        counted: dict[str, EventCounts]) -> RecordingState:
        """One write: the files, the manifest of the state they make, and the status."""
        def change(state: RecordingState) -> RecordingState:
            events = event.events or _recounted(state.events, counted)
            return lifecycle.captured(state, files, event.duration_seconds, event.frames,
                                      event.tracks, events=events,
                                      publishers=event.publishers or None,
                                      pauses=event.pauses)

        preview = change(await self._store.get(event.recording_id))
        info = await asyncio.to_thread(write_manifest, preview)
        return await self._store.update(event.recording_id,
                                        lambda state: with_manifest(change(state), info))

    async def _keep_room_report(self, event: msg.CaptureFinished) -> None:
        def keep(state: RecordingState) -> RecordingState:
            state.events = dict(event.events) or state.events
            state.publishers = list(event.publishers) or state.publishers
            state.pauses = [p.model_copy() for p in event.pauses] or state.pauses
            return state

        with contextlib.suppress(NotFound):
            await self._store.update(event.recording_id, keep)

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


def _recounted(known: dict[str, EventCounts], counted: dict[str, EventCounts]
               ) -> dict[str, EventCounts] | None:
    """Counts for files the room did not report on (recovered): what events.jsonl holds,
    with the drops the state last heard of."""
    if not counted:
        return None
    merged = {channel: EventCounts(recorded=c.recorded,
                                   dropped=known[channel].dropped if channel in known else 0)
              for channel, c in counted.items()}
    for channel, c in known.items():
        merged.setdefault(channel, EventCounts(recorded=c.recorded, dropped=c.dropped))
    return merged
