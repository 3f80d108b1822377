"""A room: its WHIP publishers and the recordings that capture them.

Everything reaches the room as a command (:mod:`recorder.room.messages`) and leaves it as a
reply or an event, so the room can later run in its own process by swapping the transport.
It never touches Redis: the main process owns state and decides what the events mean.

Frames flow publisher track -> :meth:`RoomSession._on_frame` -> every running capture. A
source is offered to captures when its first frame arrives (a negotiated track that never
delivers is not a track of the recording), in the order the publishers joined.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiortc import RTCIceServer

from recorder.core.errors import (
    InvalidInput,
    MediaError,
    NotFound,
    RecorderError,
    Unavailable,
    Unprocessable,
)
from recorder.core.presets import Layout
from recorder.room.capture_run import (
    CaptureFactory,
    CaptureLike,
    CaptureRun,
    Frame,
    media_capture,
)
from recorder.room.messages import (
    Ack,
    CancelCapture,
    PauseCapture,
    Publish,
    PublishAnswer,
    PublisherLeft,
    ResumeCapture,
    RoomCommand,
    RoomEvent,
    RoomReply,
    StartCapture,
    StopCapture,
    TrackAdded,
    Unpublish,
)
from recorder.rtc.publisher import CONNECT_TIMEOUT_SECONDS, PeerCallbacks, PublisherPeer, Source
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
        self._closed = False

    @property
    def publisher_count(self) -> int:
        return len(self._peers)

    @property
    def idle(self) -> bool:
        """No publishers and no captures: the owner may close the room."""
        return not self._peers and not self._runs and not self._finishing

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
            PeerCallbacks(self._on_source, self._on_frame, self._on_peer_closed),
            connect_timeout=self._config.connect_timeout,
        )
        self._peers[sid] = peer  # holds its slot while candidates are gathered
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
        track = TrackAdded(source.session_id, source.publisher_id, source.kind, source.codec)
        self._tracks[source.source_id] = track
        self._emit(track)
        for run in self._runs.values():
            self._add_source(run, source)

    def _on_frame(self, source: Source, frame: Frame) -> None:
        arrival = time.monotonic()
        failed = []
        for run in self._runs.values():
            run.push(source.source_id, frame, arrival)
            if run.failure is not None:
                failed.append(run)
        for run in failed:
            self._finish(run)

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
        logger.info("room %s: publisher %s left, %d remain", self.room_id, sid,
                    len(self._peers))
        self._emit(PublisherLeft(sid, peer.publisher_id))

    # ---- captures ------------------------------------------------------------------------

    async def _start(self, command: StartCapture) -> None:
        rid = command.recording_id
        if rid in self._runs or rid in self._finishing:
            raise InvalidInput(f"recording {rid} is already capturing in room {self.room_id}")
        if command.layout is not Layout.COMPOSITE:
            raise Unprocessable(f"layout {command.layout} is not supported by room sessions yet")
        directory = Path(command.directory)
        path = directory / command.file_name
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
        run = CaptureRun(rid, directory, capture, self._emit, self._config.progress_interval)
        for peer in self._peers.values():
            for source in peer.sources:
                self._add_source(run, source)
        self._runs[rid] = run
        run.start()
        logger.info("recording %s: capturing room %s to %s (%s, %s), %d sources", rid,
                    self.room_id, path, command.format, command.quality, len(run.tracks))

    def _make_capture(self, rid: str, path: Path, command: StartCapture) -> CaptureLike:
        path.parent.mkdir(parents=True, exist_ok=True)
        return self._config.capture_factory(rid, path, command.format, command.quality)

    def _add_source(self, run: CaptureRun, source: Source) -> None:
        track = self._tracks.get(source.source_id)
        if track is None:
            return
        try:
            run.add_source(source.source_id, source.kind, track)
        except Exception:
            logger.exception("recording %s: source %s refused", run.recording_id,
                             source.source_id)

    def _run(self, recording_id: str) -> CaptureRun:
        run = self._runs.get(recording_id)
        if run is None:
            raise NotFound(f"recording {recording_id} is not capturing in room {self.room_id}")
        return run

    def _control(self, run: CaptureRun, action: str) -> None:
        rid = run.recording_id
        try:
            if action == "pause":
                run.capture.pause(time.monotonic())
            else:
                run.capture.resume(time.monotonic())
        except RecorderError:
            raise
        except Exception as exc:
            raise MediaError(f"recording {rid}: {action} failed: {exc}") from exc
        logger.info("recording %s: %sd", rid, action)

    def _finish(self, run: CaptureRun) -> None:
        """Take the capture off the frame path now; finalise it in the background."""
        rid = run.recording_id
        self._runs.pop(rid, None)
        task = asyncio.create_task(run.finish())
        self._finishing[rid] = task
        task.add_done_callback(lambda _: self._finishing.pop(rid, None))

    async def _cancel(self, command: CancelCapture) -> None:
        """Abort and delete the file; the folder goes too when nothing else is in it."""
        run = self._run(command.recording_id)
        del self._runs[run.recording_id]
        await run.abort()
        with contextlib.suppress(OSError):
            run.directory.rmdir()
