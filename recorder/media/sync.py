"""One passthrough file's timeline, its sound the master (pure: no I/O, no threads).

A player plays a file's sound sample after sample and shows each picture when the sound
reaches its timestamp. So the sound of a file written as received must be continuous,
its timestamps those of the samples before it, and the pictures must be placed on that
sound; a publisher's microphone clock that runs 0.5 % fast (48,240 samples in each of our
seconds) then moves nothing against the pictures, where timestamps taken from our clock
would slide the sound 5 ms later every second.

:class:`AudioMaster` does that for one file. Its sound comes in segments: within one,
packet ``k`` is at the segment's start plus the samples of the packets before it, and
a hole in the RTP timestamps (a lost packet, Opus DTX) is filled with encoded silence of
its length. A segment ends only where the recording cuts (a resume after a pause), where
the sender's RTP timeline restarts (a new SSRC, an encoder restart: its timestamps step
back, or ahead by more than the time that passed; a stall of ours is none) or where
another connection of the publisher takes over (a reconnect); the next starts where the recording's
timeline puts its first frame, never before the sound already written, and the time
between is encoded silence too: a file's sound has no hole from its first packet to its
last, whatever happened in between. A picture is
placed against the latest sound by the two frames' sender wall times (RTCP sender
reports), so it lands on the sample that was captured with it; without reports, by
arrival. Pictures before a segment's first sound keep the recording's timeline, shifted
as the segment will be. Only picture timestamps are rewritten: the received sound is
written as it came.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from recorder.media.clock import with_the_sound
from recorder.media.encoded import AUDIO_CLOCK, EncodedFrame

# Opus frame sizes at 48 kHz by TOC configuration (RFC 6716 3.1): SILK 10/20/40/60 ms,
# hybrid 10/20 ms, CELT 2.5/5/10/20 ms.
_SILK: Final = (480, 960, 1920, 2880)
_HYBRID: Final = (480, 960)
_CELT: Final = (120, 240, 480, 960)
# A CELT frame whose first symbol is the silence flag decodes to silence; 0xFF 0xFE is
# such a frame. The TOC byte picks the length: full band, mono, one frame.
_SILENT_FRAME: Final = b"\xff\xfe"
SILENCE_PACKETS: Final = {960: bytes([31 << 3]) + _SILENT_FRAME,
                          480: bytes([30 << 3]) + _SILENT_FRAME,
                          240: bytes([29 << 3]) + _SILENT_FRAME,
                          120: bytes([28 << 3]) + _SILENT_FRAME}
# RTP time further back than this, or further ahead than the time that passed, is a new
# sender timeline
RESTART_SECONDS: Final = 1.0


def opus_samples(packet: bytes) -> int:
    """Samples (at 48 kHz) an Opus packet holds, from its TOC byte; 0 if malformed."""
    if not packet:
        return 0
    config, code = packet[0] >> 3, packet[0] & 0x03
    if config < 12:
        size = _SILK[config % 4]
    elif config < 16:
        size = _HYBRID[config % 2]
    else:
        size = _CELT[config % 4]
    if code == 0:
        count = 1
    elif code in (1, 2):
        count = 2
    else:
        count = packet[1] & 0x3F if len(packet) > 1 else 0
    return size * count


def silence_packets(samples: int) -> list[bytes]:
    """Opus packets of silence as long as ``samples`` (to the 2.5 ms below)."""
    packets: list[bytes] = []
    for size in sorted(SILENCE_PACKETS, reverse=True):
        while samples >= size:
            packets.append(SILENCE_PACKETS[size])
            samples -= size
    return packets


@dataclass(frozen=True, slots=True)
class Placed:
    """A frame and its file time; ``silence`` samples of silence go just before it."""

    frame: EncodedFrame
    at: float
    silence: int = 0


Cut = tuple[int, str]  # (the recording's resumes so far, publisher session)


@dataclass
class _Segment:
    cut: Cut
    source: str  # the audio source
    start: float  # file time of its first sample
    next_rtp: int  # RTP time where the next packet continues the sound
    samples: int = 0  # written since the start, silence included
    last: tuple[float | None, float, float] | None = None  # latest (ntp, wall, file time)

    @property
    def end(self) -> float:
        return self.start + self.samples / AUDIO_CLOCK


class AudioMaster:
    def __init__(self) -> None:
        self._segment: _Segment | None = None
        self._cut: Cut | None = None  # of the latest frame
        self._shift = 0.0  # file time minus recording time for this cut's first frames
        self.end = 0.0  # file time where the written sound ends

    def _enter(self, cut: Cut, at: float) -> None:
        """The first frame after a cut (or the first at all) at recording time ``at``:
        what follows may not go before the sound already written."""
        if self._cut != cut:
            self._cut = cut
            self._shift = max(0.0, self.end - at)

    def audio(self, cut: Cut, source: str, frame: EncodedFrame, at: float, wall: float
              ) -> Placed | None:
        """Place a sound packet the recording's timeline puts at file time ``at`` (``wall``
        on our clock); None: it repeats sound already written (a late duplicate)."""
        self._enter(cut, at)
        segment = self._segment
        silence = 0
        if segment is not None and (segment.cut, segment.source) == (cut, source):
            hole = self._hole(segment, frame, wall)
            if hole is None:
                return None
            if hole < 0:
                segment = None
            else:
                silence = sum(opus_samples(p) for p in silence_packets(hole))
        else:
            segment = None
        if segment is None:
            segment, silence = self._start(cut, source, frame, at)
        segment.samples += silence
        placed = Placed(frame, segment.end, silence)
        segment.last = (frame.ntp, wall, placed.at)
        size = opus_samples(frame.data) or AUDIO_CLOCK // 50
        segment.samples += size
        segment.next_rtp = frame.timestamp + size
        self.end = segment.end
        return placed

    @staticmethod
    def _hole(segment: _Segment, frame: EncodedFrame, wall: float) -> int | None:
        """Samples missing before ``frame`` in its segment's timeline; -1: the sender's
        timeline restarted (its RTP time stepped back, or ahead further than the time that
        passed: a new SSRC, an encoder restart); None: a late repeat. A stall of this
        process moves nothing: RTP time says where the sound belongs."""
        hole = frame.timestamp - segment.next_rtp
        if hole < 0:
            return None if hole > -RESTART_SECONDS * AUDIO_CLOCK else -1
        assert segment.last is not None
        if hole > (max(0.0, wall - segment.last[1]) + RESTART_SECONDS) * AUDIO_CLOCK:
            return -1
        return hole

    def _start(self, cut: Cut, source: str, frame: EncodedFrame, at: float
               ) -> tuple[_Segment, int]:
        """A segment from ``frame`` on, where the recording's timeline puts it, and the
        silence before it: the time since the sound already written (a publisher away, a
        pause while the microphone ran slow), so the file's sound stays continuous."""
        start = max(at + self._shift, self.end)
        silence = 0
        if self._segment is not None:
            silence = sum(opus_samples(p) for p in silence_packets(
                round((start - self.end) * AUDIO_CLOCK)))
            start = self.end
        self._segment = _Segment(cut, source, start, frame.timestamp)
        return self._segment, silence

    def video(self, cut: Cut, frame: EncodedFrame, at: float, wall: float) -> float:
        """File time of a picture the recording's timeline puts at file time ``at``."""
        self._enter(cut, at)
        segment = self._segment
        if segment is None or segment.last is None or segment.cut != cut:
            return at + self._shift
        ntp, sound_wall, sound_at = segment.last
        if frame.ntp is not None and ntp is not None:
            return max(0.0, with_the_sound(sound_at, ntp, frame.ntp))
        return max(0.0, sound_at + wall - sound_wall)
