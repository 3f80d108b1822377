"""A stall in one track's delivery must not move that track in the file.

When a sender, the network or this process stalls, a track's frames arrive late and then
in a burst, but their RTP time still says when they were taken. Anchoring the track again
at the late arrival would shift everything after the stall (a flash seen a second after
its beep); the capture keeps the RTP placement instead.
"""

from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path

import pytest

from recorder.core.presets import Format, Quality
from recorder.media.capture import Capture, CaptureSpec
from tests.support.file_analysis import probe
from tests.support.synth import FakeClock, Scenario, play, tone, video_frame

FLASH = 4.0
STALL = (1.5, 3.0)  # the pictures taken in this span all arrive at its end


def push_picture(k: int, capture: Capture, now: float) -> bool:
    t = k / 30
    luma = 220 if FLASH <= t < FLASH + 0.3 else 50
    return capture.push("cam", video_frame(640, 360, luma, k * 3000), now)


def beep(first: int, n: int) -> object:
    return tone(1000, first, n, level=0.5 if FLASH <= first / 48_000 < FLASH + 0.3 else 0.0)


async def test_pictures_after_a_delivery_stall_stay_with_their_sound(tmp_path: Path) -> None:
    sc = Scenario(jitter=0.005)
    sc.audio("mic", 0.0, 5.0, beep)  # type: ignore[arg-type]
    for k in range(150):
        t = k / 30
        arrival = STALL[1] if STALL[0] <= t < STALL[1] else t
        sc.at(arrival + 0.002, partial(push_picture, k))
    clock = FakeClock()
    path = tmp_path / "r.webm"
    capture = Capture(CaptureSpec("rec-stall", path, Format.WEBM, Quality.LOW), clock=clock)
    capture.add_source("mic", "audio")
    capture.add_source("cam", "video")
    origin = clock.now
    await play(capture, sc, clock, origin)
    clock.now = origin + 5.0
    await asyncio.to_thread(capture.stop)

    p = probe(path)
    flash = p.first_bright(135)
    assert abs(flash - p.onset(FLASH - 0.5, FLASH + 0.6)) <= 0.04
    assert flash == pytest.approx(FLASH, abs=0.06)
    assert p.luma_at(3.5) == pytest.approx(50, abs=8)  # the picture goes on after the stall
