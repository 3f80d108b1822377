"""A room: its WHIP publishers and the recordings that capture them.

Everything reaches the room as a command (:mod:`recorder.room.messages`) and leaves it as a
reply or an event, so the room can later run in its own process by swapping the transport.
It never touches Redis: the main process owns state and decides what the events mean.

Frames flow publisher track -> :meth:`RoomSession._on_frame` -> every running capture. A
source is offered to captures when its first frame arrives (a negotiated track that never
delivers is not a track of the recording), in the order the publishers joined.

A recording started with a pull source (WHEP, Cloudflare Realtime) records that upstream
only, not the room's WHIP publishers: its :class:`recorder.rtc.pull.Pull` feeds it through
:class:`recorder.room.pull_feed.PullFeed`. While the upstream is broken the capture's
timeline is held, like a pause (:meth:`CaptureRun.hold`). A ``source`` recording's pull
delivers encoded frames, and its capture's keyframe requests go to the pull's live session.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiortc import RTCIceServer

from recorder.core.errors import (
    InvalidInput,
    MediaError,
    NotFound,
    RecorderError,
    SourceFailed,
    Unavailable,
    Unprocessable,
)
from recorder.core.presets import Layout
from recorder.core.tracks import TrackInfo
from recorder.core.urls import AllowList
from recorder.outbound import Outbound
from recorder.room.capture_run import (
    AnyFrame,
    CaptureFactory,
    CaptureLike,
    CaptureRun,
    media_capture,
)
from recorder.room.messages import (
    Ack,
    CancelCapture,
    PauseCapture,
    Publish,
    PublishAnswer,
    PublisherLeft,
    RecordEvent,
    ResumeCapture,
    RoomCommand,
    RoomEvent,
    RoomReply,
    StartCapture,
    StopCapture,
    TrackAdded,
    Unpublish,
)
from recorder.room.pull_feed import PullFeed
from recorder.room.room_events import channel_message, event_log, record_api_event
from recorder.rtc.publisher import CONNECT_TIMEOUT_SECONDS, PeerCallbacks, PublisherPeer, Source
from recorder.rtc.pull import Pull, PullTiming, make_upstream
from recorder.rtc.sdp import check_offer

logger = logging.getLogger(__name__)

PUBLISHER_RETRY_AFTER_SECONDS = 10


@dataclass(frozen=True)
class RoomConfig:
    max_publishers: int  # RECORDER_MAX_PUBLISHERS_PER_ROOM
    ice_servers: list[RTCIceServer]  # aiortc's, built from settings by the caller
    connect_timeout: float = CONNECT_TIMEOUT_SECONDS
    progress_interval: float = 1.0
    capture_factory: CaptureFactory = field(default=media_capture)
    pull_timing: PullTiming = field(default_factory=PullTiming)
    pull_allowed: AllowList = field(default_factory=AllowList)  # RECORDER_PULL_ALLOWED_URLS


class RoomSession:
    def __init__(self, room_id: str, config: RoomConfig, emit: Callable[[RoomEvent], None]) -> None:
        self.room_id = room_id
        self._config = config
        self._emit = emit
        self._peers: dict[str, PublisherPeer] = {}  # session id -> peer, in join order
        self._answered: set[str] = set()
        self._tracks: dict[str, TrackAdded] = {}  # source id -> its event
        self._runs: dict[str, CaptureRun] = {}  # recording id -> running capture
        self._finishing: dict[str, asyncio.Task[None]] = {}
        self._pulls: dict[str, Pull] = {}  # recording id -> the upstream it records
        self._http: aiohttp.ClientSession | None = None  # Cloudflare pulls' signalling
        self._outbound: Outbound | None = None  # WHEP pulls': the users' URLs, checked
        self._closed = False

    @property
    def publisher_count(self) -> int:
        return len(self._peers)

    @property
    def idle(self) -> bool:
        """No publishers and no captures: the owner may close the room."""
        return not self._peers and not self._runs and not self._finishing and not self._pulls

    async def handle(self, command: RoomCommand) -> RoomReply:
        """Apply one command; refusals raise RecorderError subclasses."""
        if self._closed:
            raise Unavailable(f"room {self.room_id} is closing")
        match command:
            case Publish():
                return await self._publish(command)
            case Unpublish():
                await self._peer(command.session_id).close()
            case StartCapture():
                await self._start(command)
            case PauseCapture():
                self._control(self._run(command.recording_id), "pause")
            case ResumeCapture():
                self._control(self._run(command.recording_id), "resume")
            case StopCapture():
                self._finish(self._run(command.recording_id))
            case CancelCapture():
                await self._cancel(command)
            case RecordEvent():
                run = self._run(command.recording_id)
                record_api_event(run, command, run.events.limit)
            case _:
                raise InvalidInput(f"unknown room command {type(command).__name__}")
        return Ack()

    async def close(self) -> None:
        """Stop (not abort) every capture, wait for the files, then close the peers."""
        self._closed = True
        for run in list(self._runs.values()):
            self._finish(run)
        while self._finishing:
            await asyncio.gather(*self._finishing.values(), return_exceptions=True)
        peers = list(self._peers.values())
        await asyncio.gather(*(peer.close() for peer in peers), return_exceptions=True)
        self._peers.clear()
        if self._http is not None:
            await self._http.close()
            self._http = None
        if self._outbound is not None:
            await self._outbound.close()
            self._outbound = None

    # ---- publishers ----------------------------------------------------------------------

    async def _publish(self, command: Publish) -> PublishAnswer:
        sid = command.session_id
        if sid in self._peers:
            raise InvalidInput(f"publisher session {sid} already exists")
        check_offer(command.offer_sdp)
        if len(self._peers) >= self._config.max_publishers:
            raise Unavailable(
                f"room {self.room_id} has its {self._config.max_publishers} publishers",
                retry_after=PUBLISHER_RETRY_AFTER_SECONDS,
            )
        peer = PublisherPeer(
            sid, command.publisher_id, command.role, self._config.ice_servers,
            PeerCallbacks(self._on_source, self._on_frame, self._on_peer_closed,
                          self._on_message),
            connect_timeout=self._config.connect_timeout,
        )
        self._peers[sid] = peer  # holds its slot while candidates are gathered
        peer.set_demand(*self._demand())
        try:
            answer = await peer.answer(command.offer_sdp)
        except BaseException:
            self._peers.pop(sid, None)
            raise
        if self._peers.get(sid) is not peer:  # closed while answering
            raise Unavailable(f"room {self.room_id} is closing")
        self._answered.add(sid)
        logger.info("room %s: publisher %s (%s, %s) joined, %d now", self.room_id, sid,
                    command.publisher_id, command.role, len(self._peers))
        return PublishAnswer(answer)

    def _peer(self, session_id: str) -> PublisherPeer:
        peer = self._peers.get(session_id)
        if peer is None or session_id not in self._answered:
            raise NotFound(f"no publisher session {session_id} in room {self.room_id}")
        return peer

    def _on_source(self, source: Source) -> None:
        track = TrackAdded(source.session_id,
                           TrackInfo(source.publisher_id, source.kind, source.codec))
        self._tracks[source.source_id] = track
        self._emit(track)
        for run in self._runs.values():
            if run.recording_id not in self._pulls:
                self._add_source(run, source)

    def _on_frame(self, source: Source, frame: AnyFrame) -> None:
        arrival = time.monotonic()
        failed = []
        for run in self._runs.values():
            if run.recording_id in self._pulls:
                continue
            run.push(source.source_id, frame, arrival)
            if run.failure is not None:
                failed.append(run)
        for run in failed:
            self._finish(run)

    def _on_message(self, peer: PublisherPeer, label: str, message: str | bytes | None
                    ) -> None:
        runs = [r for r in self._runs.values() if r.recording_id not in self._pulls]
        channel_message(runs, peer.session_id, peer.publisher_id, peer.role, label, message)

    def _on_peer_closed(self, peer: PublisherPeer) -> None:
        sid = peer.session_id
        if self._peers.get(sid) is peer:
            del self._peers[sid]
        if sid not in self._answered:
            return
        self._answered.discard(sid)
        for source in peer.sources:
            self._tracks.pop(source.source_id, None)
            for run in self._runs.values():
                run.remove_source(source.source_id)
        for run in self._runs.values():
            run.publisher_left(sid)
        logger.info("room %s: publisher %s left, %d remain", self.room_id, sid,
                    len(self._peers))
        self._emit(PublisherLeft(sid, peer.publisher_id))

    # ---- captures ------------------------------------------------------------------------

    async def _start(self, command: StartCapture) -> None:
        rid = command.recording_id
        if rid in self._runs or rid in self._finishing:
            raise InvalidInput(f"recording {rid} is already capturing in room {self.room_id}")
        directory = Path(command.directory)
        # tracks: the capture names one file per publisher inside the folder
        path = directory / command.file_name if command.layout is Layout.COMPOSITE else directory
        try:
            capture = await asyncio.to_thread(self._make_capture, rid, path, command)
        except RecorderError:
            raise
        except ValueError as exc:  # the capture refuses the spec (e.g. a preset it lacks)
            raise Unprocessable(f"capture refused: {exc}") from exc
        except Exception as exc:
            raise MediaError(f"capture could not start: {type(exc).__name__}: {exc}") from exc
        if self._closed:  # closed while the capture was being built: keep nothing
            await asyncio.to_thread(capture.abort)
            raise Unavailable(f"room {self.room_id} is closing")
        keyframes = (self._request_keyframe if command.source is None
                     else functools.partial(self._pull_keyframe, rid))
        run = CaptureRun(rid, directory, capture, self._emit, self._config.progress_interval,
                         keyframes, event_log(command, capture))
        if command.source is not None:
            await self._start_pull(run, command)
        else:
            for peer in self._peers.values():
                if peer.channels:
                    run.publisher_seen(peer.session_id, peer.publisher_id, peer.role)
                for source in peer.sources:
                    self._add_source(run, source)
            self._runs[rid] = run
            self._update_demand()
        run.start()
        logger.info("recording %s: capturing room %s to %s (%s, %s), %d sources", rid,
                    self.room_id, path, command.format, command.quality, len(run.tracks))

    def _make_capture(self, rid: str, path: Path, command: StartCapture) -> CaptureLike:
        Path(command.directory).mkdir(parents=True, exist_ok=True)
        return self._config.capture_factory(rid, path, command.format, command.quality,
                                            command.layout, command.as_received)

    def _add_source(self, run: CaptureRun, source: Source) -> None:
        track = self._tracks.get(source.source_id)
        if track is None:
            return
        try:
            run.add_source(source.source_id, source.kind, track, source.role)
        except Exception:
            logger.exception("recording %s: source %s refused", run.recording_id,
                             source.source_id)

    def _demand(self) -> tuple[bool, bool]:
        """(decoded, encoded): what the publishers' tracks must deliver to the captures.
        With no capture, encoded only: nothing is decoded for nobody, and the frames still
        announce the tracks (a decoder started later asks for a keyframe)."""
        runs = [r for r in self._runs.values() if r.recording_id not in self._pulls]
        if not runs:
            return False, True
        encoded = [r.encoded is not None for r in runs]
        return not all(encoded), any(encoded)

    def _update_demand(self) -> None:
        decoded, encoded = self._demand()
        for peer in self._peers.values():
            peer.set_demand(decoded, encoded)

    def _request_keyframe(self, source_id: str) -> None:
        for peer in self._peers.values():
            peer.request_keyframe(source_id)

    def _run(self, recording_id: str) -> CaptureRun:
        run = self._runs.get(recording_id)
        if run is None:
            raise NotFound(f"recording {recording_id} is not capturing in room {self.room_id}")
        return run

    def _control(self, run: CaptureRun, action: str) -> None:
        rid = run.recording_id
        try:
            if action == "pause":
                run.hold("pause", time.monotonic())
            else:
                run.release("pause", time.monotonic())
        except RecorderError:
            raise
        except Exception as exc:
            raise MediaError(f"recording {rid}: {action} failed: {exc}") from exc
        logger.info("recording %s: %sd", rid, action)

    def _finish(self, run: CaptureRun) -> None:
        """Take the capture off the frame path now; finalise it in the background."""
        rid = run.recording_id
        self._runs.pop(rid, None)
        self._update_demand()
        task = asyncio.create_task(self._end_pull_then(rid, run.finish))
        self._finishing[rid] = task
        task.add_done_callback(lambda _: self._finishing.pop(rid, None))

    async def _cancel(self, command: CancelCapture) -> None:
        """Abort and delete the file; the folder goes too when nothing else is in it."""
        run = self._run(command.recording_id)
        del self._runs[run.recording_id]
        self._update_demand()
        await self._end_pull_then(run.recording_id, run.abort)
        with contextlib.suppress(OSError):
            run.directory.rmdir()

    # ---- pulled recordings ---------------------------------------------------------------

    async def _start_pull(self, run: CaptureRun, command: StartCapture) -> None:
        """Connect the upstream before the start is answered; on failure keep nothing."""
        assert command.source is not None
        rid = run.recording_id
        if self._http is None:
            self._http = aiohttp.ClientSession()
        if self._outbound is None:
            self._outbound = Outbound(self._config.pull_allowed)
        feed = PullFeed(rid, self._runs.get, self._emit, self._finish)
        upstream = make_upstream(command.source, self._http, self._outbound, rid)
        pull = Pull(rid, upstream, self._config.ice_servers, feed, self._config.pull_timing,
                    encoded=run.encoded is not None)
        self._pulls[rid] = pull
        self._runs[rid] = run
        try:
            await pull.start()
            if self._closed:
                raise Unavailable(f"room {self.room_id} is closing")
        except BaseException as exc:
            self._runs.pop(rid, None)
            self._pulls.pop(rid, None)
            await asyncio.shield(pull.close())
            await asyncio.shield(asyncio.to_thread(run.capture.abort))
            with contextlib.suppress(OSError):
                run.directory.rmdir()
            if isinstance(exc, SourceFailed):
                logger.warning("recording %s: source failed: %s", rid, exc.detail)
            raise
        logger.info("recording %s: pulling from %s", rid, pull.upstream.label)

    def _pull_keyframe(self, rid: str, source_id: str) -> None:
        pull = self._pulls.get(rid)
        if pull is not None:
            pull.request_keyframe(source_id)

    async def _end_pull_then(self, rid: str,
                             then: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Stop a pulled recording's upstream (DELETE, tracks/close) before its capture ends."""
        pull = self._pulls.pop(rid, None)
        if pull is not None:
            await pull.close()
        await then()
