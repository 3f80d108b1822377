"""Finding this node's orphaned recordings after a crash, and finishing them.

A node killed in the middle of recordings leaves their states `pending`, `recording` or
`paused` in the store (and, after a forced drain, `processing` without any file described),
with files on its disk that have no trailer. No other process will ever finish them, so
the restarted node (same node id, same storage) does: files are made playable with
:func:`recorder.media.repair.recover_file`, the state stops with `stop_reason: recovered`
and `recovered: true` in one compare-and-set, and the files go through the service's
ordinary describe/complete/upload path, so a recovered recording is announced and uploaded
exactly like any other. A recording that never had media has nothing to keep: it fails.

:meth:`OrphanRecovery.adopt` runs the same path for a recording of a node that never came
back (orphan takeover): one compare-and-set moves the state's `node_id` to this node, so from
then on it is this node's orphan and no other node touches it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from recorder.core import lifecycle
from recorder.core.errors import (
    InvalidTransition,
    MediaError,
    NotFound,
    RecorderError,
    Unavailable,
)
from recorder.core.frames import FrameCounts
from recorder.core.lifecycle import Action
from recorder.core.models import RecordingState, Status, StopReason, Transcode
from recorder.core.presets import CODECS, Layout
from recorder.media.repair import RecoveredFile, recover_file
from recorder.media.transcode_job import AS_RECEIVED_FOLDER
from recorder.room import messages as msg
from recorder.service.manifests import write_final_manifest
from recorder.state.store import StateStore

logger = logging.getLogger(__name__)

NO_MEDIA_ERROR = "node restarted before media"

Complete = Callable[[msg.CaptureFinished], Awaitable[None]]


class OrphanRecovery:
    """One pass over the store for the recordings `node_id` left behind.

    `complete` is the service's describe/complete/queue step for finished files; `runs_here`
    tells recordings this process already runs (admitted since the start) from orphans.
    """

    def __init__(self, node_id: str, store: StateStore, complete: Complete,
                 runs_here: Callable[[str], bool]) -> None:
        self._node_id = node_id
        self._store = store
        self._complete = complete
        self._runs_here = runs_here

    async def run(self) -> int:
        """Recover every orphan; returns how many were found. Store errors propagate
        (Unavailable): the caller tries again, and a second pass is harmless."""
        candidates = await self._store.active_ids() | await self._store.processing_ids(
            self._node_id)
        found = 0
        for recording_id in sorted(candidates):
            if self._runs_here(recording_id):
                continue
            try:
                state = await self._store.get(recording_id)
            except NotFound:
                continue
            if state.node_id != self._node_id:
                continue
            if state.status is Status.PROCESSING and state.files:
                continue  # finished; its upload is resumed through `processing:`
            found += 1
            try:
                await self._recover(state)
            except Unavailable:
                raise
            except RecorderError as exc:  # changed meanwhile (cancelled, expired...): leave it
                logger.warning("recording %s: not recovered: %s", recording_id, exc.detail)
        if found:
            logger.info("crash recovery: %d orphaned recording(s) of node %s", found,
                        self._node_id)
        return found

    async def adopt(self, state: RecordingState, lost_node: str) -> RecordingState:
        """Take over a recording of `lost_node`, whose files this node can read.

        The move of `node_id` is a compare-and-set that only succeeds while the state still
        names `lost_node` (InvalidTransition otherwise: another node was faster, or the node
        came back). A finished recording (`processing` with files) only moves: the caller
        queues its upload here. Anything else is recovered as after a restart.
        """
        moved = await self._store.update(
            state.recording_id, lambda s: _moved(s, lost_node, self._node_id))
        logger.warning("recording %s: taken over from lost node %s (%s)", state.recording_id,
                       lost_node, moved.status.value)
        if moved.status is Status.PROCESSING and moved.files:
            return moved
        await self._recover(moved, f"node {lost_node} died before media")
        return await self._store.get(state.recording_id)

    async def fail_lost(self, state: RecordingState, lost_node: str, error: str) -> None:
        """Fail a recording of `lost_node` whose files this node cannot reach."""
        when = lifecycle.now()

        def failed(current: RecordingState) -> RecordingState:
            if current.node_id != lost_node:
                raise InvalidTransition(current.status.value, f"fail for node {lost_node}")
            return lifecycle.apply(current, Action.FAIL, when, error=error)

        await self._store.update(state.recording_id, failed)
        logger.warning("recording %s: orphan of lost node %s failed: %s", state.recording_id,
                       lost_node, error)

    async def recover_lost(self, recording_id: str, no_media: str) -> None:
        """Finish a recording whose room process died under this running node, exactly as
        if a restart had found it; one that had no media fails with `no_media`."""
        state = await self._store.get(recording_id)
        if state.status is Status.PROCESSING and state.files:
            return  # its file was finished before the process died
        await self._recover(state, no_media)

    async def _recover(self, state: RecordingState, no_media: str = NO_MEDIA_ERROR) -> None:
        recording_id = state.recording_id
        if state.status is Status.PENDING or (state.status in lifecycle.ACTIVE
                                              and state.started_at is None):
            await self._fail(state, no_media)
            return
        paths = _media_files(state)
        written = max((p.stat().st_mtime for p in paths), default=0.0)  # recovery rewrites
        recovered: list[RecoveredFile] = []
        errors: list[str] = []
        for path in paths:
            try:
                recovered.append(await asyncio.to_thread(recover_file, path))
            except (MediaError, OSError) as exc:
                errors.append(f"{path.name}: {exc}")
        if not recovered:
            reason = "; ".join(errors) or f"no file in {state.local_path}"
            await self._fail(state, f"recovery: {reason}")
            return
        if state.status is not Status.PROCESSING:
            at = _last_write(written, state)
            state = await self._store.update(recording_id, lambda s: _stopped(s, at))
        else:  # a forced drain left it stopped without files: only mark what was done
            state = await self._store.update(recording_id, _marked)
        duration = max(f.duration_seconds for f in recovered)
        logger.info("recording %s: recovered after a restart: %d file(s), %.2f s%s",
                    recording_id, len(recovered), duration,
                    f" ({len(errors)} unrecoverable: {'; '.join(errors)})" if errors else "")
        kind = "composite" if state.layout is Layout.COMPOSITE else "track"
        frames = FrameCounts(received=state.frames.received, written=state.frames.written,
                                 dropped=state.frames.dropped)
        await self._complete(msg.CaptureFinished(
            recording_id=recording_id,
            files=[msg.FileResult(str(f.path), kind, f.duration_seconds) for f in recovered],
            duration_seconds=duration, frames=frames,
        ))

    async def _fail(self, state: RecordingState, error: str) -> None:
        when = lifecycle.now()
        failed = await self._store.update(
            state.recording_id, lambda s: lifecycle.apply(s, Action.FAIL, when, error=error))
        logger.warning("recording %s: orphan failed: %s", state.recording_id, error)
        await write_final_manifest(self._store, failed)


def _stopped(state: RecordingState, at: datetime) -> RecordingState:
    new = lifecycle.apply(state, Action.STOP, at, stop_reason=StopReason.RECOVERED)
    new.recovered = True
    return new


def _moved(state: RecordingState, lost_node: str, node_id: str) -> RecordingState:
    if state.node_id != lost_node or state.status in lifecycle.TERMINAL:
        raise InvalidTransition(state.status.value, f"take over from node {lost_node}")
    new = state.model_copy(deep=True)
    new.node_id = node_id
    return new


def _marked(state: RecordingState) -> RecordingState:
    if state.status is not Status.PROCESSING:
        raise InvalidTransition(state.status.value, "recover")
    new = state.model_copy(deep=True)
    new.recovered = True
    return new


def _media_files(state: RecordingState) -> list[Path]:
    """Composite: the recording's file. Tracks: every file of the folder (one per
    publisher and kind, named as they came, which the state never learnt)."""
    folder = Path(state.local_path)
    if state.transcode is Transcode.DEFERRED:  # its live files; the transcode follows
        return sorted(p for p in (folder / AS_RECEIVED_FOLDER).glob("*.mkv") if p.is_file())
    if state.layout is Layout.COMPOSITE and state.file_name:
        path = folder / state.file_name
        return [path] if path.is_file() else []
    extension = CODECS[state.format].extension
    return sorted(p for p in folder.glob(f"*.{extension}")
                  if p.is_file() and not p.name.startswith("."))


def _last_write(mtime: float, state: RecordingState) -> datetime:
    """When media last reached the disk: the stop time a crash never wrote."""
    at = datetime.fromtimestamp(mtime, UTC)
    earliest = max(t for t in (state.started_at, state.paused_at, state.resumed_at)
                   if t is not None)
    return max(at, earliest)
