"""A deferred transcode: a recording's live (passthrough) files through the live capture.

Design note. The files a live ``tracks`` recording at ``source`` quality left (one per
publisher, each with the media time it starts at) are decoded and replayed into the very
:class:`recorder.media.capture.Capture` a live recording uses, so the grid, the letterbox,
the mixer, the constant frame rate and the encoders are the live ones: there is no second
pipeline to keep in step. Only time differs. The capture reads a *virtual* clock that this
module moves in small steps, and each step waits until every encoder thread has emitted
up to it before the next frames go in. That is back-pressure instead of real time: the
capture's bounded inboxes never fill, so nothing is dropped however slow the encoders are
(a 4K60 encode on two cores runs many times slower than real time), and nothing waits
when they are fast.

Every frame enters at its place on the recording's timeline (``offset`` of its file plus
its own time in the file, scaled back to the recording's clock by the file's
``clock_ppm``: a live file runs on its publisher's microphone), which is exactly the
arrival time a live capture would have seen with a perfect network, so sender spacing and
A/V alignment carry over unchanged, and the capture resamples the sound onto the
recording's clock as it would live.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import av
from av.audio.frame import AudioFrame
from av.video.frame import VideoFrame

from recorder.core.errors import MediaError
from recorder.core.presets import PRESETS, Layout
from recorder.media.capture import Capture, CaptureResult, CaptureSpec
from recorder.media.sources import Publisher
from recorder.media.transcode_job import OutputResult, SourceFile, TranscodeJob

logger = logging.getLogger(__name__)

# How far the virtual clock moves before the encoders must catch up: a few frames per
# source, well inside the capture's inboxes (32 pictures per source, 1024 audio frames).
STEP_SECONDS: Final = 0.1
POLL_SECONDS: Final = 0.002
PROGRESS_LOG_SECONDS: Final = 10.0
_DECODE_TRIES: Final = 16

Frame = AudioFrame | VideoFrame


class VirtualClock:
    """The capture's monotonic clock, moved by the transcoder instead of by time."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class _Stream:
    """One track of one live file, decoded lazily in presentation order."""

    source_id: str
    kind: str
    publisher: Publisher
    end: float  # recording media time the file spans to
    frames: Iterator[tuple[float, Frame]]
    added: bool = False
    exhausted: bool = False
    removed: bool = False


@dataclass(order=True)
class _Next:
    at: float
    seq: int
    frame: Frame = field(compare=False)
    stream: _Stream = field(compare=False)


def transcode(job: TranscodeJob) -> tuple[CaptureResult, float]:
    """Write the job's outputs; returns the capture's result and the media time of its
    first frame on the files' timeline. Blocking (run it in a child process). Raises
    MediaError; outputs of a failed run are deleted."""
    rid = job.recording_id
    if job.quality not in PRESETS:
        raise MediaError(f"quality {job.quality.value!r} is not a transcode preset")
    if not job.sources:
        raise MediaError("no live file to transcode")
    directory = Path(job.directory)
    path = directory / job.output_name() if job.layout is Layout.COMPOSITE else directory
    clock = VirtualClock()
    capture = Capture(CaptureSpec(rid, path, job.format, job.quality, job.layout),
                      clock=clock)
    try:
        first = _Replay(job, capture, clock).run()
        result = capture.stop()
    except BaseException:
        capture.abort()
        raise
    return result, first


class _Replay:
    """Feeds the as-received files' frames to a capture in media-time order, moving its
    virtual clock in steps no faster than its encoders keep up."""

    def __init__(self, job: TranscodeJob, capture: Capture, clock: VirtualClock) -> None:
        self._job = job
        self._capture = capture
        self._clock = clock
        fps = PRESETS[job.quality].fps
        self._frame_seconds = 1.0 / fps
        self._slack = 2.0 / fps  # the video thread emits whole slots, the audio one 20 ms blocks
        self._streams = [s for source in job.sources for s in _open_streams(source)]
        self._heap: list[_Next] = []
        self._seq = 0

    def run(self) -> float:
        """Replay everything; returns the media time of the first frame."""
        for stream in self._streams:
            self._refill(stream)
        if not self._heap:
            raise MediaError("the as-received files hold no decodable frame")
        first = self._heap[0].at
        job, clock = self._job, self._clock
        end = first + job.duration_seconds if job.duration_seconds > 0 else None
        clock.now = first
        last = logged = first
        while self._heap:
            item = heapq.heappop(self._heap)
            self._refill(item.stream)
            if end is not None and item.at >= end:
                continue  # after the stop: the capture as received ended before it
            self._push(item)
            last = max(last, item.at)
            if item.at - logged >= PROGRESS_LOG_SECONDS:
                logged = item.at
                logger.info("recording %s: transcoded %.1f s of %.1f s", job.recording_id,
                            item.at - first, job.duration_seconds)
        stop_at = end if end is not None else last + self._frame_seconds
        while clock.now + STEP_SECONDS < stop_at:
            self._advance(clock.now + STEP_SECONDS)
        self._advance(stop_at)
        return first

    def _refill(self, stream: _Stream) -> None:
        item = next(stream.frames, None)
        if item is None:
            stream.exhausted = True
            return
        self._seq += 1
        heapq.heappush(self._heap, _Next(item[0], self._seq, item[1], stream))

    def _push(self, item: _Next) -> None:
        while item.at > self._clock.now + STEP_SECONDS:
            self._advance(self._clock.now + STEP_SECONDS)
        stream = item.stream
        if not stream.added:
            stream.added = True
            self._capture.add_source(stream.source_id, stream.kind, stream.publisher)
        self._capture.push(stream.source_id, item.frame, item.at)

    def _advance(self, to: float) -> None:
        capture = self._capture
        self._clock.now = to
        # as far as the encoders may go: the live latency behind the clock, so a sound a
        # source's clock places a little before it is fed in is not after its mixed place
        target = capture.due_seconds - self._slack
        while capture.encoded_seconds < target:
            if capture.error is not None:
                raise MediaError(capture.error)
            time.sleep(POLL_SECONDS)
        if capture.error is not None:
            raise MediaError(capture.error)
        for stream in self._streams:  # a publisher whose file ended leaves the picture
            if stream.added and stream.exhausted and not stream.removed \
                    and stream.end <= to:
                stream.removed = True
                capture.remove_source(stream.source_id)


def _open_streams(source: SourceFile) -> list[_Stream]:
    """The file's video and audio as separate lazily decoded streams (each in order)."""
    path = Path(source.path)
    try:
        with av.open(str(path)) as container:
            kinds = [kind for kind, streams in (("video", container.streams.video),
                                                ("audio", container.streams.audio)) if streams]
    except (av.FFmpegError, OSError) as exc:
        raise MediaError(f"cannot read live file {path.name}: {exc}") from exc
    publisher = Publisher(source.publisher_id, source.publisher_id, source.role)
    end = source.offset_seconds + source.duration_seconds
    rate = 1 + source.clock_ppm / 1e6
    return [_Stream(f"{source.publisher_id}/{kind}", kind, publisher, end,
                    _decode(path, kind, source.offset_seconds, rate)) for kind in kinds]


def _decode(path: Path, kind: str, offset: float, rate: float = 1.0
            ) -> Iterator[tuple[float, Frame]]:
    """(recording media time, frame) of one track of a live file, in order. A file that
    runs on its publisher's audio clock (``rate`` seconds of file per recording second)
    is put back on the recording's: the capture then resamples its sound to fit.

    A packet that does not decode (a loss the live side could not mend) is skipped, as a
    live decoder would; times never go back, so the merge across files stays ordered.
    """
    with av.open(str(path)) as container:
        stream = container.streams.video[0] if kind == "video" else container.streams.audio[0]
        last = float("-inf")
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.FFmpegError as exc:
                logger.info("%s: a %s packet did not decode: %s", path.name, kind, exc)
                continue
            for frame in frames:
                if not isinstance(frame, (AudioFrame, VideoFrame)) or frame.time is None:
                    continue
                at = max(last, offset + float(frame.time) / rate)
                last = at
                yield at, frame


def describe_output(path: Path, kind: str, duration: float, offset: float) -> OutputResult:
    """Read a finished output back: it exists, it decodes, and what a player sees."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video or not container.streams.audio:
                raise MediaError(f"{path.name} lacks a video or an audio stream")
            video = container.streams.video[0]
            audio = container.streams.audio[0]
            pictures = 0
            samples = 0.0
            decoded = False
            for packet in container.demux(video, audio):
                if packet.size == 0:
                    continue
                if packet.stream.type == "video":
                    pictures += 1
                    if not decoded and pictures <= _DECODE_TRIES:  # threads delay output
                        decoded = bool(packet.decode())
                else:
                    samples += float((packet.duration or 0) * packet.time_base)
            if pictures and not decoded:
                raise MediaError(f"{path.name}: no picture decodes")
            width, height = video.codec_context.width, video.codec_context.height
            fps = float(video.average_rate or video.guessed_rate or 0)
    except (av.FFmpegError, OSError) as exc:
        raise MediaError(f"cannot read {path.name} back: {exc}") from exc
    return OutputResult(str(path), kind, duration, offset, width, height, fps, pictures,
                        round(samples, 3))
