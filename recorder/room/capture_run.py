"""One recording running inside a room: the capture, its sources, and what it reports.

The room session routes frames; this module owns the rest of a recording's life in the room:
which sources the capture has, the one ``MediaStarted``, the progress heartbeat the main
process uses for its no-media and duration limits, and the blocking finalisation that must
stay off the event loop (a muxer flush or an encoder drain can take seconds).

The capture is reached through :class:`CaptureLike`, the subset of
``recorder.media.capture.Capture`` used here, so the room can be exercised without encoders.
A capture that also has :class:`EncodedCaptureLike`'s methods (``source`` quality) is fed
encoded frames instead of decoded ones, and may ask the room for keyframes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

import av

from recorder.core.events import Incoming
from recorder.core.frames import FrameCounts
from recorder.core.models import PauseSpan
from recorder.core.presets import Format, Layout, Quality
from recorder.core.tracks import PublisherSpan, TrackInfo
from recorder.media.encoded import EncodedFrame
from recorder.media.sources import CAMERA, Publisher
from recorder.room.event_log import EventLog, Outcome
from recorder.room.messages import (
    CaptureFailed,
    CaptureFinished,
    CaptureProgress,
    FileResult,
    MediaStarted,
    RoomEvent,
    TrackAdded,
)

logger = logging.getLogger(__name__)

PAUSE = "pause"  # the hold of a user's pause (an upstream gap holds as "upstream")

Frame = av.AudioFrame | av.VideoFrame
AnyFrame = Frame | EncodedFrame


class CountsLike(Protocol):
    @property
    def received(self) -> int: ...
    @property
    def written(self) -> int: ...
    @property
    def dropped(self) -> int: ...


class FileLike(Protocol):
    @property
    def path(self) -> Path: ...
    @property
    def kind(self) -> str: ...
    @property
    def duration_seconds(self) -> float: ...
    @property
    def offset_seconds(self) -> float: ...
    @property
    def clock_ppm(self) -> float | None: ...


class ResultLike(Protocol):
    @property
    def path(self) -> Path: ...
    @property
    def duration_seconds(self) -> float: ...
    @property
    def frames(self) -> CountsLike: ...
    @property
    def files(self) -> Sequence[FileLike]: ...


class CaptureLike(Protocol):
    def add_source(self, source_id: str, kind: str,
                   publisher: Publisher | None = None) -> None: ...
    def remove_source(self, source_id: str) -> None: ...
    def push(self, source_id: str, frame: Frame, arrival: float) -> bool: ...
    def pause(self, at: float) -> None: ...
    def resume(self, at: float) -> None: ...
    def stop(self) -> ResultLike: ...
    def abort(self) -> None: ...
    @property
    def frames(self) -> CountsLike: ...
    @property
    def media_seconds(self) -> float: ...
    @property
    def last_frame_at(self) -> float | None: ...


@runtime_checkable
class EncodedCaptureLike(Protocol):
    """What a capture of encoded frames adds to CaptureLike."""

    def push_encoded(self, source_id: str, frame: EncodedFrame, arrival: float) -> bool: ...
    def on_keyframe_needed(self, request: Callable[[str], None]) -> None: ...


CaptureFactory = Callable[[str, Path, Format, Quality, Layout, bool], CaptureLike]
"""(recording_id, path, format, quality, layout, as_received) -> a capture, built in a worker
thread. ``path`` is the composite's file, or with ``tracks`` the folder of the per-publisher
files; ``as_received``: see :class:`recorder.room.messages.StartCapture`."""


def media_capture(recording_id: str, path: Path, fmt: Format, quality: Quality,
                  layout: Layout = Layout.COMPOSITE, as_received: bool = False) -> CaptureLike:
    """The real capture pipeline (imported late: the media stack is heavy)."""
    from recorder.media.capture import Capture, CaptureSpec

    spec = CaptureSpec(recording_id, path, fmt, quality, layout, as_received)
    if quality is Quality.SOURCE:
        from recorder.media.passthrough import PassthroughCapture

        return PassthroughCapture(spec)
    return Capture(spec)


def counts(value: CountsLike) -> FrameCounts:
    return FrameCounts(value.received, value.written, value.dropped)


class CaptureRun:
    def __init__(
        self,
        recording_id: str,
        directory: Path,
        capture: CaptureLike,
        emit: Callable[[RoomEvent], None],
        progress_interval: float,
        keyframes: Callable[[str], None] | None = None,
        events: EventLog | None = None,
    ) -> None:
        self.recording_id = recording_id
        self.directory = directory
        self.capture = capture
        self.events = events or EventLog(recording_id, directory,
                                         lambda: capture.media_seconds, 0)
        # encoded frames go to a capture that takes them; decoded ones to the others
        self.encoded: EncodedCaptureLike | None = (
            capture if isinstance(capture, EncodedCaptureLike) else None)
        if self.encoded is not None and keyframes is not None:
            self.encoded.on_keyframe_needed(keyframes)
        self.tracks: list[TrackInfo] = []  # every track that fed this capture
        self.failure: str | None = None  # set when a push raised; the room then finishes it
        self._emit = emit
        self._interval = progress_interval
        self._sources: set[str] = set()
        self._holds: set[str] = set()  # why the timeline stands still (pause, upstream)
        self._started_at = time.monotonic()
        self._media_started = False
        self._progress: asyncio.Task[None] | None = None
        self._spans: dict[str, PublisherSpan] = {}  # publisher session -> its span
        self.pauses: list[PauseSpan] = []  # the user's pauses, as this clock cut them

    def start(self) -> None:
        self._progress = asyncio.create_task(self._report_progress())

    def add_source(self, source_id: str, kind: str, track: TrackAdded,
                   role: str = CAMERA) -> None:
        """``track`` says whose it is; ``role`` (``screen``) decides its place in a layout."""
        if source_id in self._sources:
            return
        self.capture.add_source(source_id, kind,
                                Publisher(track.session_id, track.track.publisher_id, role))
        self._sources.add(source_id)
        if track.track not in self.tracks:
            self.tracks.append(track.track)
        self.publisher_seen(track.session_id, track.track.publisher_id, role, track.track)

    # ---- publishers and events --------------------------------------------------------

    def publisher_seen(self, session_id: str, publisher_id: str, role: str,
                       track: TrackInfo | None = None) -> None:
        """A publisher sends a track (or opened a data channel): its span begins now."""
        span = self._spans.get(session_id)
        if span is None or span.left_seconds is not None:
            span = PublisherSpan(publisher_id, role, self._media_now())
        if track is not None and track not in span.tracks:
            span = replace(span, tracks=(*span.tracks, track))
        self._spans[session_id] = span

    def publisher_left(self, session_id: str) -> None:
        span = self._spans.get(session_id)
        if span is not None and span.left_seconds is None:
            self._spans[session_id] = replace(span, left_seconds=self._media_now())

    def _media_now(self) -> float:
        try:
            return round(float(self.capture.media_seconds), 3)
        except Exception:
            return 0.0

    @property
    def started(self) -> bool:
        return self._media_started

    @property
    def recording(self) -> bool:
        """Media started and not paused: events are recorded (an upstream gap records them
        at the point of the cut)."""
        return self._media_started and PAUSE not in self._holds and self.failure is None

    def offer_event(self, incoming: Incoming | None, channel: str) -> Outcome:
        return self.events.offer(incoming, channel, self.recording)

    def remove_source(self, source_id: str) -> None:
        if source_id not in self._sources:
            return
        self._sources.discard(source_id)
        try:
            self.capture.remove_source(source_id)
        except Exception as exc:
            self._fail(f"removing source {source_id}: {exc}")
            return

    def hold(self, reason: str, at: float) -> None:
        """Stand the timeline still for ``reason``; the first hold pauses the capture. A
        user's pause and a broken upstream are held apart, so neither ends the other."""
        if not self._holds:
            self.capture.pause(at)
        if reason == PAUSE and PAUSE not in self._holds and self._media_started:
            self.pauses.append(PauseSpan(paused_at=datetime.now(UTC),
                                         position_seconds=self._media_now()))
        self._holds.add(reason)

    def release(self, reason: str, at: float) -> None:
        """End the hold for ``reason``; the last one resumes the capture."""
        if reason not in self._holds:
            return
        self._holds.discard(reason)
        if not self._holds:
            self.capture.resume(at)
        if reason == PAUSE and self.pauses and self.pauses[-1].resumed_at is None:
            self.pauses[-1].resumed_at = datetime.now(UTC)

    def push(self, source_id: str, frame: AnyFrame, arrival: float) -> None:
        if self.failure is not None or source_id not in self._sources:
            return
        try:
            if isinstance(frame, EncodedFrame):
                if self.encoded is None:
                    return
                started = self.encoded.push_encoded(source_id, frame, arrival)
            elif self.encoded is not None:
                return
            else:
                started = self.capture.push(source_id, frame, arrival)
        except Exception as exc:
            self._fail(f"frame from {source_id}: {exc}")
            return
        if started and not self._media_started:
            self._media_started = True
            self._emit(MediaStarted(self.recording_id, datetime.now(UTC)))

    async def finish(self) -> None:
        """Finalise the file off the loop and report the outcome; never raises."""
        await self._stop_progress()
        rid = self.recording_id
        events_file = self.events.close()
        try:
            result = await asyncio.to_thread(self.capture.stop)
        except Exception as exc:
            error = self.failure or f"{type(exc).__name__}: {exc}"
            logger.error("recording %s: finalising failed: %s", rid, error)
            self._emit(CaptureFailed(rid, error, self._frames_or_empty()))
            return
        frames = counts(result.frames)
        if self.failure is not None:
            logger.error("recording %s: failed: %s", rid, self.failure)
            self._emit(CaptureFailed(rid, self.failure, frames))
            return
        duration = float(result.duration_seconds)
        logger.info("recording %s: finished %d file(s), first %s (%.1f s, %d frames written)",
                    rid, len(result.files), result.path, duration, frames.written)
        files = [FileResult(str(f.path), f.kind, float(f.duration_seconds),
                            float(f.offset_seconds), f.clock_ppm) for f in result.files]
        for session_id in list(self._spans):
            self.publisher_left(session_id)
        self._emit(CaptureFinished(
            rid, files, duration, frames, tracks=list(self.tracks),
            events=self.events.snapshot(), publishers=list(self._spans.values()),
            pauses=list(self.pauses),
            events_file=None if events_file is None else str(events_file)))

    async def abort(self) -> None:
        await self._stop_progress()
        self.events.discard()
        await asyncio.to_thread(self.capture.abort)
        logger.info("recording %s: aborted", self.recording_id)

    def progress(self) -> CaptureProgress:
        now = time.monotonic()
        last = self.capture.last_frame_at
        idle = now - (last if last is not None else self._started_at)
        return CaptureProgress(self.recording_id, float(self.capture.media_seconds),
                               max(0.0, idle), counts(self.capture.frames),
                               self.events.snapshot())

    async def _report_progress(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            self.events.flush()
            try:
                self._emit(self.progress())
            except Exception:
                logger.exception("recording %s: progress not reported", self.recording_id)

    async def _stop_progress(self) -> None:
        task, self._progress = self._progress, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def _fail(self, error: str) -> None:
        if self.failure is None:
            self.failure = error
            logger.error("recording %s: capture failed: %s", self.recording_id, error)

    def _frames_or_empty(self) -> FrameCounts:
        try:
            return counts(self.capture.frames)
        except Exception:
            return FrameCounts()
