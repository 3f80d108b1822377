"""The node is the source of truth for what it runs: at every heartbeat it checks the store
against its live recordings, its handed-off uploads and the user slots it holds, and writes
back what is missing (docs/operations.md, "When the store fails").

One pass: the epoch (:class:`recorder.state.reassert.StoreReassertion`) says whether the
store lost its data and how long starts wait; then every recording this node runs is
re-asserted in one atomic step each (state never over a newer version, indexes, active and
`processing:` sets, the webhook jobs of status changes the store lost), then the changes made
while the store was away (:mod:`recorder.service.unwritten`), then the recordings it
handed to the upload worker (their state and, when missing from the stream, their job),
then the publisher and watcher slots, and after a loss of data the final states of the
recordings it finished lately (:mod:`recorder.service.finished`). Room-owner keys are
renewed by the cluster's placement at the same beat (:mod:`recorder.service.cluster`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from pathlib import Path

from recorder.core.errors import NotFound
from recorder.core.models import RecordingState, Status
from recorder.service.finished import UPLOADED_MARKER, FinishedStates, read_uploaded_marker
from recorder.service.handoff import upload_waiting
from recorder.service.restore_gate import RestoreGate
from recorder.service.unwritten import UnwrittenChanges
from recorder.state.jobs import UploadQueue
from recorder.state.reassert import StoreReassertion
from recorder.state.store import StateStore

logger = logging.getLogger(__name__)

GATE_HEARTBEATS = 2  # every node re-asserts within one heartbeat; one more for the late ones


class NodeReassertion:
    def __init__(self, node_id: str, store: StateStore, store_side: StoreReassertion,
                 gate: RestoreGate, heartbeat_seconds: float,
                 running: Callable[[], Iterable[RecordingState]],
                 handed_off: dict[str, RecordingState],
                 upload_queue: UploadQueue | None,
                 unwritten: UnwrittenChanges | None = None,
                 written: Callable[[RecordingState], None] = lambda state: None,
                 finished: FinishedStates | None = None) -> None:
        """`running()` is the states of the recordings this node runs (as last written);
        `handed_off` the recordings queued for upload here, by id, which this pass forgets
        once the store shows them finished; `unwritten` the changes made while the store was
        away, written after the re-assertion (`written(state)` after each); `finished` the
        final states of recordings it finished lately, written back after a loss."""
        self._node_id = node_id
        self._store = store
        self._store_side = store_side
        self._gate = gate
        self._gate_seconds = heartbeat_seconds * GATE_HEARTBEATS
        self._running = running
        self._handed_off = handed_off
        self._upload_queue = upload_queue
        self._unwritten = unwritten
        self._written = written
        self._finished = finished or FinishedStates()
        self._finished_due = False  # a loss was noticed: finished states go back once
        self.epoch: str | None = None

    async def run_once(self) -> None:
        """One pass; Unavailable when the store cannot be reached (the next beat retries)."""
        epoch = await self._store_side.epoch(self.epoch, self._gate_seconds)
        self.epoch = epoch.id
        self._gate.close_for(epoch.gate_seconds)
        for state in list(self._running()):
            await self._recording(state)
        if self._unwritten is not None:
            await self._unwritten.write(self._store, self._written)
        await self._uploads()
        await self._store_side.slots(self._store.slots.held())
        if epoch.lost:
            self._finished_due = True
        if self._finished_due:
            for state in self._finished.states():
                await self._recording(state)
            self._finished_due = False

    async def _recording(self, state: RecordingState) -> None:
        holds, lacks = self._store.membership(state)
        webhooks = self._store.written_webhooks.of(state.recording_id)
        done = await self._store_side.recording(state, holds, lacks, webhooks)
        if done.webhooks_queued:
            self._store.written_webhooks.requeued(state.recording_id, done.stored_version)

    async def _uploads(self) -> None:
        if not self._handed_off:
            return
        queued = None if self._upload_queue is None else \
            await self._upload_queue.queued_recordings()
        for recording_id, known in sorted(self._handed_off.items()):
            try:
                current = await self._store.get(recording_id)
            except NotFound:
                current = None
            if current is not None and (current.status is not Status.PROCESSING
                                        or current.node_id != self._node_id):
                self._forget(recording_id)  # uploaded, failed or taken over: not ours now
                if current.node_id == self._node_id:
                    self._finished.keep(current)
                continue
            if current is None:
                final = await asyncio.to_thread(read_uploaded_marker, Path(known.local_path))
                if final is not None:  # uploaded: the completed state its worker left
                    await self._recording(final)
                    self._finished.keep(final)
                    self._forget(recording_id)
                    continue
                if await asyncio.to_thread(_uploaded, known):
                    logger.warning("recording %s: its upload finished but the store lost its "
                                   "state; not written back", recording_id)
                    self._forget(recording_id)
                    continue
            await self._recording(known if current is None else current)
            state = known if current is None else current
            if queued is not None and self._upload_queue is not None \
                    and recording_id not in queued and upload_waiting(state):
                await self._upload_queue.enqueue(recording_id, "reasserted")

    def _forget(self, recording_id: str) -> None:
        self._handed_off.pop(recording_id, None)
        self._store.written_webhooks.forget(recording_id)


def _uploaded(state: RecordingState) -> bool:
    folder = Path(state.local_path)
    return (folder / UPLOADED_MARKER).exists() or not folder.is_dir()
