"""Colours at points of a recorded picture: which source a tile shows."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from av.video.frame import VideoFrame

YUV = tuple[float, float, float]

# Flat test colours (limited-range BT.601), far apart in YUV so VP8/H.264 at low bitrates
# cannot turn one into another.
RED: YUV = (81, 90, 240)
GREEN: YUV = (145, 54, 34)
BLUE: YUV = (41, 240, 110)
YELLOW: YUV = (210, 16, 146)
MAGENTA: YUV = (106, 202, 222)
BLACK: YUV = (16, 128, 128)
PALETTE = {"red": RED, "green": GREEN, "blue": BLUE, "yellow": YELLOW, "magenta": MAGENTA,
           "black": BLACK}


def colour_at(frame: VideoFrame, x: int, y: int, radius: int = 6) -> YUV:
    """Mean Y, U, V of a small square around (x, y)."""
    planes = []
    for index, sub in ((0, 1), (1, 2), (2, 2)):
        plane = frame.planes[index]
        rows = np.frombuffer(memoryview(plane), np.uint8).reshape(-1, plane.line_size)
        cx, cy, r = x // sub, y // sub, max(1, radius // sub)
        planes.append(float(rows[cy - r: cy + r, cx - r: cx + r].mean()))
    return planes[0], planes[1], planes[2]


def name_of(colour: YUV) -> str:
    """The palette colour nearest to ``colour``."""
    return min(PALETTE, key=lambda n: sum((a - b) ** 2 for a, b in
                                          zip(PALETTE[n], colour, strict=True)))


def names_at(path: Path, times: list[float],
             points: dict[str, tuple[int, int]]) -> dict[float, dict[str, str]]:
    """For each time, the colour name at each named point of the picture shown then."""
    wanted = sorted(times)
    found: dict[float, dict[str, str]] = {}
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            t = float(frame.time or 0.0)
            while wanted and t >= wanted[0] - 0.01:
                found[wanted.pop(0)] = {k: name_of(colour_at(frame, x, y))
                                        for k, (x, y) in points.items()}
            if not wanted:
                break
    assert not wanted, f"no pictures at {wanted}"
    return found


def video_size(path: Path) -> tuple[int, int]:
    with av.open(str(path)) as container:
        ctx = container.streams.video[0].codec_context
        return ctx.width, ctx.height
