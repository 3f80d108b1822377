"""A room's decoded frames into files at a quality preset, in the recording's layout.

This is the seam the room session uses: it adds and removes sources as publishers come
and go, pushes every decoded frame on the event loop, pauses, resumes, and finally stops
(or aborts) from a thread. Everything on the loop is cheap: a timestamp mapping, a lock,
a hand-off to an encoder thread. Layouts differ only in where a source goes:

- ``composite``: one file, every video source in one picture (a grid that re-flows as
  publishers join and leave; the first screen share gets the large tile), every audio
  source mixed;
- ``tracks``: one file per publisher (:mod:`recorder.media.tracks` names them), its own
  audio and video, each starting at the publisher's first frame
  (:mod:`recorder.media.output`).

All files share one media clock, so a pause cuts the same span from each. A publisher's
audio and video are put on one clock by the sender's wall time (RTCP sender reports, which
the receiver tap stamps on decoded frames): :class:`recorder.media.clock.PublisherClock`,
as in the passthrough capture; before the first reports each track keeps its RTP spacing
from its first arrival.
Frame accounting is described in :mod:`recorder.media.counts`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import av

from recorder.core.errors import MediaError
from recorder.core.frames import FrameCounts
from recorder.core.presets import CODECS, PRESETS, Format, Layout, Quality
from recorder.media.clock import PublisherClock, sender_ntp
from recorder.media.counts import FrameCounter
from recorder.media.output import COMPOSITE, TRACK, Output, OutputFile
from recorder.media.sources import Publisher
from recorder.media.timeline import Timeline
from recorder.media.tracks import TrackNames

logger = logging.getLogger(__name__)

# Encoders finish within a second or two of the stop; past this something hangs.
STOP_TIMEOUT_SECONDS = 60.0
KINDS = ("audio", "video")


@dataclass(frozen=True)
class CaptureSpec:
    recording_id: str
    path: Path  # composite: the output file; tracks: the folder of the files (it exists)
    format: Format
    quality: Quality
    layout: Layout = Layout.COMPOSITE
    as_received: bool = False  # passthrough keeps every codec the container takes


@dataclass(frozen=True)
class CaptureResult:
    path: Path  # the composite, or the first publisher's file (the folder if none)
    duration_seconds: float  # media time of the recording, pauses cut
    frames: FrameCounts
    files: tuple[OutputFile, ...] = field(default=())  # every file, in the order made


class CaptureBase:
    """What both captures report while they run: their counts, the media time they are
    at, and when their last frame came."""

    _counts: FrameCounter
    _timeline: Timeline
    _last_frame_at: float | None

    @property
    def frames(self) -> FrameCounts:
        return self._counts.snapshot()

    @property
    def media_seconds(self) -> float:
        return self._timeline.media_now()

    @property
    def last_frame_at(self) -> float | None:
        return self._last_frame_at


@dataclass
class _Source:
    kind: str
    clock: PublisherClock  # its publisher session's, shared with its other tracks
    output: Output
    publisher: Publisher


class Capture(CaptureBase):
    """Decoded frames in, files at the preset out (see the module docstring).

    ``clock`` is the monotonic clock the ``arrival``/``at`` arguments come from; tests
    inject a fake one to run faster than real time. For ``composite``, construction opens
    the encoders and writes the file header (milliseconds; raises MediaError if the file
    cannot be made); ``tracks`` files open with their publisher's first frame.
    """

    def __init__(self, spec: CaptureSpec, *, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        if spec.quality is Quality.SOURCE:
            raise ValueError("quality 'source' is not transcoded by this capture")
        self.spec = spec
        self._rid = spec.recording_id
        self._preset = PRESETS[spec.quality]
        self._timeline = Timeline(clock)
        self._counts = FrameCounter()
        self._outputs: list[Output] = []
        self._by_name: dict[str, Output] = {}
        self._names = TrackNames()
        self._sessions: dict[str, set[str]] = {}  # publisher session -> its source ids
        self._sources: dict[str, _Source] = {}
        self._clocks: dict[str, PublisherClock] = {}  # publisher session -> its clock
        self._last_frame_at: float | None = None
        self._result: CaptureResult | None = None
        self._finished = False
        self._aborted = False
        self._warned_drop = False
        if spec.layout is Layout.TRACKS:
            if not spec.path.is_dir():
                raise MediaError(f"cannot create files in {spec.path}: not a folder")
        else:
            self._outputs.append(self._output(spec.path, COMPOSITE))

    def _output(self, path: Path, kind: str) -> Output:
        return Output(self._rid, path, kind, self.spec.format, self._preset, self._timeline,
                      self._counts, lazy=kind == TRACK)

    # ---- sources ----------------------------------------------------------------------

    def add_source(self, source_id: str, kind: str, publisher: Publisher | None = None) -> None:
        """A track of ``publisher`` (default: a publisher of its own) starts feeding."""
        if kind not in KINDS:
            raise ValueError(f"unknown track kind {kind!r}")
        previous = self._sources.get(source_id)
        if previous is not None:
            if previous.kind == kind:
                return
            self.remove_source(source_id)
        publisher = publisher or Publisher(source_id, source_id)
        output = self._route(publisher)
        clock = self._clocks.setdefault(publisher.session_id, PublisherClock())
        self._sources[source_id] = _Source(kind, clock, output, publisher)
        self._sessions.setdefault(publisher.session_id, set()).add(source_id)
        output.add(source_id, kind, publisher.role)
        logger.info("recording %s: %s source %s of %s (%s) added to %s", self._rid, kind,
                    source_id, publisher.publisher_id, publisher.role, output.path.name)

    def _route(self, publisher: Publisher) -> Output:
        if self.spec.layout is not Layout.TRACKS:
            return self._outputs[0]
        name, new = self._names.claim(publisher.session_id, publisher.publisher_id)
        output = self._by_name.get(name)
        if output is None:
            extension = CODECS[self.spec.format].extension
            output = self._output(self.spec.path / f"{name}.{extension}", TRACK)
            self._outputs.append(output)
            self._by_name[name] = output
        elif not new:
            logger.info("recording %s: %s is back, continuing %s", self._rid,
                        publisher.publisher_id, output.path.name)
        return output

    def remove_source(self, source_id: str) -> None:
        source = self._sources.pop(source_id, None)
        if source is None:
            return
        source.output.remove(source_id, source.kind)
        session = source.publisher.session_id
        source.clock.forget(source_id)
        left = self._sessions.get(session)
        if left is not None:
            left.discard(source_id)
            if not left:
                del self._sessions[session]
                self._clocks.pop(session, None)
                self._names.release(session)
        logger.info("recording %s: %s source %s removed", self._rid, source.kind, source_id)

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
        wall = source.clock.wall(source_id, source.kind, frame.pts, frame.time_base,
                                 sender_ntp(frame), arrival)
        media_time, first = self._timeline.place(wall)
        if media_time is None:
            return False
        if first:
            logger.info("recording %s: media started with %s source %s", self._rid,
                        source.kind, source_id)
        self._counts.received()
        ppm = (source.clock.ppm(source_id) or 0.0) if source.kind == "audio" else 0.0
        if not source.output.offer(source_id, frame, media_time, ppm):
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
        """Encode what is due up to now, flush, close the files. Blocking; idempotent."""
        if self._result is not None:
            return self._result
        if self._aborted:
            raise MediaError("the capture was aborted")
        self._finished = True
        end = self._timeline.end()
        errors = self._join()
        for output in self._outputs:
            errors += output.close()
        frames = self._counts.snapshot()
        if errors:
            logger.error("recording %s: capture failed: %s", self._rid, "; ".join(errors))
            raise MediaError(errors[0])
        files = tuple(f for f in (output.result(end) for output in self._outputs)
                      if f is not None)
        path = files[0].path if files else self.spec.path
        self._result = CaptureResult(path, round(end, 3), frames, files)
        for f in files:
            logger.info("recording %s: file %s closed, %.2f s from %.2f s", self._rid,
                        f.path.name, f.duration_seconds, f.offset_seconds)
        logger.info("recording %s: capture finished, %.2f s, %d file(s), frames %s",
                    self._rid, end, len(files), frames)
        return self._result

    def abort(self) -> None:
        """Stop the threads without finishing the files, and delete them. Blocking."""
        self._finished = True
        self._aborted = True
        self._timeline.end(aborted=True)
        self._join()
        for output in self._outputs:
            for problem in output.close():
                logger.info("recording %s: closing an aborted file: %s", self._rid, problem)
            output.delete()
        logger.info("recording %s: capture aborted, %d file(s) deleted", self._rid,
                    len(self._outputs))

    def _join(self) -> list[str]:
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for output in self._outputs:
            output.wake()
        errors: list[str] = []
        for output in self._outputs:
            errors += output.join(deadline)
        return errors

    # ---- progress ---------------------------------------------------------------------

    @property
    def due_seconds(self) -> float:
        """Media time the encoders may emit up to now: the media clock less the latency
        that lets a frame placed a little before its arrival still reach its slot."""
        return self._timeline.horizon().until

    @property
    def encoded_seconds(self) -> float:
        """Media time every started file handed to its encoders (audio and video) up to."""
        reached = [t for t in (o.encoded_until for o in self._outputs) if t is not None]
        return min(reached) if reached else self.media_seconds

    @property
    def error(self) -> str | None:
        """Why a pipeline failed, as soon as it did (stop() will raise it), else None."""
        for output in self._outputs:
            if output.error is not None:
                return output.error
        return None
