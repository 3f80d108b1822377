from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from av.video.frame import VideoFrame

from recorder.media.letterbox import Letterbox, Rect, fit_rect
from tests.support.synth import video_frame


@pytest.mark.parametrize(("src", "dst", "rect"), [
    ((1280, 720), (854, 480), Rect(0, 0, 854, 480)),
    ((640, 480), (1280, 720), Rect(160, 0, 960, 720)),
    ((720, 1280), (1920, 1080), Rect(656, 0, 608, 1080)),
    ((1920, 800), (1280, 720), Rect(0, 92, 1280, 534)),
])
def test_fit_keeps_the_aspect_ratio_centred_on_even_pixels(
        src: tuple[int, int], dst: tuple[int, int], rect: Rect) -> None:
    assert fit_rect(*src, *dst) == rect


def _luma(frame: VideoFrame) -> npt.NDArray[np.uint8]:
    plane = frame.planes[0]
    rows = np.frombuffer(memoryview(plane), np.uint8).reshape(-1, plane.line_size)
    return rows[: frame.height, : frame.width]


def test_fit_scales_into_the_canvas_with_black_bars() -> None:
    box = Letterbox(1280, 720)
    out = box.fit(video_frame(640, 480, 200, 0))
    assert (out.width, out.height, out.format.name) == (1280, 720, "yuv420p")
    y = _luma(out)
    assert y[:, :150].max() == 16  # bar
    assert y[:, 1140:].max() == 16
    assert abs(int(y[360, 640]) - 200) <= 2  # picture
    # a size change reuses nothing stale
    out2 = box.fit(video_frame(1920, 1080, 90, 1))
    assert abs(int(_luma(out2)[360, 10]) - 110) <= 3  # no bar: 16:9 fills it
    assert abs(int(_luma(out2)[360, 640]) - 90) <= 2
