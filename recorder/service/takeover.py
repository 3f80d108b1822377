"""Orphan takeover: recordings of a node that never came back are finished by another one
(docs/operations.md).

Every heartbeat each node looks at ``active`` and every other node's ``processing:`` set.
A recording whose node has had no heartbeat for RECORDER_ORPHAN_TIMEOUT_SECONDS (counted
from when this node first saw the heartbeat missing) is adopted through
:class:`~recorder.service.recovery.OrphanRecovery` when this node can read its folder (a
shared disk), which is the restart path with the node id moved in the same compare-and-set.
A node that cannot read the folder fails it, naming the lost node and the path, but only
after twice the timeout, so that on mixed storage a node that can read the files wins.
The compare-and-set on `node_id` is the lock: whichever node writes first owns it, the
others' writes are refused and they move on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from recorder.core.errors import RecorderError, Unavailable
from recorder.core.lifecycle import ACTIVE, TERMINAL
from recorder.core.models import RecordingState, Status, UploadState, UploadTarget
from recorder.service.recovery import OrphanRecovery
from recorder.state.jobs import UploadQueue
from recorder.state.orphans import OrphanIndex
from recorder.state.store import StateStore

logger = logging.getLogger(__name__)

UNREADABLE_FACTOR = 2  # a node that cannot read the files waits this many timeouts


def readable(folder: str) -> bool:
    """Whether this node sees the recording's folder (a disk it shares with the lost node)."""
    path = Path(folder)
    return path.is_dir() and os.access(path, os.R_OK | os.X_OK)


class OrphanTakeover:
    def __init__(self, node_id: str, store: StateStore, index: OrphanIndex,
                 recovery: OrphanRecovery, orphan_timeout: float,
                 upload_queue: Callable[[str], UploadQueue] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._node_id = node_id
        self._store = store
        self._index = index
        self._recovery = recovery
        self._timeout = orphan_timeout
        self._upload_queue = upload_queue
        self._clock = clock
        self._missing_since: dict[str, float] = {}  # node id -> when first seen gone

    async def run_once(self) -> list[str]:
        """Look once; returns the ids this node adopted or failed."""
        active = await self._store.active_ids()
        processing = await self._index.processing_by_node()
        candidates = set(active)
        for node_id, ids in processing.items():
            if node_id != self._node_id:
                candidates |= ids
        states = await self._index.states(sorted(candidates))
        await self._index.reconcile_active({i: s for i, s in states.items() if i in active})
        live = {n.node_id for n in await self._store.nodes()}
        now = self._clock()
        for node_id in list(self._missing_since):
            if node_id in live:
                del self._missing_since[node_id]
        handled: list[str] = []
        for recording_id, state in sorted(states.items()):
            if state is None or not self._orphaned(state, live):
                continue
            since = self._missing_since.setdefault(state.node_id, now)
            if await self._handle(state, now - since):
                handled.append(recording_id)
        return handled

    def _orphaned(self, state: RecordingState, live: set[str]) -> bool:
        if state.node_id == self._node_id or state.node_id in live:
            return False
        if state.status in TERMINAL:
            return False
        return state.status in ACTIVE or state.status is Status.PROCESSING

    async def _handle(self, state: RecordingState, missing_for: float) -> bool:
        recording_id, lost = state.recording_id, state.node_id
        can_read = await asyncio.to_thread(readable, state.local_path)
        if missing_for < self._timeout * (1 if can_read else UNREADABLE_FACTOR):
            return False
        try:
            if can_read:
                adopted = await self._recovery.adopt(state, lost)
                finished = state.status is Status.PROCESSING and bool(state.files)
                if finished and _upload_waiting(adopted):  # recovery queues the others
                    await self._queue(adopted)
            else:
                await self._recovery.fail_lost(
                    state, lost, f"node {lost} lost: {state.local_path} is not readable "
                                 f"from node {self._node_id}")
        except Unavailable:
            raise
        except RecorderError as exc:  # another node was faster, or the node came back
            logger.info("recording %s: not taken over: %s", recording_id, exc.detail)
            return False
        return True

    async def _queue(self, state: RecordingState) -> None:
        if self._upload_queue is None:
            return
        await self._upload_queue(self._node_id).enqueue(state.recording_id, "takeover")


def _upload_waiting(state: RecordingState) -> bool:
    return (bool(state.files) and state.upload is not None
            and state.upload.target is not UploadTarget.NONE
            and state.upload.state in (UploadState.QUEUED, UploadState.UPLOADING))
