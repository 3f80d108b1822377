"""Re-encoding inside a passthrough file: a track whose codec is not the format's (an H.264
publisher into webm, Opus into mp4) is decoded and encoded at its incoming size with
``medium``'s bitrates, in the file's own thread (:mod:`recorder.media.passthrough_file`).

Each re-encoder owns its decoder and the output stream's encoder and answers with the
packets to mux, so the file only routes frames and muxes what comes back.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from typing import Any, Final

import av
import numpy as np
from av.audio.resampler import AudioResampler
from av.audio.stream import AudioStream
from av.codec.context import CodecContext
from av.packet import Packet
from av.stream import Stream
from av.video.stream import VideoStream

from recorder.media.encoded import AUDIO_CLOCK, VIDEO_CLOCK, EncodedFrame

logger = logging.getLogger(__name__)

DECODERS: Final = {"vp8": "libvpx", "h264": "h264", "opus": "libopus"}
VIDEO_TB: Final = Fraction(1, VIDEO_CLOCK)
AUDIO_TB: Final = Fraction(1, AUDIO_CLOCK)
MAX_SILENCE_SAMPLES: Final = 10 * AUDIO_CLOCK  # the longest hole filled at once


class VideoReencoder:
    def __init__(self, recording_id: str, codec: str, stream: VideoStream) -> None:
        self._rid = recording_id
        self._stream = stream
        self._decoder: Any = CodecContext.create(DECODERS[codec], "r")  # typed per kind

    def encode(self, frame: EncodedFrame, pts: int) -> list[Packet[Stream]]:
        packet = Packet(frame.data)
        packet.pts = pts
        packet.time_base = VIDEO_TB
        try:
            pictures = self._decoder.decode(packet)
        except av.FFmpegError as exc:  # a lost reference: the next keyframe mends it
            logger.info("recording %s: a %s frame did not decode: %s", self._rid,
                        frame.codec, exc)
            return []
        stream = self._stream
        out: list[Packet[Stream]] = []
        for picture in pictures:
            if not isinstance(picture, av.VideoFrame):
                continue
            if (picture.width, picture.height) != (stream.width, stream.height) \
                    or picture.format.name != "yuv420p":
                picture = picture.reformat(stream.width, stream.height, "yuv420p")
            picture.pts = pts
            picture.time_base = VIDEO_TB
            picture.pict_type = av.video.frame.PictureType.NONE
            out.extend(stream.encode(picture))
        return out

    def flush(self) -> list[Packet[Stream]]:
        return list(self._stream.encode(None))


class AudioReencoder:
    """Opus decoded, resampled into the encoder's frame size (AAC takes 1024 samples), with
    holes in the sound filled by silence so the picture stays in step."""

    def __init__(self, stream: AudioStream) -> None:
        self._stream = stream
        self._decoder: Any = CodecContext.create(DECODERS["opus"], "r")
        self._resampler = AudioResampler(format="fltp", layout="stereo", rate=AUDIO_CLOCK,
                                         frame_size=1024)
        self._next_pts: int | None = None

    def encode(self, frame: EncodedFrame, pts: int) -> list[Packet[Stream]]:
        packet = Packet(frame.data)
        packet.pts = pts
        packet.time_base = AUDIO_TB
        out: list[Packet[Stream]] = []
        for sound in self._decoder.decode(packet):
            if not isinstance(sound, av.AudioFrame):
                continue
            if self._next_pts is None:
                self._next_pts = pts
            gap = pts - self._next_pts
            if gap > 2 * sound.samples:  # a hole in the sound: silence keeps A/V in step
                out.extend(self._encode(_silence(sound, min(gap, MAX_SILENCE_SAMPLES))))
            out.extend(self._encode(sound))
        return out

    def flush(self) -> list[Packet[Stream]]:
        out: list[Packet[Stream]] = []
        for frame in self._resampler.resample(None):
            frame.pts = self._next_pts
            out.extend(self._stream.encode(frame))
        out.extend(self._stream.encode(None))
        return out

    def _encode(self, sound: av.AudioFrame) -> list[Packet[Stream]]:
        sound.pts = None
        out: list[Packet[Stream]] = []
        for resampled in self._resampler.resample(sound):
            resampled.pts = self._next_pts
            resampled.time_base = AUDIO_TB
            self._next_pts = (self._next_pts or 0) + resampled.samples
            out.extend(self._stream.encode(resampled))
        return out


def _silence(like: av.AudioFrame, samples: int) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(
        np.zeros((len(like.layout.channels) if like.format.is_planar else 1,
                  samples * (1 if like.format.is_planar else len(like.layout.channels))),
                 dtype=like.to_ndarray().dtype),
        format=like.format.name, layout=like.layout.name)
    frame.sample_rate = like.sample_rate
    return frame
