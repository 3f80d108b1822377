"""CPU cost of a live capture: process CPU seconds per media second, by format and quality.

Not a test (no pass/fail): run ``python -m bench.capture_cpu [seconds] [--realtime]``.
The input imitates a camera: a textured picture panning at 30 fps at 1280x720, plus one
Opus-like 48 kHz audio source. Frames are generated before the clock starts counting.
Also reports whether two encoder threads run in parallel (PyAV releasing the GIL).
"""

from __future__ import annotations

import asyncio
import resource
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.video.codeccontext import VideoCodecContext
from av.video.frame import VideoFrame

from recorder.core.presets import PRESETS, Format, Quality
from recorder.media.capture import Capture, CaptureSpec
from tests.support.synth import AUDIO_FRAME, AUDIO_RATE, FakeClock, audio_frame, tone

WIDTH, HEIGHT, FPS = 1280, 720, 30


def _texture(seed: int = 7) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (HEIGHT // 8, WIDTH // 4), dtype=np.uint8)
    big = np.kron(small, np.ones((8, 8), dtype=np.uint8))  # blocky, like real detail
    ramp = np.linspace(0, 60, big.shape[1], dtype=np.float32)
    out: np.ndarray[Any, Any] = np.clip(big * 0.6 + ramp, 0, 255).astype(np.uint8)
    return out


def _pictures(count: int) -> list[np.ndarray[Any, Any]]:
    tex = _texture()
    uv = np.full((HEIGHT // 4, WIDTH), 128, dtype=np.uint8)
    out = []
    for k in range(count):
        y = np.ascontiguousarray(tex[:, 4 * k: 4 * k + WIDTH])
        out.append(np.concatenate([y, uv, uv]))
    return out


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run(fmt: Format, quality: Quality, seconds: float, realtime: bool) -> float:
    pictures = _pictures(60)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"bench.{fmt.value}"
        fake = None if realtime else FakeClock()
        clock = fake if fake is not None else time.monotonic
        capture = Capture(CaptureSpec("bench", path, fmt, quality), clock=clock)
        capture.add_source("mic", "audio")
        capture.add_source("cam", "video")
        origin = clock()
        events: list[tuple[float, int, str]] = []
        events += [(k / FPS, k, "v") for k in range(int(seconds * FPS))]
        events += [(k * AUDIO_FRAME / AUDIO_RATE, k, "a")
                   for k in range(int(seconds * AUDIO_RATE / AUDIO_FRAME))]
        events.sort()
        cpu0, wall0 = _cpu(), time.monotonic()
        for t, k, kind in events:
            now = origin + t
            if fake is None:
                await asyncio.sleep(max(0.0, now - time.monotonic()))
                now = time.monotonic()
            else:
                fake.now = now
                # the encoder threads make progress: there is no loop event to await
                while capture.encoded_seconds < capture.media_seconds - 0.35:  # noqa: ASYNC110
                    await asyncio.sleep(0.001)
            if kind == "v":
                frame = VideoFrame.from_ndarray(pictures[k % 60 if (k // 60) % 2 == 0
                                                         else 59 - k % 60], format="yuv420p")
                frame.pts = k * 3000
                frame.time_base = Fraction(1, 90_000)
                capture.push("cam", frame, now)
            else:
                first = k * AUDIO_FRAME
                capture.push("mic", audio_frame(tone(440, first, AUDIO_FRAME), first), now)
        if fake is not None:
            fake.now = origin + seconds
        result = await asyncio.to_thread(capture.stop)
        cpu, wall = _cpu() - cpu0, time.monotonic() - wall0
        size = path.stat().st_size
    p = PRESETS[quality]
    print(f"{fmt.value:5} {quality.value:6} {p.resolution:9} media {result.duration_seconds:5.1f} s"
          f"  cpu {cpu:6.2f} s  = {cpu / result.duration_seconds:5.2f} core  wall {wall:5.1f} s"
          f"  {size * 8 / result.duration_seconds / 1e6:4.2f} Mbit/s  frames {result.frames}")
    return cpu / result.duration_seconds


def _encode_burst(codec: str, frames: int) -> None:
    ctx = av.CodecContext.create(codec, "w")
    assert isinstance(ctx, VideoCodecContext)
    ctx.width, ctx.height, ctx.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    ctx.time_base = Fraction(1, FPS)
    ctx.bit_rate = 2_500_000
    ctx.options = {"preset": "veryfast", "tune": "zerolatency", "threads": "1"}
    ctx.thread_count = 1
    pictures = _pictures(frames)
    for k, data in enumerate(pictures):
        frame = VideoFrame.from_ndarray(data, format="yuv420p")
        frame.pts = k
        ctx.encode(frame)


def gil_check(frames: int = 90) -> None:
    """Two single-threaded encoders in two Python threads. Process CPU time above wall
    time proves they ran at once, i.e. PyAV released the GIL while encoding (on a
    machine shared with other work the ratio stays below 2 even then)."""
    threads = [threading.Thread(target=_encode_burst, args=("libx264", frames))
               for _ in range(2)]
    cpu0, start = _cpu(), time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall, cpu = time.monotonic() - start, _cpu() - cpu0
    print(f"GIL: two encoder threads used {cpu:.2f} s CPU in {wall:.2f} s wall "
          f"(ratio {cpu / wall:.2f}; above 1 only if they ran in parallel)")


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1][0].isdigit() else 10.0
    realtime = "--realtime" in sys.argv
    for fmt, quality in [(Format.WEBM, Quality.MEDIUM), (Format.MP4, Quality.MEDIUM),
                         (Format.MKV, Quality.MEDIUM), (Format.WEBM, Quality.LOW),
                         (Format.MP4, Quality.HIGH)]:
        asyncio.run(run(fmt, quality, seconds, realtime))
    gil_check()


if __name__ == "__main__":
    main()
