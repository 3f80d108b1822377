"""The audio pipeline: every audio source resampled, mixed and encoded.

Sources arrive in whatever rate, layout and sample format their decoder produced; each is
converted to 48 kHz stereo float with its own resampler (rebuilt if the source changes
format mid-stream), placed on the media timeline by the mixer, and the mix is encoded in
20 ms blocks once the media clock passed them. Blocks are produced from media time 0 on
whether or not anyone speaks, so the file's audio track always spans the whole recording.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final

import numpy as np
from av.audio.frame import AudioFrame
from av.audio.resampler import AudioResampler

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


@dataclass(frozen=True)
class AudioInput:
    source_id: str
    frame: AudioFrame
    media_time: float


@dataclass(frozen=True)
class RemoveAudio:
    source_id: str


AudioItem = AudioInput | RemoveAudio


class _Converter:
    """One source's resampler, keyed by the input format it was built for."""

    def __init__(self, key: tuple[str, str, int]) -> None:
        self.key = key
        self.resampler = AudioResampler(format="flt", layout=AUDIO_LAYOUT, rate=AUDIO_RATE)

    def convert(self, frame: AudioFrame) -> Samples:
        chunks = [out.to_ndarray().reshape(-1, _CHANNELS) for out in
                  self.resampler.resample(frame)]
        if not chunks:
            return np.zeros((0, _CHANNELS), dtype=np.float32)
        return np.concatenate(chunks).astype(np.float32, copy=False)


class AudioPipeline(PipelineWorker[AudioItem]):
    def __init__(self, recording_id: str, timeline: HorizonSource, writer: MediaWriter,
                 counts: FrameCounter) -> None:
        super().__init__("audio", recording_id, timeline, INBOX_FRAMES, tick=0.01)
        self._writer = writer
        self._counts = counts
        self._mixer = AudioMixer(AUDIO_RATE, _CHANNELS, BLOCK_SAMPLES)
        self._converters: dict[str, _Converter] = {}

    def handle(self, item: AudioItem) -> None:
        if isinstance(item, RemoveAudio):
            self._converters.pop(item.source_id, None)
            self._mixer.remove(item.source_id)
            return
        frame = item.frame
        key = (frame.format.name, frame.layout.name, frame.sample_rate)
        converter = self._converters.get(item.source_id)
        if converter is None or converter.key != key:
            converter = self._converters[item.source_id] = _Converter(key)
        samples = converter.convert(frame)
        # Stamp the frame at its own position; the mixer snaps it onto the previous one.
        position = round(item.media_time * AUDIO_RATE)
        if self._mixer.add(item.source_id, samples, position):
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
