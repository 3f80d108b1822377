"""Synthetic room media for capture tests: decoded frames with the timing aiortc gives.

A scenario is a list of timed actions (push a frame, pause, resume, a source leaves);
``play`` runs it against a Capture either in real time or on a fake clock. Video pts are
in 1/90000 and audio pts in 1/48000 from each track's own first frame, and arrivals carry
a little jitter, as they would from the network.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from functools import partial
from typing import Any

import numpy as np
from av.audio.frame import AudioFrame
from av.video.frame import VideoFrame

from recorder.media.capture import Capture

VIDEO_TB = Fraction(1, 90_000)
AUDIO_TB = Fraction(1, 48_000)
AUDIO_RATE = 48_000
AUDIO_FRAME = 960


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass(order=True)
class Action:
    at: float
    seq: int
    run: Callable[[Capture, float], Any] = field(compare=False)


def video_frame(width: int, height: int, luma: int, pts: int,
                uv: tuple[int, int] = (128, 128)) -> VideoFrame:
    """A flat picture of one brightness (with a gradient so it is not trivially flat);
    ``uv`` colours it (128, 128: grey)."""
    y = np.full((height, width), luma, dtype=np.uint8)
    y[:, : width // 16] = np.uint8(min(255, luma + 20))
    u = np.full((height // 4, width), uv[0], dtype=np.uint8)
    v = np.full((height // 4, width), uv[1], dtype=np.uint8)
    data = np.concatenate([y, u, v])
    frame = VideoFrame.from_ndarray(data, format="yuv420p")
    frame.pts = pts
    frame.time_base = VIDEO_TB
    return frame


def audio_frame(samples: np.ndarray[Any, Any], pts: int, layout: str = "mono") -> AudioFrame:
    """s16 samples (mono (n,) or stereo (n, 2)), as aiortc's Opus decoder delivers them."""
    pcm = np.clip(samples * 32767, -32768, 32767).astype(np.int16)
    frame = AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout=layout)
    frame.sample_rate = AUDIO_RATE
    frame.pts = pts
    frame.time_base = AUDIO_TB
    return frame


def tone(freq: float, start_sample: int, count: int, level: float = 0.3) -> np.ndarray[Any, Any]:
    n = np.arange(start_sample, start_sample + count)
    return level * np.sin(2 * math.pi * freq * n / AUDIO_RATE)


def _push_video(source: str, width: int, height: int, luma: int, pts: int,
                uv: tuple[int, int], capture: Capture, now: float) -> bool:
    return capture.push(source, video_frame(width, height, luma, pts, uv), now)


def _push_audio(source: str, frame: AudioFrame, capture: Capture, now: float) -> bool:
    return capture.push(source, frame, now)


class Scenario:
    """Timed actions, relative to t=0 (the fake clock's or the real clock's start)."""

    def __init__(self, seed: int = 1, jitter: float = 0.02) -> None:
        self.actions: list[Action] = []
        self._rng = random.Random(seed)
        self._jitter = jitter
        self.pushed = 0

    def _add(self, at: float, run: Callable[[Capture, float], Any]) -> None:
        self.actions.append(Action(at, len(self.actions), run))

    def at(self, t: float, run: Callable[[Capture, float], Any]) -> None:
        self._add(t, run)

    def video(self, source: str, start: float, end: float, *, fps: float = 30.0,
              size: Callable[[float], tuple[int, int]] = lambda t: (640, 360),
              luma: Callable[[float], int] = lambda t: 100,
              uv: tuple[int, int] = (128, 128)) -> None:
        """Frames at ``fps`` from ``start`` to ``end`` (seconds on the scenario's clock)."""
        k, last = 0, start
        while start + k / fps < end:
            t = start + k / fps
            arrival = max(last, t + self._rng.uniform(0, self._jitter))
            last = arrival
            w, h = size(t)
            pts = round((t - start) * 90_000)
            y = luma(t)
            # Frames are made when pushed, so a long scenario does not hold them all.
            self._add(arrival, partial(_push_video, source, w, h, y, pts, uv))
            self.pushed += 1
            k += 1

    def audio(self, source: str, start: float, end: float,
              signal: Callable[[int, int], np.ndarray[Any, Any]] | None = None) -> None:
        """20 ms frames; ``signal(first_sample, count)`` gives the samples (silence if None)."""
        k, last = 0, start
        while start + k * AUDIO_FRAME / AUDIO_RATE < end:
            t = start + k * AUDIO_FRAME / AUDIO_RATE
            arrival = max(last, t + self._rng.uniform(0, self._jitter))
            last = arrival
            first = k * AUDIO_FRAME
            samples = (signal(first, AUDIO_FRAME) if signal is not None
                       else np.zeros(AUDIO_FRAME))
            self._add(arrival, partial(_push_audio, source, audio_frame(samples, first)))
            self.pushed += 1
            k += 1


async def play(capture: Capture, scenario: Scenario, clock: FakeClock | None,
               origin: float, latency: float = 0.25) -> int:
    """Run the actions in order; returns how many pushes answered True (media start).

    With a fake clock, time jumps to each action, but never more than ~0.1 s ahead of
    what the encoders finished (so nothing is dropped for speed). Without one, actions
    wait for their real monotonic time.
    """
    starts = 0
    for action in sorted(scenario.actions):
        now = origin + action.at
        if clock is None:
            delay = now - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            now = time.monotonic()
        else:
            clock.now = now
            # progress is made by the encoder threads: there is no loop event to await
            ahead = capture.media_seconds - latency - 0.1
            while capture.encoded_seconds < ahead and capture.error is None:  # noqa: ASYNC110
                await asyncio.sleep(0.002)
        if action.run(capture, now) is True:
            starts += 1
    return starts


async def advance(capture: Capture, clock: FakeClock, seconds: float,
                  latency: float = 0.25) -> None:
    """Move a fake clock forward in 0.1 s steps, each once the encoders caught up (a
    single jump would look to them like falling seconds behind)."""
    end = clock.now + seconds
    while clock.now < end:
        clock.now = min(end, clock.now + 0.1)
        ahead = capture.media_seconds - latency - 0.1
        while capture.encoded_seconds < ahead and capture.error is None:  # noqa: ASYNC110
            await asyncio.sleep(0.002)
