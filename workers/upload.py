"""One upload job: store every file of a recording at its target, then complete it.

Order, per file: upload (resuming) and verify, record where it is in the state, only then
delete the local copy (unless RECORDER_KEEP_LOCAL_AFTER_UPLOAD). When every file is
verified the folder gets its ``.uploaded`` marker and one compare-and-set write sets
``upload.state = uploaded`` and completes the recording (one `recording_completed` event).

Every step can be interrupted and run again: a file recorded as stored is verified at the
target instead of being sent again (its local copy may be gone already), S3 keys are
deterministic and tus uploads resume, and the final write is a lifecycle transition that
only one run can make. A job that finds its recording no longer `processing` (finished by an
earlier run, cancelled, expired) has nothing to do.

Given up (a permanent error, or a transient one that outlasted the retry policy): the
target releases what it holds, the recording becomes `failed` with ``error: "upload: ..."``
and ``upload.state = failed``, and its files stay where they are for an admin retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio as aioredis

from recorder.core import lifecycle
from recorder.core.errors import InvalidTransition, NotFound, Unavailable
from recorder.core.lifecycle import Action
from recorder.core.manifest import MANIFEST_KIND, with_manifest
from recorder.core.models import MEDIA_KINDS, FileInfo, RecordingState, Status, UploadState
from recorder.service.finished import write_uploaded_marker
from recorder.service.manifests import write_final_manifest, write_manifest
from recorder.state.jobs import UploadJob
from recorder.state.keys import KeySpace
from recorder.state.store import Change, StateStore
from recorder.state.totals import UPLOAD_FAILURES, UPLOADED_BYTES, ClusterTotals
from workers.errors import PermanentError, UploadError
from workers.target import FileJob, Stored, Target, Targets
from workers.upload_record import UploadRecord

logger = logging.getLogger(__name__)

PROGRESS_WRITE_SECONDS = 5.0  # how often `upload.bytes_sent` is written while sending


class NothingToDo(Exception):
    """The recording is not waiting for an upload (raised inside a state change)."""


@dataclass
class _Progress:
    done: int = 0  # bytes of earlier files
    current: int = 0  # bytes of the file being sent
    written: int = -1

    @property
    def total(self) -> int:
        return self.done + self.current


class Uploader:
    def __init__(self, store: StateStore, redis: aioredis.Redis, keys: KeySpace,
                 targets: Targets, *, record_ttl_seconds: int, keep_local: bool) -> None:
        self._store = store
        self._redis = redis
        self._keys = keys
        self._targets = targets
        self._record_ttl = record_ttl_seconds
        self._keep_local = keep_local
        self._totals = ClusterTotals(redis, keys)

    async def needs_upload(self, recording_id: str) -> bool:
        try:
            state = await self._store.get(recording_id)
        except NotFound:
            return False
        return _waiting(state)

    async def run(self, job: UploadJob) -> None:
        """Do the job; the caller holds the recording's lock and acknowledges afterwards."""
        rid = job.recording_id
        try:
            state = await self._store.update(rid, _start_attempt)
        except (NothingToDo, NotFound, InvalidTransition):
            logger.info("recording %s: no upload to do (job %s)", rid, job.reason)
            return
        assert state.upload is not None
        target_name = state.upload.target.value
        target = self._targets.get(target_name)
        logger.info("recording %s: uploading %d file(s) to %s (attempt %d)", rid,
                    len(state.files), target_name, state.upload.attempts)
        if target is None:
            await self._give_up(rid, target_name,
                                f"target {target_name} is not configured on this worker")
            return
        progress = _Progress()
        writer = asyncio.create_task(self._write_progress(rid, progress))
        try:
            await self._store_all(state, target_name, target, progress)
        except NothingToDo:
            logger.info("recording %s: no longer waiting for its upload; stopped", rid)
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    async def _store_all(self, state: RecordingState, target_name: str, target: Target,
                         progress: _Progress) -> None:
        rid = state.recording_id
        results: list[Stored] = []
        current: FileJob | None = None
        try:
            for info in _manifest_last(state.files):
                if info.kind == MANIFEST_KIND:  # rewritten with where the others went
                    state, info = await self._fresh_manifest(state)
                current = self._file_job(state, info, progress)
                stored = await self._store_file(current, target_name, target)
                results.append(stored)
                progress.done += info.size
                progress.current = 0
                state = await self._store.update(rid, _record_file(info.name, stored,
                                                                   progress.total))
                if stored.uploaded and not self._keep_local:
                    await asyncio.to_thread(current.path.unlink, True)
        except UploadError as exc:
            if current is not None:
                await target.abandon(current)
            await self._give_up(rid, target_name, exc.message)
            return
        media = [r for r, f in zip(results, _manifest_last(state.files), strict=False)
                 if f.kind in MEDIA_KINDS]
        marked = bool(media) and all(r.uploaded for r in media)
        if marked:  # sidecars left local go with the folder
            await asyncio.to_thread(write_uploaded_marker, Path(state.local_path))
        try:
            state = await self._store.update(rid, _complete)
        except InvalidTransition:
            logger.info("recording %s: completed meanwhile by another run", rid)
            return
        if marked:  # the node writes it back from here if the store loses it
            with contextlib.suppress(OSError):
                await asyncio.to_thread(write_uploaded_marker, Path(state.local_path), state)
        logger.info("recording %s: upload %s, %d bytes; completed", rid,
                    state.upload.state.value if state.upload else "?", progress.total)

    async def _fresh_manifest(self, state: RecordingState) -> tuple[RecordingState, FileInfo]:
        """The manifest written again for the recording as it completes (every other file
        stored by now, each saying where), and described in the state."""
        info = await asyncio.to_thread(write_manifest, _complete(state.model_copy(deep=True)))

        def listed(current: RecordingState) -> RecordingState:
            if not _waiting(current):
                raise NothingToDo(current.recording_id)
            return with_manifest(current, info)

        return await self._store.update(state.recording_id, listed), info

    def _file_job(self, state: RecordingState, info: FileInfo, progress: _Progress) -> FileJob:
        rid = state.recording_id

        def on_progress(sent: int) -> None:
            progress.current = sent

        record = UploadRecord(self._redis, self._keys, rid, info.name, self._record_ttl)
        return FileJob(recording_id=rid, room_id=state.room_id,
                       path=Path(state.local_path) / info.name, info=info, record=record,
                       on_progress=on_progress, duration_seconds=info.duration_seconds)

    async def _store_file(self, job: FileJob, target_name: str, target: Target) -> Stored:
        recorded = job.info.s3_key is not None or job.info.stream_id is not None or (
            job.info.playback is not None and job.info.playback.state == "skipped")
        exists = await asyncio.to_thread(job.path.is_file)
        if recorded or not exists:
            stored = await target.stored(job)
            if stored is not None:
                logger.info("recording %s: %s already stored, verified at the target",
                            job.recording_id, job.info.name)
                return stored
            if not exists:
                raise _missing(job)
        stored = await target.store(job)
        if stored.uploaded:
            await self._totals.add(UPLOADED_BYTES, target_name, job.info.size)
        return stored

    async def _write_progress(self, recording_id: str, progress: _Progress) -> None:
        """Record `upload.bytes_sent` every few seconds while sending (no event: the status
        does not change), not on every part."""
        while True:
            await asyncio.sleep(PROGRESS_WRITE_SECONDS)
            if progress.total == progress.written:
                continue
            progress.written = progress.total
            try:
                await self._store.update(recording_id, _bytes_sent(progress.total))
            except (NothingToDo, NotFound, InvalidTransition):
                return
            except Unavailable as exc:
                logger.warning("recording %s: progress not written: %s", recording_id,
                               exc.detail)

    async def _give_up(self, recording_id: str, target_name: str, message: str) -> None:
        error = f"upload: {message}"
        try:
            failed = await self._store.update(recording_id, _failed(error))
        except (NotFound, InvalidTransition):
            logger.warning("recording %s: upload given up but the state moved on: %s",
                           recording_id, error)
            return
        await write_final_manifest(self._store, failed)  # says failed, and where files are
        await self._totals.add(UPLOAD_FAILURES, target_name)
        logger.warning("recording %s: failed: %s (files kept)", recording_id, error)


def _missing(job: FileJob) -> UploadError:
    return PermanentError(f"{job.info.name} is neither on disk nor stored at the target")


# ---- pure state changes (they may run several times: compare-and-set retries) ----------

def _waiting(state: RecordingState) -> bool:
    return (state.status is Status.PROCESSING and state.upload is not None
            and state.upload.state in (UploadState.QUEUED, UploadState.UPLOADING)
            and bool(state.files))


def _start_attempt(state: RecordingState) -> RecordingState:
    if not _waiting(state):
        raise NothingToDo(state.recording_id)
    assert state.upload is not None
    state.upload.state = UploadState.UPLOADING
    state.upload.attempts += 1
    state.upload.error = None
    return state


def _record_file(name: str, stored: Stored, sent: int) -> Change:
    def change(state: RecordingState) -> RecordingState:
        if not _waiting(state):
            raise NothingToDo(state.recording_id)
        for info in state.files:
            if info.name == name:
                info.s3_key = stored.s3_key
                info.stream_id = stored.stream_id
                info.playback = stored.playback
        assert state.upload is not None
        state.upload.bytes_sent = sent
        return state
    return change


def _bytes_sent(sent: int) -> Change:
    def change(state: RecordingState) -> RecordingState:
        if not _waiting(state):
            raise NothingToDo(state.recording_id)
        assert state.upload is not None
        state.upload.bytes_sent = sent
        return state
    return change


def _manifest_last(files: list[FileInfo]) -> list[FileInfo]:
    return ([f for f in files if f.kind != MANIFEST_KIND]
            + [f for f in files if f.kind == MANIFEST_KIND])


def _complete(state: RecordingState) -> RecordingState:
    assert state.upload is not None
    media = state.media_files
    main = media[0] if media else None
    if main is not None:
        state.s3_key = main.s3_key
        state.stream_id = main.stream_id
        state.playback = main.playback
    sent_any = any(f.s3_key or f.stream_id for f in state.files)
    state.upload.state = UploadState.UPLOADED if sent_any else UploadState.SKIPPED
    state.upload.error = None
    return lifecycle.apply(state, Action.COMPLETE, lifecycle.now())


def _failed(error: str) -> Change:
    def change(state: RecordingState) -> RecordingState:
        if state.upload is not None:
            state.upload.error = error
        return lifecycle.apply(state, Action.UPLOAD_FAILED, lifecycle.now(), error=error)
    return change
