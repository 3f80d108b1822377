"""An encoded frame as a sender made it, before any decoder saw it.

Kept free of aiortc and PyAV so the room and the captures can name it cheaply. The RTP
hooks (:mod:`recorder.rtc.taps`) build these; the passthrough capture
(:mod:`recorder.media.passthrough`) writes them into files as they are.

Keyframe-ness is read from the bitstream because aiortc's reassembled frame does not carry
it: a VP8 frame tag's lowest bit is 0 on a key frame (RFC 6386 9.1); an H.264 access unit
holds an IDR slice (NAL type 5). Audio frames are all independent.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from fractions import Fraction
from typing import Final

VIDEO_CLOCK: Final = 90_000
AUDIO_CLOCK: Final = 48_000
# An Opus encoder looks 312 samples ahead (6.5 ms: libopus, in browsers and in aiortc), so
# a packet's sound is heard that long after its RTP time says: a picture taken with the
# sound of RTP time t belongs 6.5 ms after t's place in a file (docs/media.md, "Timing").
OPUS_LOOKAHEAD_SECONDS: Final = 312 / AUDIO_CLOCK
_H264_IDR: Final = 5


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    kind: str  # "audio" | "video"
    codec: str  # "vp8", "h264", "opus"
    data: bytes  # VP8 frame, H.264 Annex B access unit, or Opus packet
    timestamp: int  # RTP timestamp counted from the track's first frame, wraps unfolded
    clock_rate: int  # 90000 for video, 48000 for Opus
    keyframe: bool
    ntp: float | None = None  # sender's wall clock (seconds) by its latest RTCP SR, if any
    losses: int = 0  # times the receiver reported lost pictures so far (a PLI of its own)

    @property
    def seconds(self) -> float:
        return self.timestamp / self.clock_rate

    @property
    def time_base(self) -> Fraction:
        return _time_base(self.clock_rate)


@functools.cache
def _time_base(clock_rate: int) -> Fraction:
    """1 / clock_rate, made once per rate (a Fraction per frame costs microseconds)."""
    return Fraction(1, clock_rate)


def is_keyframe(codec: str, data: bytes) -> bool:
    """Whether a decoder can start at this frame."""
    codec = codec.lower()
    if codec == "vp8":
        return bool(data) and data[0] & 0x01 == 0
    if codec == "h264":
        return _H264_IDR in h264_nal_types(data)
    return True


def h264_nal_types(data: bytes) -> set[int]:
    """NAL unit types of an Annex B access unit (start codes 00 00 01 / 00 00 00 01)."""
    types: set[int] = set()
    i = data.find(b"\x00\x00\x01")
    while i >= 0 and i + 3 < len(data):
        types.add(data[i + 3] & 0x1F)
        i = data.find(b"\x00\x00\x01", i + 3)
    return types
