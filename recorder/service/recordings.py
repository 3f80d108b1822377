"""Recording orchestration on one node.

The service turns API calls and room events into lifecycle writes: it validates and admits
starts, writes every status change through the store's compare-and-set (the pure
`lifecycle.apply` decides), tells room sessions what to do, and runs the timers (no media,
max duration, max pause). The order is always "write the state, then act": a refused
transition changes nothing anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
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
from recorder.core.frames import FrameCounts
from recorder.core.lifecycle import ACTIVE, Action
from recorder.core.models import (
    Frames,
    RecordingState,
    StartRequest,
    Status,
    StopReason,
    TrackInfo,
    Transcode,
)
from recorder.core.paging import ListFilter, Page, PageRequest
from recorder.core.pulls import PullSource
from recorder.room import messages as msg
from recorder.room.process import describe_exit
from recorder.service.admission import new_recording
from recorder.service.budget import node_cost, publisher_cost, recording_cost
from recorder.service.caps import PublisherSlots, RoomCap
from recorder.service.deferred import DeferredTranscodes, is_live_capture, live_capture
from recorder.service.handoff import UploadHandoff, describe_file, upload_waiting
from recorder.service.publishers import Publishers
from recorder.service.recovery import OrphanRecovery
from recorder.service.rooms import RoomRegistry
from recorder.state.jobs import UploadQueue
from recorder.state.store import StateStore

logger = logging.getLogger(__name__)

TIMER_PERIOD_SECONDS = 0.25
MIN_FREE_DISK_BYTES = 512 * 1024 * 1024
RECOVERY_RETRY_SECONDS = 5.0  # pause before start-up recovery tries again while the store is down


@dataclass
class LiveRecording:
    """What this node knows of one of its recordings beyond the stored state."""

    state: RecordingState
    admitted_at: float  # loop time
    idle_seconds: float = 0.0
    frames: FrameCounts = field(default_factory=FrameCounts)
    stopping: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)  # set when this node lets go


class RecordingService:
    def __init__(self, settings: Settings, store: StateStore,
                 upload_queue: Callable[[str], UploadQueue] | None = None) -> None:
        """`upload_queue(node_id)` is a node's upload stream; without it only target `none`."""
        self._settings = settings
        self._store = store
        self._uploads = None if upload_queue is None else UploadHandoff(store, upload_queue)
        self._events: asyncio.Queue[tuple[str, msg.RoomEvent]] = asyncio.Queue()
        self._rooms = RoomRegistry(settings, lambda room, ev: self._events.put_nowait((room, ev)))
        self._live: dict[str, LiveRecording] = {}
        self._timer_limits = timers.TimerLimits(settings.no_media_timeout_seconds,
                                                settings.max_pause_seconds)
        self._finished_frames = (0, 0)  # received, dropped by recordings no longer live
        self._room_cap = RoomCap(settings.max_rooms, self._rooms.hosted)
        self._publishers = Publishers(
            self._rooms, self._room_cap,
            PublisherSlots(store.slots, settings.node, settings.max_publishers_per_user),
            self._publisher_refused_for_cpu)
        self._reserved: dict[str, float] = {}  # cores of starts being admitted
        self._tasks = BackgroundTasks()
        self._deferred = DeferredTranscodes(settings.deferred_concurrency,
                                            self._describe_and_complete, self._fail)
        self.draining = False

    # ---- lifecycle of the service itself --------------------------------------------------

    async def run(self) -> None:
        """Consume room events and run the timers until cancelled."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._consume_events())
            group.create_task(self._run_timers())
            group.create_task(self._recover_then_requeue())

    async def close(self) -> None:
        """Stop every capture (files finalised) and close all peers. Safe to call twice."""
        await self._deferred.stop()
        await self._rooms.close()
        await self._publishers.close()
        await self._tasks.wait()

    async def drain(self, deadline_seconds: float) -> None:
        """Refuse new work, stop active recordings (`shutdown`) and wait for their files."""
        self.draining = True
        await self._deferred.stop()  # they run again after the restart (docs/operations.md)
        for recording_id, live in list(self._live.items()):
            if live.state.status in ACTIVE and not live.stopping:
                try:
                    await self._stop(recording_id, StopReason.SHUTDOWN)
                except RecorderError as exc:
                    logger.warning("recording %s: drain: %s", recording_id, exc.detail)
        waits = [asyncio.create_task(live.done.wait()) for live in self._live.values()]
        if waits:
            _, pending = await asyncio.wait(waits, timeout=deadline_seconds)
            for task in pending:
                task.cancel()
        if self._live:
            logger.warning("drain deadline passed with %d recording(s) unfinished",
                           len(self._live))

    @property
    def active_count(self) -> int:
        return sum(1 for live in self._live.values() if live.state.status in ACTIVE)

    # ---- what runs here (room ownership, takeover, metrics) -------------------------------

    def is_live(self, recording_id: str) -> bool:
        return recording_id in self._live

    def has_session(self, session_id: str) -> bool:
        return session_id in self._publishers

    def live_rooms(self) -> set[str]:
        """Rooms with a publisher or a recording on this node."""
        return self._publishers.rooms() | {live.state.room_id for live in self._live.values()}

    def frame_totals(self) -> tuple[int, int]:
        """Frames received and dropped by every recording this node ran since it started:
        the finished ones' final counts and the running ones' latest (for /metrics)."""
        received, dropped = self._finished_frames
        for live in self._live.values():
            received += live.frames.received
            dropped += live.frames.dropped
        return received, dropped

    async def complete_recovered(self, event: msg.CaptureFinished) -> None:
        """Describe and complete files recovered from another node's orphan (takeover)."""
        await self._describe_and_complete(event)

    @property
    def cpu_used(self) -> float:
        """Cores this node's live recordings cost (and starts being admitted reserve)."""
        return node_cost(self._active_states(), self._publishers.per_room()) + sum(
            self._reserved.values())

    def _active_states(self) -> list[RecordingState]:
        return [live.state for live in self._live.values() if live.state.status in ACTIVE]

    def _publisher_refused_for_cpu(self, room_id: str) -> float | None:
        more = publisher_cost(self._active_states(), room_id, self._publishers.per_room())
        capacity = self._settings.cpu
        return capacity if more and self.cpu_used + more > capacity + 1e-9 else None

    # ---- API --------------------------------------------------------------------------------

    async def start(self, caller: Caller, room_id: str, request: StartRequest) -> RecordingState:
        caller.check_room(room_id)
        if self.draining:
            raise Draining("this node is draining: no new recordings")
        state, pull = new_recording(self._settings, caller, room_id, request,
                                    uploads=self._uploads is not None)
        with self._room_cap.opening(room_id) as rooms_refused:
            return await self._admit_and_start(caller, state, pull, rooms_refused)

    async def _admit_and_start(self, caller: Caller, state: RecordingState,
                               pull: PullSource | None,
                               rooms_refused: int | None) -> RecordingState:
        room_id = state.room_id
        need = recording_cost(state, self._publishers.per_room())
        capacity = self._settings.cpu
        refused = capacity if self.cpu_used + need > capacity + 1e-9 else None
        self._reserved[state.recording_id] = need
        try:
            state = await self._store.admit(
                state, self._settings.limits, cpu_refused=refused,
                starts_per_minute=0 if caller.is_admin
                else self._settings.starts_per_user_per_minute,
                rooms_refused=rooms_refused)
        finally:
            del self._reserved[state.recording_id]
        # the no-media clock starts once the capture runs (a room process may be starting)
        live = LiveRecording(state, math.inf)
        self._live[state.recording_id] = live
        directory = Path(state.local_path)
        command = msg.StartCapture(
            recording_id=state.recording_id, directory=str(directory),
            file_name=state.file_name, format=state.format, quality=state.quality,
            layout=state.layout, source=pull,
        )
        if state.transcode is Transcode.DEFERRED:  # passthrough now, the preset after stop
            command = live_capture(command)
        try:
            await asyncio.to_thread(Path(command.directory).mkdir, parents=True, exist_ok=True)
            await self._rooms.send(room_id, command)
        except SourceFailed as exc:  # the upstream refused: 502, stored as failed
            await self._fail(state.recording_id, f"source: {exc.detail}")
            raise SourceFailed(exc.detail, exc.upstream_status, state.recording_id) from exc
        except (OSError, RecorderError) as exc:
            await self._fail(state.recording_id, f"capture: {exc}")
            raise Unavailable(f"recording {state.recording_id} could not start: {exc}") from exc
        live.admitted_at = asyncio.get_running_loop().time()
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

    async def status(self, caller: Caller, room_id: str, recording_id: str) -> RecordingState:
        return await self._owned(caller, room_id, recording_id)

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

    async def list_room(self, caller: Caller, room_id: str,
                        page: PageRequest) -> Page[RecordingState]:
        caller.check_room(room_id)
        only = ListFilter(user_id=None if caller.is_admin else caller.user_id)
        return await self._store.list_room(room_id, page, only)

    async def list_user(self, caller: Caller, user_id: str | None, status: Status | None,
                        page: PageRequest) -> Page[RecordingState]:
        user = user_id or caller.user_id
        caller.check_owner(user)
        only = ListFilter(status=None if status is None else status.value,
                          rooms=caller.visible_rooms)
        return await self._store.list_user(user, page, only)

    async def file_path(self, caller: Caller, recording_id: str, name: str | None) -> Path:
        state = await self._store.get(recording_id)
        caller.check_recording(recording_id, state.room_id, state.user_id)
        names = {f.name for f in state.files}
        wanted = name or state.file_name
        if wanted not in names:
            raise NotFound(f"recording {recording_id} has no finished file {wanted!r}")
        path = Path(state.local_path) / wanted
        if not path.is_file():
            raise NotFound(f"file {wanted!r} of recording {recording_id} is not on this node")
        return path

    async def publish(
        self, caller: Caller, room_id: str, role: str, offer_sdp: str
    ) -> tuple[str, str]:
        caller.check_room(room_id)
        if self.draining:
            raise Draining("this node is draining: no new publishers")
        return await self._publishers.publish(caller, room_id, role, offer_sdp)

    async def unpublish(self, caller: Caller, room_id: str, session_id: str) -> None:
        await self._publishers.unpublish(caller, room_id, session_id)

    async def readiness(self) -> list[str]:
        reasons: list[str] = []
        try:
            await self._store.ping()
        except Unavailable as exc:
            reasons.append(exc.detail)
        storage = self._settings.storage
        if shutil.disk_usage(storage).free < MIN_FREE_DISK_BYTES:
            reasons.append(f"disk: less than {MIN_FREE_DISK_BYTES >> 20} MiB free in {storage}")
        if self.draining:
            reasons.append("draining")
        return reasons

    # ---- helpers ----------------------------------------------------------------------------

    async def _owned(self, caller: Caller, room_id: str, recording_id: str) -> RecordingState:
        caller.check_room(room_id)
        state = await self._store.get(recording_id)
        caller.check_recording(recording_id, state.room_id, state.user_id)  # 403 before 404
        if state.room_id != room_id:
            raise NotFound(f"recording {recording_id} is not in room {room_id}")
        return state

    async def _transition(
        self,
        recording_id: str,
        action: Action,
        *,
        stop_reason: StopReason | None = None,
        error: str | None = None,
        at: datetime | None = None,
    ) -> RecordingState:
        when = at or lifecycle.now()
        state = await self._store.update(
            recording_id,
            lambda s: lifecycle.apply(s, action, when, stop_reason=stop_reason, error=error),
        )
        live = self._live.get(recording_id)
        if live is not None:
            live.state = state
        return state

    async def _stop(self, recording_id: str, reason: StopReason) -> RecordingState:
        state = await self._transition(recording_id, Action.STOP, stop_reason=reason)
        if state.status is Status.CANCELLED:  # stopped before any media: nothing to keep
            await self._discard(state)
        else:
            live = self._live.get(recording_id)
            if live is not None:
                live.stopping = True
            await self._rooms.send(state.room_id, msg.StopCapture(recording_id))
        logger.info("recording %s: stopped (%s) -> %s", recording_id, reason.value,
                    state.status.value)
        return state

    async def _fail(self, recording_id: str, error: str) -> None:
        try:
            state = await self._transition(recording_id, Action.FAIL, error=error)
        except InvalidTransition:
            return
        except NotFound:  # its state expired or was removed: only the capture is left
            live = self._live.get(recording_id)
            if live is not None:
                await self._discard(live.state, keep_files=True)
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

    def _forget(self, recording_id: str) -> None:
        live = self._live.pop(recording_id, None)
        if live is not None:
            received, dropped = self._finished_frames
            self._finished_frames = (received + live.frames.received,
                                     dropped + live.frames.dropped)
            live.done.set()

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
        if isinstance(event, msg.MediaStarted):
            with contextlib.suppress(InvalidTransition):  # stopped or cancelled meanwhile
                await self._transition(event.recording_id, Action.MEDIA_STARTED, at=event.at)
        elif isinstance(event, msg.CaptureProgress):
            live = self._live.get(event.recording_id)
            if live is not None:
                live.idle_seconds = event.idle_seconds
                live.frames = event.frames
        elif isinstance(event, msg.CaptureFinished):
            live = self._live.get(event.recording_id)
            if live is not None:
                live.frames = event.frames  # the final counts
            self._tasks.spawn(self._finish(event))
        elif isinstance(event, msg.CaptureFailed):
            await self._fail(event.recording_id, f"capture: {event.error}")
        elif isinstance(event, msg.PublisherLeft):
            await self._publishers.ended(event.session_id)
        elif isinstance(event, msg.TrackAdded):
            logger.info("room %s: publisher %s sends %s %s", room_id, event.publisher_id,
                        event.kind, event.codec)
        elif isinstance(event, msg.RoomLost):
            await self._publishers.room_lost(room_id)
            self._tasks.spawn(self._recover_lost(room_id, event))


    async def _recover_lost(self, room_id: str, event: msg.RoomLost) -> None:
        """A room process died: its recordings end as crash recovery ends them (docs/operations.md),
        files recovered, `recovered` set; nothing else on the node is touched."""
        cause = f"room process ended ({describe_exit(event.exitcode)}) before media"
        recovery = OrphanRecovery(self._settings.node, self._store, self._describe_and_complete,
                                  lambda recording_id: False)
        for recording_id in event.recording_ids:
            logger.warning("recording %s: room %s process ended (%s): recovering",
                           recording_id, room_id, describe_exit(event.exitcode))
            try:
                await recovery.recover_lost(recording_id, cause)
            except RecorderError as exc:
                logger.warning("recording %s: not recovered: %s", recording_id, exc.detail)
            finally:
                self._forget(recording_id)

    async def _finish(self, event: msg.CaptureFinished) -> None:
        """The capture closed its files: describe them in the state and complete it."""
        try:
            await self._describe_and_complete(event)
        finally:
            self._forget(event.recording_id)

    async def _describe_and_complete(self, event: msg.CaptureFinished) -> None:
        recording_id = event.recording_id
        if is_live_capture(event):  # a deferred recording's sources: transcode them first
            try:
                await self._deferred.submit(await self._store.get(recording_id), event)
            except OSError as exc:
                await self._fail(recording_id, f"transcode: {exc}")
            return
        try:
            files = [await asyncio.to_thread(describe_file, Path(f.path), f.kind,
                                             f.duration_seconds, f.offset_seconds,
                                             f.clock_ppm)
                     for f in event.files]
        except OSError as exc:
            await self._fail(recording_id, f"file: {exc}")
            return
        tracks = [TrackInfo(publisher_id=t.publisher_id, kind=t.kind, codec=t.codec)
                  for t in event.tracks]
        frames = Frames(received=event.frames.received, written=event.frames.written,
                        dropped=event.frames.dropped)
        try:
            state = await self._store.update(recording_id, lambda state: lifecycle.captured(
                state, files, event.duration_seconds, frames, tracks))
        except InvalidTransition:
            return
        logger.info("recording %s: %s, %s bytes, %.2f s", recording_id, state.status.value,
                    state.file_size_bytes, state.duration_seconds or 0.0)
        if (self._uploads is not None and state.status is Status.PROCESSING
                and upload_waiting(state)):
            await self._uploads.queue(state, "finished")

    # ---- uploads ----------------------------------------------------------------------------

    async def _recover_then_requeue(self) -> None:
        """At start-up: finish what a crash of this node left (docs/operations.md), then resume its
        uploads; in this order, so a recovered recording is queued once."""
        recovery = OrphanRecovery(self._settings.node, self._store, self._describe_and_complete,
                                  lambda recording_id: recording_id in self._live
                                  or self._deferred.owns(recording_id))
        while True:
            try:
                await self._resume_deferred()
                await recovery.run()
                break
            except Unavailable as exc:
                logger.warning("orphaned recordings not recovered yet: %s", exc.detail)
                await asyncio.sleep(RECOVERY_RETRY_SECONDS)
        if self._uploads is not None:
            await self._uploads.requeue_missing(self._settings.node)

    async def _resume_deferred(self) -> None:
        """At start-up: deferred transcodes a drain or crash interrupted run again."""
        states = []
        for recording_id in sorted(await self._store.processing_ids(self._settings.node)):
            with contextlib.suppress(NotFound):
                states.append(await self._store.get(recording_id))
        await self._deferred.resume(states)

    # ---- timers -----------------------------------------------------------------------------

    async def _run_timers(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(TIMER_PERIOD_SECONDS)
            for recording_id, live in list(self._live.items()):
                if live.stopping:
                    continue
                try:
                    await self._check_timers(recording_id, live, loop.time())
                except RecorderError as exc:
                    logger.warning("recording %s: timer: %s", recording_id, exc.detail)
            await self._rooms.close_idle()

    async def _check_timers(self, recording_id: str, live: LiveRecording, now: float) -> None:
        reached = timers.due(live.state, self._timer_limits, lifecycle.now(),
                             waited_seconds=now - live.admitted_at,
                             idle_seconds=live.idle_seconds)
        if isinstance(reached, timers.Fail):
            await self._fail(recording_id, reached.error)
        elif isinstance(reached, timers.Stop):
            await self._stop(recording_id, reached.reason)

