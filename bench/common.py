"""What the media benchmarks share: the cached input, the decoders, CPU clocks, the machine.

The input stands in for one WebRTC publisher: 720p30 VP8 at 2.5 Mbps plus 48 kHz stereo
Opus, encoded once with PyAV from a synthetic moving picture and a tone and kept under
``bench/.cache`` (regenerating it costs more than most runs). It is decoded the way aiortc
decodes a room's tracks (libvpx for VP8, libopus to s16 stereo), so every side of a
comparison pays the same decoding a room pays.

Each measurement runs in a child process of its own (``python -m bench.<name> --child``) so
its CPU time is its own: this box is shared, and wall time says little about our code.
"""

from __future__ import annotations

import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Final

import av
import numpy as np
from av.audio.codeccontext import AudioCodecContext
from av.audio.frame import AudioFrame
from av.video.frame import VideoFrame

CACHE: Final = Path(__file__).resolve().parent / ".cache"
WIDTH: Final = 1280
HEIGHT: Final = 720
FPS: Final = 30
VIDEO_BITRATE: Final = 2_500_000
AUDIO_RATE: Final = 48_000
AUDIO_SAMPLES: Final = 960  # one 20 ms Opus frame, what a WebRTC sender packs


def cpu_seconds() -> float:
    """User + system CPU of this process, every thread included (the encoders' too)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _picture(k: int) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """Frame ``k`` of a camera-like scene: texture panning, a bar crossing, some noise.

    Real cameras never send two identical frames (sensor noise), so neither does this: an
    encoder gets no free skipped blocks it would not get from a webcam.
    """
    rng = np.random.default_rng(k)
    y = np.arange(HEIGHT, dtype=np.float32)[:, None]
    x = np.arange(WIDTH, dtype=np.float32)[None, :]
    shift = 6.0 * k
    luma = (110 + 50 * np.sin((x + shift) / 37.0) * np.cos((y - 0.5 * shift) / 23.0)
            + 30 * np.sin((x + y + 3 * shift) / 91.0))
    bar = (k * 9) % WIDTH
    luma[:, bar: bar + 80] = 220
    luma += rng.normal(0, 3, luma.shape).astype(np.float32)
    plane_y = np.clip(luma, 16, 235).astype(np.uint8)
    u = np.full((HEIGHT // 2, WIDTH // 2), 128 + int(40 * math.sin(k / 40)), np.uint8)
    v = np.full((HEIGHT // 2, WIDTH // 2), 128 + int(40 * math.cos(k / 55)), np.uint8)
    return np.concatenate([plane_y, u.reshape(HEIGHT // 4, WIDTH),
                           v.reshape(HEIGHT // 4, WIDTH)])


def input_file(seconds: float, cache: Path = CACHE, shortest: int = 30) -> Path:
    """The cached input of at least ``seconds`` (made once, ``shortest`` seconds or more; a
    longer one serves too)."""
    cache.mkdir(exist_ok=True)
    for existing in sorted(cache.glob("input-*s.webm")):
        if int(existing.stem.split("-")[1][:-1]) >= seconds:
            return existing
    length = max(shortest, math.ceil(seconds))
    path = cache / f"input-{length}s.webm"
    partial = path.with_suffix(".part")
    print(f"making the {length} s input {path.name} (once) ...", file=sys.stderr)
    with av.open(str(partial), "w", format="webm") as container:
        video = container.add_stream("libvpx", rate=FPS, options={
            "deadline": "good", "cpu-used": "4", "lag-in-frames": "0", "auto-alt-ref": "0"})
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.bit_rate = VIDEO_BITRATE
        video.codec_context.gop_size = FPS * 3
        audio = container.add_stream("libopus", rate=AUDIO_RATE)
        audio.layout, audio.format, audio.bit_rate = "stereo", "s16", 64_000
        t = np.arange(AUDIO_RATE) / AUDIO_RATE  # one second of whole cycles: loops cleanly
        left = 0.2 * np.sin(2 * math.pi * 440 * t)
        right = 0.2 * np.sin(2 * math.pi * 660 * t)
        second = (np.stack([left, right], axis=1) * 32767).astype(np.int16)
        sent = 0  # audio frames muxed: interleaved with the video, as a network delivers
        for k in range(length * FPS):
            frame = VideoFrame.from_ndarray(_picture(k), format="yuv420p")
            frame.pts = k
            frame.time_base = Fraction(1, FPS)
            container.mux(video.encode(frame))
            while sent * AUDIO_SAMPLES <= (k + 1) * AUDIO_RATE // FPS:
                start = sent * AUDIO_SAMPLES % AUDIO_RATE
                block = np.ascontiguousarray(second[start: start + AUDIO_SAMPLES])
                sound = AudioFrame.from_ndarray(block.reshape(1, -1), format="s16",
                                                layout="stereo")
                sound.sample_rate, sound.pts = AUDIO_RATE, sent * AUDIO_SAMPLES
                sound.time_base = Fraction(1, AUDIO_RATE)
                container.mux(audio.encode(sound))
                sent += 1
        container.mux(video.encode(None))
        container.mux(audio.encode(None))
    partial.rename(path)
    return path


@dataclass(frozen=True)
class Decoded:
    """One decoded frame and its presentation time in seconds from the input's start."""

    time: float
    frame: AudioFrame | VideoFrame


def decode(path: Path, seconds: float) -> Iterator[Decoded]:
    """The input's frames up to ``seconds``, in presentation order across both tracks,
    decoded as aiortc decodes a publisher (libvpx; libopus to s16 stereo 48 kHz)."""
    video_decoder = av.CodecContext.create("libvpx", "r")
    audio_decoder = av.CodecContext.create("libopus", "r")
    assert isinstance(audio_decoder, AudioCodecContext)
    audio_decoder.format = "s16"
    audio_decoder.layout = "stereo"
    audio_decoder.sample_rate = AUDIO_RATE
    with av.open(str(path)) as container:
        for packet in container.demux():
            if packet.pts is None or packet.time_base is None:
                continue
            at = float(packet.pts * packet.time_base)
            if at >= seconds:
                continue  # the other track may still be short of the end
            is_video = packet.stream.type == "video"
            decoder = video_decoder if is_video else audio_decoder
            for frame in decoder.decode(packet):
                assert isinstance(frame, AudioFrame | VideoFrame)
                yield Decoded(at, frame)


# ---- running children and reporting ------------------------------------------------------

def run_child(module: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Run ``python -m <module> --child '<spec json>'``; its last stdout line is the result."""
    out = subprocess.run([sys.executable, "-m", module, "--child", json.dumps(spec)],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{module} {spec} failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def machine() -> str:
    """One line describing where the numbers came from."""
    model, cores = platform.processor() or "unknown CPU", os.cpu_count() or 0
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in lscpu.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Model name":
                model = value.strip()
    except OSError:
        pass
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
    import aiortc

    return (f"{model}, {cores} cores, {ram:.0f} GiB RAM, Linux {platform.release()}, "
            f"Python {platform.python_version()}, PyAV {av.__version__} "
            f"(FFmpeg {av.ffmpeg_version_info}), aiortc {aiortc.__version__}; shared with "
            f"other engineers' test runs")
