"""CPU cost of layouts with several publishers: process CPU seconds per media second.

Not a test (no pass/fail): run ``python -m bench.layouts_cpu [seconds]``.
Each publisher sends a textured picture panning at 30 fps, 1280x720, plus 48 kHz audio,
into a ``medium`` (1280x720@30) recording, as fast as the encoders go (fake clock). The
cost of building the input frames is measured on its own in the same run and taken off.
Prints one publisher (no canvas: the decoded picture goes to the encoder as it is),
four publishers in a composite (2x2 canvas), the same four with one as a screen share,
and four in ``tracks`` (four files, four encoders).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from av.video.frame import VideoFrame

from bench.capture_cpu import FPS, _cpu, _pictures
from recorder.core.presets import Format, Layout, Quality
from recorder.media.capture import Capture, CaptureSpec
from recorder.media.compose import Compositor
from recorder.media.sources import CAMERA, SCREEN, Publisher
from tests.support.synth import AUDIO_FRAME, AUDIO_RATE, FakeClock, audio_frame, tone


def _events(publishers: int, seconds: float) -> list[tuple[float, int, int, str]]:
    # publishers a few ms apart (not half a slot: frames would land on slot boundaries)
    events = [(k / FPS + 0.007 * p, p, k, "v")
              for p in range(publishers) for k in range(int(seconds * FPS))]
    events += [(k * AUDIO_FRAME / AUDIO_RATE, p, k, "a") for p in range(publishers)
               for k in range(int(seconds * AUDIO_RATE / AUDIO_FRAME))]
    events.sort()
    return events


def _frame(pictures: list[np.ndarray[Any, Any]], p: int, k: int) -> VideoFrame:
    index = (k + 7 * p) % len(pictures)
    frame = VideoFrame.from_ndarray(pictures[index], format="yuv420p")
    frame.pts = k * 3000
    frame.time_base = Fraction(1, 90_000)
    return frame


def input_cost(pictures: list[np.ndarray[Any, Any]], publishers: int, seconds: float,
               audio: bool = True) -> float:
    """CPU seconds spent making the frames alone (what the runs below also pay)."""
    cpu0 = _cpu()
    for _, p, k, kind in _events(publishers, seconds):
        if kind == "v":
            _frame(pictures, p, k)
        elif audio:
            audio_frame(tone(440 + 100 * p, k * AUDIO_FRAME, AUDIO_FRAME), k * AUDIO_FRAME)
    return _cpu() - cpu0


def compose_cost(pictures: list[np.ndarray[Any, Any]], publishers: int, seconds: float,
                 overhead: float) -> float:
    """CPU seconds of the compositor alone: every publisher's picture new at every slot."""
    comp = Compositor(1280, 720)
    comp.arrange([f"p{p}" for p in range(publishers)])
    cpu0 = _cpu()
    for k in range(int(seconds * FPS)):
        for p in range(publishers):
            comp.show(f"p{p}", _frame(pictures, p, k))
        comp.render()
    return _cpu() - cpu0 - overhead


async def run(label: str, fmt: Format, layout: Layout, publishers: int, screen: bool,
              seconds: float, pictures: list[np.ndarray[Any, Any]], overhead: float) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"bench.{fmt.value}" if layout is Layout.COMPOSITE else Path(tmp)
        fake = FakeClock()
        capture = Capture(CaptureSpec("bench", path, fmt, Quality.MEDIUM, layout), clock=fake)
        for p in range(publishers):
            who = Publisher(f"s{p}", f"p{p}", SCREEN if screen and p == 1 else CAMERA)
            capture.add_source(f"p{p}/audio", "audio", who)
            capture.add_source(f"p{p}/video", "video", who)
        origin = fake.now
        cpu0, wall0 = _cpu(), time.monotonic()
        for t, p, k, kind in _events(publishers, seconds):
            fake.now = origin + t
            # the encoder threads make progress: there is no loop event to await
            while capture.encoded_seconds < capture.media_seconds - 0.35:  # noqa: ASYNC110
                await asyncio.sleep(0.001)
            if kind == "v":
                capture.push(f"p{p}/video", _frame(pictures, p, k), fake.now)
            else:
                first = k * AUDIO_FRAME
                capture.push(f"p{p}/audio",
                             audio_frame(tone(440 + 100 * p, first, AUDIO_FRAME), first),
                             fake.now)
        fake.now = origin + seconds
        result = await asyncio.to_thread(capture.stop)
        cpu = _cpu() - cpu0 - overhead
        wall = time.monotonic() - wall0
        size = sum(f.path.stat().st_size for f in result.files)
    media = result.duration_seconds
    print(f"{label:38} {fmt.value:4} cpu {cpu:6.2f} s = {cpu / media:5.2f} core"
          f"  wall {wall:5.1f} s  {size * 8 / media / 1e6:5.2f} Mbit/s  files {len(result.files)}"
          f"  frames {result.frames}")
    return cpu / media


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
    pictures = _pictures(60)
    one = input_cost(pictures, 1, seconds)
    four = input_cost(pictures, 4, seconds)
    print(f"input frames alone: {one / seconds:.3f} core for 1 publisher, "
          f"{four / seconds:.3f} for 4 (taken off below)")
    video_only = input_cost(pictures, 4, seconds, audio=False)
    compose = compose_cost(pictures, 4, seconds, video_only)
    print(f"compositor alone, 4 x 720p30 into a 1280x720 2x2: {compose / seconds:.3f} core "
          f"(scaled {4 * FPS} pictures/s, painted each)")
    for fmt in (Format.WEBM, Format.MP4):
        base = asyncio.run(run("1 publisher, composite", fmt, Layout.COMPOSITE, 1, False,
                               seconds, pictures, one))
        grid = asyncio.run(run("4 publishers, composite 2x2", fmt, Layout.COMPOSITE, 4, False,
                               seconds, pictures, four))
        shared = asyncio.run(run("4 publishers, composite, 1 screen", fmt, Layout.COMPOSITE,
                                 4, True, seconds, pictures, four))
        tracks = asyncio.run(run("4 publishers, tracks (4 files)", fmt, Layout.TRACKS, 4,
                                 False, seconds, pictures, four))
        print(f"  ratios to 1 publisher: composite 2x2 {grid / base:.2f}x, with a screen "
              f"{shared / base:.2f}x, tracks {tracks / base:.2f}x")


if __name__ == "__main__":
    main()
