"""One output file of a capture: its writer, its video and audio threads, where it starts.

A ``composite`` capture has one output that starts with the recording. A ``tracks``
capture has one per publisher, and each starts at its publisher's first frame: the file's
time 0 is that media time (its ``offset``), and from there the file follows the
recording's media clock like the composite does, pauses cut and absences filled (black
and silence while its publisher is away), so ``offset + t`` in any file is the same
moment of the recording. :class:`FileClock` is the recording's timeline as one file's
threads see it.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from av.audio.frame import AudioFrame
from av.video.frame import VideoFrame

from recorder.core.errors import MediaError
from recorder.core.presets import Format, Preset
from recorder.media.audio import AudioInput, AudioPipeline, RemoveAudio
from recorder.media.counts import FrameCounter
from recorder.media.muxer import MediaWriter
from recorder.media.pipeline import PipelineWorker
from recorder.media.sources import SCREEN
from recorder.media.timeline import Horizon, Timeline
from recorder.media.video import INBOX_FRAMES, Arrange, VideoInput, VideoPipeline

logger = logging.getLogger(__name__)

COMPOSITE: Final = "composite"
TRACK: Final = "track"


@dataclass(frozen=True)
class OutputFile:
    path: Path
    kind: str  # "composite" | "track"
    duration_seconds: float  # media time the file spans
    offset_seconds: float  # media time of the recording where the file begins
    # a file written as received runs on its publisher's audio clock: how fast that runs
    # against the recording's, in parts per million (None: the recording's own clock)
    clock_ppm: float | None = None


class FileClock:
    """The shared timeline shifted to a file's start; nothing is due before that start.

    A file without a start at the stop never had media: its threads end without
    finishing (and a lazy writer then leaves no file).
    """

    def __init__(self, timeline: Timeline, offset: float | None) -> None:
        self._timeline = timeline
        self._lock = threading.Lock()
        self._offset = offset

    @property
    def offset(self) -> float | None:
        with self._lock:
            return self._offset

    def start_at(self, media_time: float) -> float:
        """Set the start once (later calls keep the first); returns it."""
        with self._lock:
            if self._offset is None:
                self._offset = media_time
            return self._offset

    def horizon(self) -> Horizon:
        horizon = self._timeline.horizon()
        offset = self.offset
        if offset is None:
            return Horizon(-1.0, horizon.final, horizon.aborted or horizon.final)
        if horizon.until < 0:
            return horizon
        return Horizon(horizon.until - offset, horizon.final, horizon.aborted)


class Output:
    def __init__(self, recording_id: str, path: Path, kind: str, fmt: Format, preset: Preset,
                 timeline: Timeline, counts: FrameCounter, *, lazy: bool) -> None:
        """A composite starts with the recording and opens its file now (raises
        MediaError); a track file starts at its first frame and opens then."""
        self.path = path
        self.kind = kind
        self._rid = recording_id
        self._timeline = timeline
        self.clock = FileClock(timeline, None if lazy else 0.0)
        self.writer = MediaWriter(recording_id, path, fmt, preset, lazy=lazy)
        self.video = VideoPipeline(recording_id, self.clock, self.writer, counts)
        self.audio = AudioPipeline(recording_id, self.clock, self.writer, counts)
        self._video_sources: list[tuple[str, str]] = []  # (source id, role), join order
        self.video.start()
        self.audio.start()

    @property
    def workers(self) -> tuple[PipelineWorker[Any], ...]:
        return self.video, self.audio

    # ---- sources (event loop) ---------------------------------------------------------

    def add(self, source_id: str, kind: str, role: str) -> None:
        if kind == "video" and all(s != source_id for s, _ in self._video_sources):
            self._video_sources.append((source_id, role))
            self._arrange()

    def remove(self, source_id: str, kind: str) -> None:
        if kind == "video":
            self._video_sources = [(s, r) for s, r in self._video_sources if s != source_id]
            self._arrange()
        else:
            self.audio.inbox.put(RemoveAudio(source_id))

    def _arrange(self) -> None:
        sources = tuple(s for s, _ in self._video_sources)
        featured = next((s for s, role in self._video_sources if role == SCREEN), None)
        offset = self.clock.offset
        at = self._timeline.media_now() - offset if offset is not None else 0.0
        self.video.inbox.capacity = INBOX_FRAMES * max(1, len(sources))
        self.video.inbox.put(Arrange(sources, featured, at))
        logger.info("recording %s: %s shows %d video source(s)%s", self._rid, self.path.name,
                    len(sources), f", {featured} large" if featured and len(sources) > 1 else "")

    def offer(self, source_id: str, frame: AudioFrame | VideoFrame, media_time: float,
              ppm: float = 0.0) -> bool:
        """Hand a frame to its thread (``ppm``: its clock's rate against the recording's);
        False if the thread is behind or failed."""
        at = media_time - self.clock.start_at(media_time)
        if isinstance(frame, VideoFrame):
            return not self.video.failed and self.video.inbox.offer(
                VideoInput(source_id, frame, at))
        return not self.audio.failed and self.audio.inbox.offer(
            AudioInput(source_id, frame, at, ppm))

    # ---- progress ---------------------------------------------------------------------

    @property
    def encoded_until(self) -> float | None:
        """Recording media time both threads handed to the encoders (None: no start)."""
        offset = self.clock.offset
        if offset is None:
            return None
        return offset + min(self.video.emitted, self.audio.emitted)

    @property
    def error(self) -> str | None:
        for worker in self.workers:
            if worker.error is not None:
                return f"{worker.kind} encoding failed: {worker.error}"
        return None

    # ---- end (blocking) ---------------------------------------------------------------

    def wake(self) -> None:
        for worker in self.workers:
            worker.inbox.wake()

    def join(self, deadline: float) -> list[str]:
        """Wait for both threads until ``deadline`` (monotonic); what went wrong."""
        errors: list[str] = []
        for worker in self.workers:
            worker.join(max(0.0, deadline - time.monotonic()))
            if worker.is_alive():
                errors.append(f"{worker.kind} encoder of {self.path.name} did not finish")
            elif worker.error is not None:
                errors.append(f"{worker.kind} encoding failed: {worker.error}")
        return errors

    def close(self) -> list[str]:
        try:
            self.writer.close()
        except MediaError as exc:
            return [str(exc)]
        return []

    def result(self, end: float) -> OutputFile | None:
        """The closed file, or None when it holds no media (and is then deleted)."""
        offset = self.clock.offset
        slots = 0 if offset is None else round((end - offset) * self.writer.preset.fps)
        if self.kind == TRACK and (slots <= 0 or not self.writer.opened):
            self.delete()  # joined as the recording stopped: not one picture long
            return None
        start = offset or 0.0
        return OutputFile(self.path, self.kind, round(end - start, 3), round(start, 3))

    def delete(self) -> None:
        if self.path.is_file():  # never a device or folder handed in by mistake
            self.path.unlink()
