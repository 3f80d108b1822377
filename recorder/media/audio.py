"""The audio pipeline: every audio source resampled, mixed and encoded.

Sources arrive in whatever rate, layout and sample format their decoder produced; each is
converted to 48 kHz stereo float on the recording's clock by its own resampler (rebuilt if
the source changes format mid-stream, see :class:`_Converter`), placed on the media
timeline by the mixer, and the mix is encoded in
20 ms blocks once the media clock passed them. Blocks are produced from media time 0 on
whether or not anyone speaks, so the file's audio track always spans the whole recording.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from fractions import Fraction
from typing import Final

import numpy as np
from av.audio.frame import AudioFrame
from av.filter import Graph

from recorder.media.counts import FrameCounter
from recorder.media.mixer import AudioMixer, Samples
from recorder.media.muxer import AUDIO_LAYOUT, AUDIO_RATE, MediaWriter
from recorder.media.pipeline import PipelineWorker
from recorder.media.timeline import HorizonSource

logger = logging.getLogger(__name__)

BLOCK_SAMPLES: Final = 960  # 20 ms at 48 kHz: one Opus frame
# About 20 s of one 20 ms source; several sources share it.
INBOX_FRAMES: Final = 1024
_CHANNELS: Final = 2
AUDIO_TB: Final = Fraction(1, AUDIO_RATE)
# Stretch by up to 2 % (1000 samples a second) towards where the frames belong, over a
# second; only a jump past 0.25 s (a sender timeline that restarted) inserts silence or
# trims. A microphone off by r parts per million then lags about r/1000 ms behind where
# it belongs (the compensation's proportional lag), which is taken off its positions.
COMPENSATION_SECONDS: Final = 1
_COMPENSATION: Final = (f"{AUDIO_RATE}:async=1000:min_hard_comp=0.25"
                        f":comp_duration={COMPENSATION_SECONDS}")
MIN_HOLE_SECONDS: Final = 0.0025  # the shortest Opus frame
MAX_HOLE_SECONDS: Final = 60.0


@dataclass(frozen=True)
class AudioInput:
    source_id: str
    frame: AudioFrame
    media_time: float
    ppm: float = 0.0  # how fast the source's clock runs against the recording's


@dataclass(frozen=True)
class RemoveAudio:
    source_id: str


AudioItem = AudioInput | RemoveAudio


class _Converter:
    """One source's sound onto the recording's clock: FFmpeg's resampler converts it to
    48 kHz stereo float and, told where each frame belongs on the recording's timeline,
    stretches or squeezes it smoothly (``aresample`` with ``async`` compensation) so a
    microphone whose clock runs fast or slow keeps its place. A hole in the sender's
    timestamps (a lost packet, Opus DTX) is filled with silence before it, so nothing is
    stretched over it; whole blocks are never dropped or repeated."""

    def __init__(self, frame: AudioFrame) -> None:
        self.key = _key(frame)
        graph = Graph()
        chain = [graph.add_abuffer(format=frame.format.name, sample_rate=frame.sample_rate,
                                   layout=frame.layout.name, time_base=AUDIO_TB),
                 graph.add("aresample", _COMPENSATION),
                 graph.add("aformat", f"sample_fmts=flt:channel_layouts={AUDIO_LAYOUT}"),
                 graph.add("abuffersink")]
        for a, b in itertools.pairwise(chain):
            a.link_to(b)
        graph.configure()
        self._graph = graph
        self._next: tuple[float, float] | None = None  # (sender, recording) seconds

    def convert(self, frame: AudioFrame, media_time: float) -> list[tuple[int, Samples]]:
        """The frame's samples at the recording's rate, each chunk with its position."""
        sender = (frame.pts * frame.time_base if frame.pts is not None
                  and frame.time_base is not None else None)
        if sender is not None and self._next is not None:
            hole = float(sender) - self._next[0]
            if MIN_HOLE_SECONDS < hole <= MAX_HOLE_SECONDS and \
                    media_time - self._next[1] > hole / 2:
                self._push(_silence(frame, round(hole * frame.sample_rate)), media_time - hole)
        self._push(frame, media_time)
        duration = frame.samples / frame.sample_rate
        if sender is not None:
            self._next = (float(sender) + duration, media_time + duration)
        out: list[tuple[int, Samples]] = []
        while True:
            try:
                chunk = self._graph.pull()
            except (BlockingIOError, EOFError):
                return out
            if isinstance(chunk, AudioFrame) and chunk.pts is not None:
                out.append((chunk.pts, chunk.to_ndarray().reshape(-1, _CHANNELS).astype(
                    np.float32, copy=False)))

    def _push(self, frame: AudioFrame, media_time: float) -> None:
        """A copy of the frame, stamped with its place (frames are shared between
        recordings: this one's stamp must not reach another's)."""
        copy = AudioFrame.from_ndarray(frame.to_ndarray(), format=frame.format.name,
                                       layout=frame.layout.name)
        copy.sample_rate = frame.sample_rate
        copy.pts = round(media_time * AUDIO_RATE)
        copy.time_base = AUDIO_TB
        self._graph.push(copy)


def _key(frame: AudioFrame) -> tuple[str, str, int]:
    return frame.format.name, frame.layout.name, frame.sample_rate


def _silence(like: AudioFrame, samples: int) -> AudioFrame:
    shape = like.to_ndarray().shape
    per_sample = shape[1] // like.samples
    frame = AudioFrame.from_ndarray(np.zeros((shape[0], samples * per_sample),
                                             dtype=like.to_ndarray().dtype),
                                    format=like.format.name, layout=like.layout.name)
    frame.sample_rate = like.sample_rate
    return frame


class AudioPipeline(PipelineWorker[AudioItem]):
    def __init__(self, recording_id: str, timeline: HorizonSource, writer: MediaWriter,
                 counts: FrameCounter) -> None:
        super().__init__("audio", recording_id, timeline, INBOX_FRAMES, tick=0.01)
        self._writer = writer
        self._counts = counts
        self._mixer = AudioMixer(AUDIO_RATE, _CHANNELS, BLOCK_SAMPLES)
        self._converters: dict[str, _Converter] = {}
        self._warned_late = False  # logged once per recording: a stall drops many

    def handle(self, item: AudioItem) -> None:
        if isinstance(item, RemoveAudio):
            self._converters.pop(item.source_id, None)
            self._mixer.remove(item.source_id)
            return
        frame = item.frame
        converter = self._converters.get(item.source_id)
        if converter is None or converter.key != _key(frame):
            converter = self._converters[item.source_id] = _Converter(frame)
        # each chunk at the place the resampler gave it; the mixer joins it to the last
        chunks = converter.convert(frame, item.media_time)
        # the compensation lags its target by the rate it corrects, over its second
        lag = round(item.ppm * 1e-6 * COMPENSATION_SECONDS * AUDIO_RATE)
        kept = sum(self._mixer.add(item.source_id, samples, position - lag)
                   for position, samples in chunks)
        if chunks and not kept:  # it came after its place was mixed (the process stalled
            self._counts.dropped()  # longer than the latency allows): a soak sees it
            if not self._warned_late:
                self._warned_late = True
                late = (self._mixer.mixed - chunks[0][0] + lag) / AUDIO_RATE
                logger.warning("recording %s: sound of %s came %.2f s after its place was "
                               "mixed; dropping such sound", self.recording_id,
                               item.source_id, late)
        else:  # mixed, or held in the resampler for the next chunk
            self._counts.written()

    def emit(self, until: float) -> None:
        due = int(until * AUDIO_RATE)
        while self._mixer.mixed + BLOCK_SAMPLES <= due:
            self._encode(BLOCK_SAMPLES)

    def finish(self, end: float) -> None:
        last = round(end * AUDIO_RATE)
        while self._mixer.mixed < last:
            self._encode(min(BLOCK_SAMPLES, last - self._mixer.mixed))
        self._writer.write_audio(None)

    def _encode(self, size: int) -> None:
        start = self._mixer.mixed
        block = self._mixer.mix_block(size)
        if self._writer.audio_format == "fltp":
            frame = AudioFrame.from_ndarray(np.ascontiguousarray(block.T), format="fltp",
                                            layout=AUDIO_LAYOUT)
        else:
            frame = AudioFrame.from_ndarray(block.reshape(1, -1), format="flt",
                                            layout=AUDIO_LAYOUT)
        frame.sample_rate = AUDIO_RATE
        frame.pts = start
        frame.time_base = self._writer.audio_time_base
        self._writer.write_audio(frame)
        self.emitted = self._mixer.mixed / AUDIO_RATE

    def close(self) -> None:
        self._converters.clear()
