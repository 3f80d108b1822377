"""The ``source`` capture: a room's encoded frames into files as they were received.

Design note. The room hands this capture encoded frames (:meth:`push_encoded`) instead of
decoded ones; when every recording of a room is ``source`` the room's receivers do not
decode at all (:mod:`recorder.rtc.taps`), which is the CPU this quality saves. Each
frame's time comes from RTP, never from a frame counter: a publisher that sends RTCP
sender reports has its audio and video put on the sender's one wall clock (the NTP time
the SR pairs with an RTP time), so lip sync is the sender's; a track without SRs yet
keeps its own RTP spacing from its first arrival (:class:`recorder.media.clock.SourceClock`
follows the drift either way). The recording's :class:`recorder.media.timeline.Timeline`
cuts pauses exactly as the transcoding capture does. Within a file the sound is the
master (:mod:`recorder.media.sync`): it is written as received, continuous, and the
pictures are placed on it, so the file runs on its publisher's audio clock, whose rate
against the recording's each file reports (``clock_ppm``); ``offset + t`` is the same
moment in every file to within that rate.

Video starts on a keyframe: at the start and after a resume the capture drops a track's
pictures until one comes and asks the sender for it (a PLI through the room); after a
loss the receiver has already asked, and pictures that would decode to garbage are
dropped (and counted) until the keyframe. Layouts: ``composite`` records the room's first
video publisher with its own audio (``source`` cannot mix); ``tracks`` writes one file
per publisher named as the transcoding capture names them
(:class:`recorder.media.tracks.TrackNames`). Writing, and transcoding the tracks whose
codec is not the format's, happen in one thread per file
(:mod:`recorder.media.passthrough_file`).

Frames: ``received`` counts frames placed on the timeline for a file; ``written`` those
in a file; ``dropped`` those lost to a full queue, a failed file, a stream the file did
not have, or a loss awaiting its keyframe.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import av

from recorder.core.errors import MediaError
from recorder.core.presets import CODECS, Layout, Quality
from recorder.media.capture import CaptureBase, CaptureResult, CaptureSpec
from recorder.media.clock import PublisherClock
from recorder.media.counts import FrameCounter
from recorder.media.encoded import EncodedFrame
from recorder.media.output import COMPOSITE, TRACK, OutputFile
from recorder.media.passthrough_file import PassthroughFile
from recorder.media.sources import Publisher
from recorder.media.timeline import Timeline
from recorder.media.tracks import TrackNames

logger = logging.getLogger(__name__)

STOP_TIMEOUT_SECONDS: Final = 60.0
KEYFRAME_RETRY_SECONDS: Final = 1.0  # ask again while a track waits this long for one


@dataclass
class _Track:
    kind: str
    publisher: Publisher
    file: PassthroughFile | None  # tracks layout: its publisher's file
    waiting_key: bool = True  # video: pictures before the next keyframe are dropped
    after_loss: bool = False
    losses: int | None = None
    asked_at: float | None = None


class PassthroughCapture(CaptureBase):
    """Encoded frames in, files as received out (see the module docstring)."""

    consumes_encoded = True

    def __init__(self, spec: CaptureSpec, *, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        if spec.quality is not Quality.SOURCE:
            raise ValueError(f"quality {spec.quality.value!r} is transcoded, not passed through")
        self.spec = spec
        self._rid = spec.recording_id
        self._clock = clock
        self._timeline = Timeline(clock, 0.0)
        self._counts = FrameCounter()
        self._files: list[PassthroughFile] = []
        self._by_name: dict[str, PassthroughFile] = {}
        self._names = TrackNames()
        self._tracks: dict[str, _Track] = {}
        self._clocks: dict[str, PublisherClock] = {}  # publisher session -> its clock
        self._bound: str | None = None  # composite: the session it records
        self._keyframes: Callable[[str], None] = lambda _: None
        self._last_frame_at: float | None = None
        self._result: CaptureResult | None = None
        self._finished = False
        if spec.layout is Layout.TRACKS:
            if not spec.path.is_dir():
                raise MediaError(f"cannot create files in {spec.path}: not a folder")
        else:
            if not spec.path.parent.is_dir():
                raise MediaError(f"cannot create {spec.path}: no such folder")
            self._start_file(spec.path, COMPOSITE)

    def on_keyframe_needed(self, request: Callable[[str], None]) -> None:
        """``request(source_id)`` asks that source's sender for a keyframe."""
        self._keyframes = request

    def _start_file(self, path: Path, kind: str) -> PassthroughFile:
        file = PassthroughFile(self._rid, path, self.spec.format, self._counts, kind,
                               self.spec.as_received)
        file.start()
        self._files.append(file)
        return file

    # ---- sources ----------------------------------------------------------------------

    def add_source(self, source_id: str, kind: str, publisher: Publisher | None = None) -> None:
        if kind not in ("audio", "video"):
            raise ValueError(f"unknown track kind {kind!r}")
        if source_id in self._tracks:
            return
        publisher = publisher or Publisher(source_id, source_id)
        file = self._route(publisher) if self.spec.layout is Layout.TRACKS else None
        self._tracks[source_id] = _Track(kind, publisher, file, waiting_key=kind == "video")
        if kind == "video" and self.spec.layout is Layout.COMPOSITE:
            self._bind(publisher.session_id, video=True)
        self._mark(file, publisher.session_id, kind)
        logger.info("recording %s: %s source %s of %s added", self._rid, kind, source_id,
                    publisher.publisher_id)

    def _route(self, publisher: Publisher) -> PassthroughFile:
        name, _ = self._names.claim(publisher.session_id, publisher.publisher_id)
        file = self._by_name.get(name)
        if file is None:
            path = self.spec.path / f"{name}.{CODECS[self.spec.format].extension}"
            file = self._start_file(path, TRACK)
            self._by_name[name] = file
        return file

    def _bind(self, session: str, video: bool) -> None:
        """Composite: record ``session``; a video publisher displaces an audio-only one
        as long as nothing was written."""
        if self._bound == session:
            return
        composite = self._files[0]
        if self._bound is None or (video and not composite.opened
                                   and not composite.expects_video):
            self._bound = session
            composite.expects_audio = any(t.kind == "audio" and t.publisher.session_id
                                          == session for t in self._tracks.values())
            logger.info("recording %s: recording publisher session %s as received",
                        self._rid, session)

    def _mark(self, file: PassthroughFile | None, session: str, kind: str) -> None:
        if file is None:
            if self._bound != session:
                return
            file = self._files[0]
        if kind == "video":
            file.expects_video = True
        else:
            file.expects_audio = True

    def remove_source(self, source_id: str) -> None:
        track = self._tracks.pop(source_id, None)
        if track is None:
            return
        session = track.publisher.session_id
        if not any(t.publisher.session_id == session for t in self._tracks.values()):
            self._names.release(session)
        logger.info("recording %s: %s source %s removed", self._rid, track.kind, source_id)

    # ---- frames -----------------------------------------------------------------------

    def push(self, source_id: str, frame: av.AudioFrame | av.VideoFrame, arrival: float
             ) -> bool:
        """Decoded frames are not this capture's: the room sends it encoded ones."""
        return False

    def push_encoded(self, source_id: str, frame: EncodedFrame, arrival: float) -> bool:
        """Place one encoded frame; True only for the frame that starts the recording."""
        if self._finished:
            return False
        track = self._tracks.get(source_id)
        if track is None or track.kind != frame.kind:
            return False
        file = self._file_of(track)
        if file is None:
            return False
        self._last_frame_at = arrival
        clock = self._clocks.setdefault(track.publisher.session_id, PublisherClock())
        wall = clock.wall(source_id, frame.kind, frame.timestamp,
                          frame.time_base, frame.ntp, arrival)
        if track.kind == "video" and not self._keyframe_gate(source_id, track, frame, arrival):
            if track.after_loss and self._timeline.started:
                media_time, _ = self._timeline.place(wall)
                if media_time is not None:
                    self._counts.received()
                    self._counts.dropped()
            return False
        media_time, first = self._timeline.place(wall)
        if media_time is None:
            return False
        if first:
            logger.info("recording %s: media started with %s source %s", self._rid,
                        track.kind, source_id)
        self._counts.received()
        cut = (self._timeline.cuts_before(wall), track.publisher.session_id)
        if not file.offer(frame, media_time, wall, cut, source_id):
            self._counts.dropped()
        if frame.kind == "audio":
            file.clock_ppm = clock.ppm(source_id)
        return first

    def _file_of(self, track: _Track) -> PassthroughFile | None:
        if track.file is not None:
            return track.file
        session = track.publisher.session_id
        if self._bound is None and track.kind == "audio":
            self._bind(session, video=False)
        return self._files[0] if self._bound == session else None

    def _keyframe_gate(self, source_id: str, track: _Track, frame: EncodedFrame,
                       arrival: float) -> bool:
        """Whether this picture may be written: none between a loss (or the start, or a
        resume) and the next keyframe."""
        if track.losses is not None and frame.losses != track.losses and not frame.keyframe:
            track.waiting_key = track.after_loss = True
            track.asked_at = arrival  # the receiver asked already
        track.losses = frame.losses
        if frame.keyframe:
            track.waiting_key = track.after_loss = False
            return True
        if not track.waiting_key:
            return True
        if track.asked_at is None or arrival - track.asked_at >= KEYFRAME_RETRY_SECONDS:
            track.asked_at = arrival
            self._ask_keyframe(source_id)
        return False

    def _ask_keyframe(self, source_id: str) -> None:
        try:
            self._keyframes(source_id)
        except Exception:
            logger.exception("recording %s: keyframe request for %s failed", self._rid,
                             source_id)

    # ---- control ----------------------------------------------------------------------

    def pause(self, at: float) -> None:
        self._timeline.pause(at)
        logger.info("recording %s: paused at media %.2f s", self._rid, self.media_seconds)

    def resume(self, at: float) -> None:
        self._timeline.resume(at)
        for source_id, track in self._tracks.items():
            if track.kind == "video":  # the span after the cut starts on a keyframe too
                track.waiting_key, track.asked_at = True, at
                self._ask_keyframe(source_id)
        logger.info("recording %s: resumed at media %.2f s", self._rid, self.media_seconds)

    def stop(self) -> CaptureResult:
        """Write what is queued, close the files. Blocking; idempotent."""
        if self._result is not None:
            return self._result
        self._finished = True
        end = self._timeline.end()
        errors = self._join(aborting=False)
        frames = self._counts.snapshot()
        if errors:
            logger.error("recording %s: capture failed: %s", self._rid, "; ".join(errors))
            raise MediaError(errors[0])
        files: list[OutputFile] = []
        for file in self._files:
            if not file.path.is_file() or file.offset is None:
                file.path.unlink(missing_ok=True)
                continue
            start = file.offset if file.kind == TRACK else 0.0
            ppm = None if file.clock_ppm is None else round(file.clock_ppm, 1)
            files.append(OutputFile(file.path, file.kind, round(max(0.0, end - start), 3),
                                    round(start, 3), ppm))
        path = files[0].path if files else self.spec.path
        self._result = CaptureResult(path, round(end, 3), frames, tuple(files))
        logger.info("recording %s: capture finished, %.2f s, %d file(s), frames %s",
                    self._rid, end, len(files), frames)
        return self._result

    def abort(self) -> None:
        """Stop the threads without finishing the files, and delete them. Blocking."""
        self._finished = True
        self._timeline.end(aborted=True)
        self._join(aborting=True)
        for file in self._files:
            if file.path.is_file():
                file.path.unlink()
        logger.info("recording %s: capture aborted, %d file(s) deleted", self._rid,
                    len(self._files))

    def _join(self, aborting: bool) -> list[str]:
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for file in self._files:
            file.stop(aborting)
        errors: list[str] = []
        for file in self._files:
            file.join(max(0.0, deadline - time.monotonic()))
            if file.is_alive():
                errors.append(f"the writer of {file.path.name} did not finish")
            elif file.error is not None:
                errors.append(f"{file.path.name}: {file.error}")
        return errors

    # ---- progress ---------------------------------------------------------------------

    @property
    def error(self) -> str | None:
        return next((f.error for f in self._files if f.error is not None), None)
