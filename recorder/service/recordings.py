"""Recording orchestration on one node.

The service turns API calls and room events into lifecycle writes: it validates and admits
starts, writes every status change through the store's compare-and-set (the pure
`lifecycle.apply` decides), tells room sessions what to do, and runs the timers (no media,
max duration, max pause: :mod:`recorder.service.timer_loop`). The order is always "write
the state, then act": a refused transition changes nothing anywhere. What runs here is in
the rooms' records (:mod:`recorder.service.rooms`); how finished files complete is
:mod:`recorder.service.completion`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from recorder.background import BackgroundTasks
from recorder.config.settings import Settings
from recorder.core import lifecycle, timers
from recorder.core.access import Caller
from recorder.core.errors import (
    Draining,
    Forbidden,
    InvalidTransition,
    NotFound,
    RecorderError,
    SourceFailed,
    Unavailable,
)
from recorder.core.events import ChatEventBody, DataEventBody, from_api
from recorder.core.lifecycle import ACTIVE, Action
from recorder.core.models import (
    RecordingState,
    StartRequest,
    Status,
    StopReason,
    Transcode,
)
from recorder.core.pulls import PullSource
from recorder.room import messages as msg
from recorder.service.admission import new_recording
from recorder.service.budget import CpuBudget
from recorder.service.caps import PublisherSlots, RoomCap
from recorder.service.completion import Completion
from recorder.service.deferred import as_received_capture
from recorder.service.finished import FinishedStates
from recorder.service.handoff import UploadHandoff
from recorder.service.manifests import write_final_manifest
from recorder.service.publishers import Publishers
from recorder.service.publog import PublisherLog
from recorder.service.queries import RecordingQueries
from recorder.service.restore_gate import RestoreGate
from recorder.service.room_hosts import RoomHosts
from recorder.service.room_record import RunningRecording
from recorder.service.rooms import RoomRegistry
from recorder.service.timed_events import EventCountsWriter, check_recording
from recorder.service.timer_loop import TimerLoop
from recorder.service.unwritten import UnwrittenChanges
from recorder.state.jobs import UploadQueue
from recorder.state.store import StateStore

logger = logging.getLogger(__name__)

COMPLETE_RETRY_SECONDS = 1.0  # a finished capture waits this long between tries at the store
STORE_WAIT_SECONDS = 1.0  # a timer's or room event's write waits this long, then acts anyway


class RecordingService(RecordingQueries):
    """The commands; the reads are :class:`RecordingQueries`'."""

    def __init__(self, settings: Settings, store: StateStore,
                 upload_queue: Callable[[str], UploadQueue] | None = None) -> None:
        """`upload_queue(node_id)` is a node's upload stream; without it only target `none`."""
        super().__init__(settings, store)
        self._uploads = None if upload_queue is None else UploadHandoff(store, upload_queue)
        self._events: asyncio.Queue[tuple[str, msg.RoomEvent]] = asyncio.Queue()
        self._rooms = RoomRegistry(settings, lambda room, ev: self._events.put_nowait((room, ev)))
        self._timers = TimerLoop(self._rooms, timers.TimerLimits(
            settings.no_media_timeout_seconds, settings.max_pause_seconds), self._stop_on_timer,
            self._fail)
        self.unwritten = UnwrittenChanges()  # made while the store was away
        self.finished = FinishedStates()  # written back if the store loses them
        self._cpu = CpuBudget(settings.cpu, self._rooms)
        self._room_cap = RoomCap(settings.max_rooms, self._rooms.hosted)
        self._publishers = Publishers(
            self._rooms, self._room_cap,
            PublisherSlots(store.slots, settings.node, settings.max_publishers_per_user),
            self._cpu.refuses_publisher)
        self._tasks = BackgroundTasks()
        self._publisher_log = PublisherLog(store.history)
        self._completion = Completion(settings.node, store, self._uploads,
                                      settings.deferred_concurrency, self._fail)
        self._counts = EventCountsWriter(store)
        self.restore_gate = RestoreGate()  # closed while a lost store is being written back

    # ---- lifecycle of the service itself --------------------------------------------------

    async def run(self) -> None:
        """Consume room events and run the timers until cancelled."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._consume_events())
            group.create_task(self._timers.run())
            group.create_task(self._completion.recover_at_start(self.runs))
            self._rooms.hosts.start()  # the pool's workers warm up meanwhile

    async def close(self) -> None:
        """Stop every capture (files finalised) and close all peers. Safe to call twice."""
        await self._completion.deferred.stop()
        await self._rooms.close()
        await self._publishers.close()
        await self._tasks.wait()

    async def drain(self, deadline_seconds: float) -> None:
        """Refuse new work, stop active recordings (`shutdown`) and wait for their files."""
        self.draining = True
        await self._completion.deferred.stop()  # they run again after the restart
        for running in self._rooms.recordings():
            if running.state.status in ACTIVE and not running.stopping:
                try:
                    await self._stop(running.state.recording_id, StopReason.SHUTDOWN)
                except RecorderError as exc:
                    logger.warning("recording %s: drain: %s", running.state.recording_id,
                                   exc.detail)
        waits = [asyncio.create_task(running.done.wait())
                 for running in self._rooms.recordings()]
        if waits:
            _, pending = await asyncio.wait(waits, timeout=deadline_seconds)
            for task in pending:
                task.cancel()
        if left := self._rooms.recordings():
            logger.warning("drain deadline passed with %d recording(s) unfinished", len(left))

    @property
    def active_count(self) -> int:
        return len(self._cpu.active())

    # ---- what runs here (room ownership, takeover, metrics) -------------------------------

    def running_states(self) -> list[RecordingState]:
        """The states of the recordings this node runs, as the store last had them (a
        change made while it was away is written after they are re-asserted)."""
        states = {state.recording_id: state for state in self._completion.deferred.states()}
        states.update((running.state.recording_id, running.state)
                      for running in self._rooms.recordings())
        states.update(self.unwritten.bases())
        return list(states.values())

    def known_here(self, recording_id: str) -> RecordingState | None:
        running = self._rooms.recording(recording_id)
        return None if running is None else running.state.model_copy(deep=True)

    def written(self, state: RecordingState) -> None:
        """A change made while the store was away is written now."""
        running = self._rooms.recording(state.recording_id)
        if running is None:
            self.finished.keep(state)  # (kept only when final)
        elif not self.unwritten.waiting(state.recording_id):
            running.state = state

    @property
    def handed_off(self) -> dict[str, RecordingState]:
        """Recordings this node queued for upload, until the store shows them finished."""
        return {} if self._uploads is None else self._uploads.handed_off

    def runs(self, recording_id: str) -> bool:
        """Whether this node runs the recording (admitted, capturing or finishing)."""
        return self._rooms.recording(recording_id) is not None

    @property
    def room_hosts(self) -> RoomHosts:
        """Where this node's rooms run (room workers, for the heartbeat and /metrics)."""
        return self._rooms.hosts

    @property
    def publisher_count(self) -> int:
        """WHIP publishers the rooms of this node answered and hold."""
        return sum(self._rooms.publishers_per_room().values())

    def has_session(self, session_id: str) -> bool:
        return self._rooms.publisher(session_id) is not None

    def rooms_in_use(self) -> set[str]:
        """Rooms with a publisher or a recording on this node."""
        return self._rooms.hosted()

    def frame_totals(self) -> tuple[int, int]:
        """Frames received and dropped by every recording this node ran since it started:
        the finished ones' final counts and the running ones' latest (for /metrics)."""
        return self._rooms.frame_totals()

    async def complete_recovered(self, event: msg.CaptureFinished) -> None:
        """Describe and complete files recovered from another node's orphan (takeover)."""
        await self._completion.complete(event)

    @property
    def cpu_used(self) -> float:
        """Cores this node's active recordings cost (and starts being admitted reserve)."""
        return self._cpu.used

    # ---- API --------------------------------------------------------------------------------

    async def start(self, caller: Caller, room_id: str, request: StartRequest) -> RecordingState:
        caller.check_room(room_id)
        if self.draining:
            raise Draining("this node is draining: no new recordings")
        self.restore_gate.check("start")
        state, pull = new_recording(self._settings, caller, room_id, request,
                                    uploads=self._uploads is not None)
        with self._room_cap.opening(room_id) as rooms_refused:
            return await self._admit_and_start(caller, state, pull, rooms_refused)

    async def _admit_and_start(self, caller: Caller, state: RecordingState,
                               pull: PullSource | None,
                               rooms_refused: int | None) -> RecordingState:
        room_id = state.room_id
        with self._cpu.reserving(state) as cpu_refused:
            state = await self._store.admit(
                state, self._settings.limits, cpu_refused=cpu_refused,
                starts_per_minute=0 if caller.is_admin
                else self._settings.starts_per_user_per_minute,
                rooms_refused=rooms_refused)
        # the no-media clock starts once the capture runs (a room process may be starting)
        running = RunningRecording(state)
        self._rooms.add_recording(running)
        if pull is None:  # the room's publishers so far; later tracks come as TrackAdded
            self._tasks.spawn(self._publisher_log.joined([state.recording_id],
                                                         self._rooms.tracks(room_id)))
        directory = Path(state.local_path)
        command = msg.StartCapture(
            recording_id=state.recording_id, directory=str(directory),
            file_name=state.file_name, format=state.format, quality=state.quality,
            layout=state.layout, source=pull, folder=str(directory),
            max_events_per_second=self._settings.max_events_per_second,
        )
        if state.transcode is Transcode.DEFERRED:  # passthrough now, the preset after stop
            command = as_received_capture(command)
        try:
            await asyncio.to_thread(Path(command.directory).mkdir, parents=True, exist_ok=True)
            await self._rooms.send(room_id, command)
        except SourceFailed as exc:  # the upstream refused: 502, stored as failed
            await self._fail(state.recording_id, f"source: {exc.detail}")
            raise SourceFailed(exc.detail, exc.upstream_status, state.recording_id) from exc
        except (OSError, RecorderError) as exc:
            await self._fail(state.recording_id, f"capture: {exc}")
            raise Unavailable(f"recording {state.recording_id} could not start: {exc}") from exc
        running.admitted_at = asyncio.get_running_loop().time()
        logger.info("recording %s: admitted in room %s for %s (%s/%s)", state.recording_id,
                    room_id, caller.user_id, state.format, state.quality)
        return state

    async def stop(self, caller: Caller, room_id: str, recording_id: str) -> RecordingState:
        await self._owned(caller, room_id, recording_id)
        return await self._stop(recording_id, StopReason.REQUESTED)

    async def pause(self, caller: Caller, room_id: str, recording_id: str) -> RecordingState:
        await self._owned(caller, room_id, recording_id)
        state = await self._transition(recording_id, Action.PAUSE)
        await self._rooms.send(room_id, msg.PauseCapture(recording_id))
        return state

    async def resume(self, caller: Caller, room_id: str, recording_id: str) -> RecordingState:
        await self._owned(caller, room_id, recording_id)
        state = await self._transition(recording_id, Action.RESUME)
        await self._rooms.send(room_id, msg.ResumeCapture(recording_id))
        return state

    async def cancel(self, caller: Caller, room_id: str, recording_id: str) -> RecordingState:
        await self._owned(caller, room_id, recording_id)
        state = await self._transition(recording_id, Action.CANCEL)
        await self._discard(state)
        return state

    async def record_event(self, caller: Caller, room_id: str, recording_id: str,
                           body: ChatEventBody | DataEventBody) -> None:
        """An event for a recording that records now (409 otherwise; 429 `event_rate`)."""
        check_recording(await self._owned(caller, room_id, recording_id))
        await self._rooms.send(room_id, msg.RecordEvent(recording_id,
                                                        from_api(body, caller.user_id)))

    async def retry_upload(self, caller: Caller, recording_id: str) -> RecordingState:
        """Admin: send a recording whose upload was given up back to `processing`."""
        if not caller.is_admin:
            raise Forbidden("only admins may retry an upload")
        await self._store.get(recording_id)  # 404 before anything else
        state = await self._transition(recording_id, Action.RETRY_UPLOAD)
        logger.info("recording %s: upload retry requested by %s", recording_id, caller.user_id)
        if self._uploads is not None:
            try:
                await self._uploads.enqueue(state, "retry")
            except Unavailable:
                self._tasks.spawn(self._uploads.queue(state, "retry"))
        return state

    async def publish(
        self, caller: Caller, room_id: str, role: str, offer_sdp: str
    ) -> tuple[str, str]:
        caller.check_room(room_id)
        if self.draining:
            raise Draining("this node is draining: no new publishers")
        self.restore_gate.check("WHIP publish")
        return await self._publishers.publish(caller, room_id, role, offer_sdp)

    async def unpublish(self, caller: Caller, room_id: str, session_id: str) -> None:
        await self._publishers.unpublish(caller, room_id, session_id)

    # ---- helpers ----------------------------------------------------------------------------

    async def _transition(
        self,
        recording_id: str,
        action: Action,
        *,
        stop_reason: StopReason | None = None,
        error: str | None = None,
        at: datetime | None = None,
        may_wait: bool = False,
    ) -> RecordingState:
        """Write the change; with `may_wait` (the node's own timers and events, never a
        client's request) a store that cannot be reached does not hold the recording up:
        the change acts here now and is written when the store returns, in order."""
        when = at or lifecycle.now()

        def change(s: RecordingState) -> RecordingState:
            return lifecycle.apply(s, action, when, stop_reason=stop_reason, error=error)

        running = self._rooms.recording(recording_id)
        if running is not None and self.unwritten.waiting(recording_id):
            if not may_wait:
                raise Unavailable(f"recording {recording_id}: changes made while the store "
                                  "was away are still being written")
            return self._wait_for_store(running, change)
        try:
            if may_wait and running is not None:  # a hung store counts as unreachable
                state = await asyncio.wait_for(self._store.update(recording_id, change),
                                               STORE_WAIT_SECONDS)
            else:
                state = await self._store.update(recording_id, change)
        except NotFound:
            if running is None:
                raise
            if not may_wait:  # the store lost it: it is being written back
                raise Unavailable(f"recording {recording_id}: the store lost its state; "
                                  "this node is writing it back", retry_after=1) from None
            return self._wait_for_store(running, change)
        except (Unavailable, TimeoutError):
            if not may_wait or running is None:
                raise
            # a write that timed out may still land: its replay is then refused by the
            # lifecycle (InvalidTransition) and dropped, so it is written once
            return self._wait_for_store(running, change)
        if running is not None:
            running.state = state
        return state

    def _wait_for_store(self, running: RunningRecording,
                        change: Callable[[RecordingState], RecordingState]) -> RecordingState:
        """Act on `change` now, write it when the store returns (InvalidTransition when the
        recording's known state does not allow it: nothing is kept)."""
        after = change(running.state.model_copy(deep=True))
        self.unwritten.add(running.state, change)  # the first change's base is kept
        logger.warning("recording %s: store unreachable: %s -> %s now, written when it "
                       "returns", after.recording_id, running.state.status.value,
                       after.status.value)
        running.state = after
        return after

    async def _stop_on_timer(self, recording_id: str, reason: StopReason) -> RecordingState:
        return await self._stop(recording_id, reason, may_wait=True)

    async def _stop(self, recording_id: str, reason: StopReason, *,
                    may_wait: bool = False) -> RecordingState:
        state = await self._transition(recording_id, Action.STOP, stop_reason=reason,
                                       may_wait=may_wait)
        if state.status is Status.CANCELLED:  # stopped before any media: nothing to keep
            await self._discard(state)
        else:
            running = self._rooms.recording(recording_id)
            if running is not None:
                running.stopping = True
            await self._rooms.send(state.room_id, msg.StopCapture(recording_id))
        logger.info("recording %s: stopped (%s) -> %s", recording_id, reason.value,
                    state.status.value)
        return state

    async def _fail(self, recording_id: str, error: str) -> None:
        try:
            state = await self._transition(recording_id, Action.FAIL, error=error,
                                           may_wait=True)
        except InvalidTransition:
            return
        except NotFound:  # its state expired or was removed: only the capture is left
            running = self._rooms.recording(recording_id)
            if running is not None:
                await self._discard(running.state, keep_files=True)
            return
        logger.warning("recording %s: failed: %s", recording_id, error)
        await self._discard(state, keep_files=True)

    async def _discard(self, state: RecordingState, keep_files: bool = False) -> None:
        """Drop the capture of a recording that ends without a usable file."""
        with contextlib.suppress(NotFound):
            await self._rooms.send(state.room_id, msg.CancelCapture(state.recording_id))
        if not keep_files:
            await asyncio.to_thread(shutil.rmtree, state.local_path, True)
        self._forget(state.recording_id)
        self.finished.keep(state)
        await write_final_manifest(self._store, state)

    def _forget(self, recording_id: str) -> None:
        self._counts.forget(recording_id)
        if recording_id not in self.handed_off:  # else kept until its upload is done
            self._store.written_webhooks.forget(recording_id)
        running = self._rooms.forget(recording_id)
        if running is not None:
            running.done.set()

    # ---- room events ------------------------------------------------------------------------

    async def _consume_events(self) -> None:
        while True:
            room_id, event = await self._events.get()
            try:
                await self._on_event(room_id, event)
            except RecorderError as exc:
                logger.warning("room %s: event %s not applied: %s", room_id,
                               type(event).__name__, exc.detail)

    async def _on_event(self, room_id: str, event: msg.RoomEvent) -> None:
        """Act on a room event (the room's record has seen it already)."""
        if isinstance(event, msg.MediaStarted):
            with contextlib.suppress(InvalidTransition):  # stopped or cancelled meanwhile
                await self._transition(event.recording_id, Action.MEDIA_STARTED, at=event.at,
                                       may_wait=True)
        elif isinstance(event, msg.CaptureProgress):
            await self._counts.progress(event)
        elif isinstance(event, msg.CaptureFinished):
            self._tasks.spawn(self._finish(event))
        elif isinstance(event, msg.CaptureFailed):
            await self._fail(event.recording_id, f"capture: {event.error}")
        elif isinstance(event, msg.PublisherLeft):
            if await self._publishers.ended(event.session_id) is not None:
                self._tasks.spawn(self._publisher_log.left(self._active_in(room_id),
                                                           event.publisher_id))
        elif isinstance(event, msg.TrackAdded):  # a new one: the record drops repeats
            logger.info("room %s: publisher %s sends %s %s", room_id,
                        event.track.publisher_id, event.track.kind, event.track.codec)
            self._tasks.spawn(self._publisher_log.joined(self._active_in(room_id),
                                                         [event.track]))
        elif isinstance(event, msg.RoomLost):
            self._tasks.spawn(self._recover_lost(room_id, event))

    def _active_in(self, room_id: str) -> list[str]:
        return [state.recording_id for state in self._cpu.active() if state.room_id == room_id]

    async def _recover_lost(self, room_id: str, event: msg.RoomLost) -> None:
        try:
            await self._completion.recover_lost(room_id, event)
        finally:
            for recording_id in event.recording_ids:
                self._forget(recording_id)

    async def _finish(self, event: msg.CaptureFinished) -> None:
        """The capture closed its files: describe them in the state and complete it, once
        what was changed while the store was away is written (then in order), and again
        while the store cannot be reached."""
        try:
            while True:
                await self.unwritten.settled(event.recording_id)
                try:
                    await self._completion.complete(event)
                    with contextlib.suppress(NotFound):
                        self.finished.keep(await self._store.get(event.recording_id))
                    return
                except Unavailable as exc:
                    logger.warning("recording %s: not completed yet: %s", event.recording_id,
                                   exc.detail)
                    await asyncio.sleep(COMPLETE_RETRY_SECONDS)
        finally:
            self._forget(event.recording_id)
