"""A room's decoded frames into one file at a quality preset (the composite capture).

This is the seam the room session uses: it adds and removes sources as publishers come
and go, pushes every decoded frame on the event loop, pauses, resumes, and finally stops
(or aborts) from a thread. Everything on the loop is cheap: a timestamp mapping, a lock,
a hand-off to the video or audio thread. The first video source added and still present
is the picture; every audio source is mixed.

Frame accounting is described in :mod:`recorder.media.counts`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av

from recorder.core.errors import MediaError
from recorder.core.presets import PRESETS, Format, Quality
from recorder.media.audio import AudioInput, AudioPipeline, RemoveAudio
from recorder.media.clock import SourceClock
from recorder.media.counts import FrameCounter
from recorder.media.timeline import DEFAULT_LATENCY, Timeline
from recorder.media.video import Select, VideoInput, VideoPipeline
from recorder.media.writer import MediaWriter
from recorder.room.messages import FrameCounts

logger = logging.getLogger(__name__)

# Encoders finish within a second or two of the stop; past this something hangs.
STOP_TIMEOUT_SECONDS = 60.0
KINDS = ("audio", "video")


@dataclass(frozen=True)
class CaptureSpec:
    recording_id: str
    path: Path  # the output file; its folder exists
    format: Format
    quality: Quality


@dataclass(frozen=True)
class CaptureResult:
    path: Path
    duration_seconds: float  # media time of the file, pauses cut
    frames: FrameCounts


@dataclass
class _Source:
    kind: str
    clock: SourceClock


class Capture:
    """Decoded frames in, one file at the preset out (see the module docstring).

    ``clock`` is the monotonic clock the ``arrival``/``at`` arguments come from; tests
    inject a fake one to run faster than real time. Construction opens the encoders and
    writes the file header (milliseconds; raises MediaError if the file cannot be made).
    """

    def __init__(self, spec: CaptureSpec, *, clock: Callable[[], float] = time.monotonic,
                 latency: float = DEFAULT_LATENCY) -> None:
        if spec.quality is Quality.SOURCE:
            raise ValueError("quality 'source' is not transcoded by this capture")
        self.spec = spec
        self._rid = spec.recording_id
        self._timeline = Timeline(clock, latency)
        self._counts = FrameCounter()
        self._writer = MediaWriter(spec.recording_id, spec.path, spec.format,
                                   PRESETS[spec.quality])
        self._video = VideoPipeline(self._rid, self._timeline, self._writer, self._counts)
        self._audio = AudioPipeline(self._rid, self._timeline, self._writer, self._counts)
        self._sources: dict[str, _Source] = {}
        self._video_order: list[str] = []
        self._selected: str | None = None
        self._last_frame_at: float | None = None
        self._result: CaptureResult | None = None
        self._finished = False
        self._aborted = False
        self._warned_drop = False
        self._video.start()
        self._audio.start()

    # ---- sources ----------------------------------------------------------------------

    def add_source(self, source_id: str, kind: str) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown track kind {kind!r}")
        previous = self._sources.get(source_id)
        if previous is not None and previous.kind != kind:
            self.remove_source(source_id)
        self._sources[source_id] = _Source(kind, SourceClock())
        if kind == "video" and source_id not in self._video_order:
            self._video_order.append(source_id)
            self._reselect()
        logger.info("recording %s: %s source %s added", self._rid, kind, source_id)

    def remove_source(self, source_id: str) -> None:
        source = self._sources.pop(source_id, None)
        if source is None:
            return
        if source.kind == "video":
            self._video_order.remove(source_id)
            self._reselect()
        else:
            self._audio.inbox.put(RemoveAudio(source_id))
        logger.info("recording %s: %s source %s removed", self._rid, source.kind, source_id)

    def _reselect(self) -> None:
        selected = self._video_order[0] if self._video_order else None
        if selected != self._selected:
            self._selected = selected
            self._video.inbox.put(Select(selected, self._timeline.media_now()))
            logger.info("recording %s: showing video source %s", self._rid, selected)

    # ---- frames -----------------------------------------------------------------------

    def push(self, source_id: str, frame: av.AudioFrame | av.VideoFrame, arrival: float) -> bool:
        """Hand one decoded frame over; True only for the frame that starts the recording."""
        if self._finished:
            return False
        source = self._sources.get(source_id)
        if source is None:
            return False
        if isinstance(frame, av.VideoFrame) != (source.kind == "video"):
            return False
        self._last_frame_at = arrival
        wall = source.clock.wall(frame.pts, frame.time_base, arrival)
        media_time, first = self._timeline.place(wall)
        if media_time is None:
            return False
        if first:
            logger.info("recording %s: media started with %s source %s", self._rid,
                        source.kind, source_id)
        self._counts.received()
        if isinstance(frame, av.VideoFrame):
            if source_id != self._selected:
                return first
            pipeline_ok = not self._video.failed and self._video.inbox.offer(
                VideoInput(source_id, frame, media_time))
        else:
            pipeline_ok = not self._audio.failed and self._audio.inbox.offer(
                AudioInput(source_id, frame, media_time))
        if not pipeline_ok:
            self._counts.dropped()
            if not self._warned_drop:
                self._warned_drop = True
                logger.warning("recording %s: %s pipeline behind or failed, dropping frames",
                               self._rid, source.kind)
        return first

    # ---- control ----------------------------------------------------------------------

    def pause(self, at: float) -> None:
        self._timeline.pause(at)
        logger.info("recording %s: paused at media %.2f s", self._rid, self.media_seconds)

    def resume(self, at: float) -> None:
        self._timeline.resume(at)
        logger.info("recording %s: resumed at media %.2f s", self._rid, self.media_seconds)

    def stop(self) -> CaptureResult:
        """Encode what is due up to now, flush, close the file. Blocking; idempotent."""
        if self._result is not None:
            return self._result
        if self._aborted:
            raise MediaError("the capture was aborted")
        self._finished = True
        end = self._timeline.end()
        errors = self._join()
        try:
            self._writer.close()
        except MediaError as exc:
            errors.append(str(exc))
        frames = self._counts.snapshot()
        if errors:
            logger.error("recording %s: capture failed: %s", self._rid, "; ".join(errors))
            raise MediaError(errors[0])
        self._result = CaptureResult(self.spec.path, round(end, 3), frames)
        logger.info("recording %s: file %s closed, %.2f s, frames %s", self._rid,
                    self.spec.path.name, end, frames)
        return self._result

    def abort(self) -> None:
        """Stop the threads without finishing the file, and delete it. Blocking."""
        self._finished = True
        self._aborted = True
        self._timeline.end(aborted=True)
        self._join()
        try:
            self._writer.close()
        except MediaError as exc:
            logger.info("recording %s: closing an aborted file: %s", self._rid, exc)
        if self.spec.path.is_file():  # never a device or folder handed in by mistake
            self.spec.path.unlink()
        logger.info("recording %s: capture aborted, %s deleted", self._rid,
                    self.spec.path.name)

    def _join(self) -> list[str]:
        errors: list[str] = []
        for worker in (self._video, self._audio):
            worker.inbox.wake()
        for worker in (self._video, self._audio):
            worker.join(STOP_TIMEOUT_SECONDS)
            if worker.is_alive():
                errors.append(f"{worker.kind} encoder did not finish")
            elif worker.error is not None:
                errors.append(f"{worker.kind} encoding failed: {worker.error}")
        return errors

    # ---- progress ---------------------------------------------------------------------

    @property
    def frames(self) -> FrameCounts:
        return self._counts.snapshot()

    @property
    def media_seconds(self) -> float:
        return self._timeline.media_now()

    @property
    def encoded_seconds(self) -> float:
        """Media time both audio and video have been handed to the encoders up to."""
        return min(self._video.emitted, self._audio.emitted)

    @property
    def last_frame_at(self) -> float | None:
        return self._last_frame_at

    @property
    def error(self) -> str | None:
        """Why a pipeline failed, as soon as it did (stop() will raise it), else None."""
        for worker in (self._video, self._audio):
            if worker.error is not None:
                return f"{worker.kind} encoding failed: {worker.error}"
        return None
