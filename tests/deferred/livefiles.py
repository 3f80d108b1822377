"""Live (passthrough) files as a deferred recording leaves them, made with PyAV.

Each file is one publisher: VP8 video and Opus audio in Matroska, file time 0 at the
publisher's first frame. Pictures are dark except bright ones from each ``flashes`` time
for 0.2 s, and the audio is silent except a 1 kHz beep at the same times, so a player can
measure A/V sync from the file.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.audio.frame import AudioFrame
from av.video.frame import VideoFrame

AUDIO_RATE = 48_000
OPUS_FRAME = 960
DARK, BRIGHT = 40, 220
FLASH_SECONDS = 0.2


def _bright(t: float, flashes: tuple[float, ...]) -> bool:
    return any(f <= t < f + FLASH_SECONDS for f in flashes)


def live_file(path: Path, seconds: float, *, size: tuple[int, int] = (640, 360),
              fps: int = 30, flashes: tuple[float, ...] = (), tone_hz: float = 0.0) -> Path:
    """Write ``seconds`` of a publisher; ``tone_hz`` adds a quiet steady tone (to tell
    publishers apart in a mix)."""
    width, height = size
    with av.open(str(path), mode="w", format="matroska") as container:
        video = container.add_stream("libvpx", rate=fps, options={
            "deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"})
        assert isinstance(video, av.video.stream.VideoStream)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.bit_rate = 1_000_000
        video.codec_context.time_base = Fraction(1, fps)
        audio = container.add_stream("libopus", rate=AUDIO_RATE)
        assert isinstance(audio, av.audio.stream.AudioStream)
        audio.layout, audio.format = "stereo", "flt"
        audio.codec_context.time_base = Fraction(1, AUDIO_RATE)
        frames = int(seconds * fps)
        blocks = int(seconds * AUDIO_RATE / OPUS_FRAME)
        v = a = 0
        while v < frames or a < blocks:
            # interleave by time, as a live muxer would receive them
            if v < frames and (a >= blocks or v / fps <= a * OPUS_FRAME / AUDIO_RATE):
                luma = BRIGHT if _bright(v / fps, flashes) else DARK
                data = np.full((height * 3 // 2, width), 128, dtype=np.uint8)
                data[:height] = luma
                picture = VideoFrame.from_ndarray(data, format="yuv420p")
                picture.pts = v
                picture.time_base = Fraction(1, fps)
                container.mux(video.encode(picture))
                v += 1
            else:
                first = a * OPUS_FRAME
                n = np.arange(first, first + OPUS_FRAME)
                t = n / AUDIO_RATE
                level = np.where([_bright(x, flashes) for x in t], 0.5, 0.0)
                samples = level * np.sin(2 * math.pi * 1000 * t)
                if tone_hz:
                    samples = samples + 0.05 * np.sin(2 * math.pi * tone_hz * t)
                stereo = np.repeat(samples.astype(np.float32), 2).reshape(1, -1)
                sound = AudioFrame.from_ndarray(stereo, format="flt", layout="stereo")
                sound.sample_rate = AUDIO_RATE
                sound.pts = first
                sound.time_base = Fraction(1, AUDIO_RATE)
                container.mux(audio.encode(sound))
                a += 1
        container.mux(video.encode(None))
        container.mux(audio.encode(None))
    return path
