"""Fitting any picture into the preset's exact frame size.

Senders change resolution mid-stream (bandwidth adaptation, a rotated phone, a screen
share window resized), but a transcoded file keeps one size: each input picture is scaled
with its aspect ratio kept and centred on black. One swscale context is kept per input
geometry, because building one costs far more than using it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from av.video.frame import VideoFrame
from av.video.reformatter import VideoReformatter

# Limited-range YUV black: what decoders of WebRTC streams produce for a black picture.
BLACK_Y = 16
BLACK_UV = 128
_MAX_SCALERS = 8


@dataclass(frozen=True)
class Rect:
    x: int
    y: int
    width: int
    height: int


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def fit_rect(src_width: int, src_height: int, width: int, height: int) -> Rect:
    """Largest rectangle of the source's aspect inside ``width`` x ``height``, centred.

    Sizes and offsets are even so that the 4:2:0 chroma planes line up with luma.
    """
    scale = min(width / src_width, height / src_height)
    w = min(width, _even(src_width * scale))
    h = min(height, _even(src_height * scale))
    if abs(w - width) <= 2:
        w = width
    if abs(h - height) <= 2:
        h = height
    x = ((width - w) // 2) & ~1
    y = ((height - h) // 2) & ~1
    return Rect(x, y, w, h)


def plane_view(frame: VideoFrame, index: int) -> np.ndarray[tuple[int, int], np.dtype[np.uint8]]:
    """A writable view of one plane without its row padding."""
    plane = frame.planes[index]
    rows = np.frombuffer(memoryview(plane), np.uint8).reshape(-1, plane.line_size)
    return rows[: plane.height, : plane.width]


def black_frame(width: int, height: int) -> VideoFrame:
    frame = VideoFrame(width, height, "yuv420p")
    plane_view(frame, 0)[:] = BLACK_Y
    plane_view(frame, 1)[:] = BLACK_UV
    plane_view(frame, 2)[:] = BLACK_UV
    return frame


class Letterbox:
    """Scales input pictures into a fixed ``width`` x ``height`` yuv420p frame."""

    def __init__(self, width: int, height: int) -> None:
        self.width = width
        self.height = height
        self._scalers: dict[tuple[int, int, str], tuple[VideoReformatter, Rect]] = {}

    def fit(self, frame: VideoFrame) -> VideoFrame:
        """A new frame of the target size (the input is used as is when it already fits)."""
        if (frame.width == self.width and frame.height == self.height
                and frame.format.name == "yuv420p"):
            return frame
        key = (frame.width, frame.height, frame.format.name)
        entry = self._scalers.get(key)
        if entry is None:
            if len(self._scalers) >= _MAX_SCALERS:
                self._scalers.pop(next(iter(self._scalers)))
            entry = (VideoReformatter(),
                     fit_rect(frame.width, frame.height, self.width, self.height))
            self._scalers[key] = entry
        scaler, rect = entry
        scaled = scaler.reformat(frame, rect.width, rect.height, "yuv420p")
        if rect.width == self.width and rect.height == self.height:
            return scaled
        out = black_frame(self.width, self.height)
        for index, (x, y) in enumerate(((rect.x, rect.y), (rect.x // 2, rect.y // 2),
                                        (rect.x // 2, rect.y // 2))):
            src = plane_view(scaled, index)
            dst = plane_view(out, index)
            dst[y: y + src.shape[0], x: x + src.shape[1]] = src
        return out
