"""Reading a recorded file back with PyAV: what a player would see.

A player plays sound back to back, sample after sample, and shows each picture when the
sound reaches its timestamp; so a file's audio must be continuous (its timestamps agree
with the samples before them) or the sound slides against the pictures.
:func:`audio_cuts` finds where it is not, and :func:`probe` refuses a file with more such
cuts than the caller expects (a pause, a source gap or a reconnect makes one each).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.audio.frame import AudioFrame
from av.video.frame import VideoFrame


@dataclass
class Probe:
    container: str
    duration: float  # container duration, seconds
    video_codec: str
    audio_codec: str
    width: int
    height: int
    fps: float  # nominal rate of the video stream
    frame_times: list[float]  # presentation time of each decoded picture
    lumas: list[float]  # mean brightness of the centre of each picture
    left_lumas: list[float]  # mean brightness of the leftmost 2% of columns
    sizes: set[tuple[int, int]]  # sizes of the decoded pictures
    keyframes: list[float]  # times of the video keyframes
    audio: np.ndarray[Any, Any]  # first channel, float, 48 kHz
    audio_start: float  # presentation time of the first decoded sample
    sample_rate: int
    audio_cuts: list[tuple[float, float]]  # (file time, jump in seconds) of each cut

    @property
    def video_duration(self) -> float:
        return len(self.frame_times) / self.fps

    @property
    def audio_duration(self) -> float:
        return len(self.audio) / self.sample_rate

    def luma_at(self, t: float) -> float:
        index = min(range(len(self.frame_times)), key=lambda i: abs(self.frame_times[i] - t))
        return self.lumas[index]

    def rms(self, start: float, end: float) -> float:
        a = int((start - self.audio_start) * self.sample_rate)
        b = int((end - self.audio_start) * self.sample_rate)
        chunk = self.audio[max(0, a): max(0, b)]
        return float(np.sqrt(np.mean(chunk ** 2))) if len(chunk) else 0.0

    def tone_level(self, freq: float, start: float, end: float) -> float:
        """Amplitude of a sine at ``freq`` in [start, end) (a single DFT bin)."""
        a = int((start - self.audio_start) * self.sample_rate)
        b = int((end - self.audio_start) * self.sample_rate)
        chunk = self.audio[max(0, a): max(0, b)]
        n = np.arange(len(chunk))
        basis = np.exp(-2j * np.pi * freq * n / self.sample_rate)
        return float(2 * abs(np.dot(chunk, basis)) / max(1, len(chunk)))

    def onset(self, after: float, before: float, window: float = 0.0025) -> float:
        """When a sound in [after, before) first reaches half its loudness (RMS over
        ``window``), so codec pre-echo before a beep does not count as the beep."""
        a = max(0, int((after - self.audio_start) * self.sample_rate))
        b = int((before - self.audio_start) * self.sample_rate)
        size = int(window * self.sample_rate)
        chunk = self.audio[a:b]
        chunk = chunk[: len(chunk) // size * size].reshape(-1, size)
        envelope = np.sqrt(np.mean(chunk ** 2, axis=1))
        if not len(envelope) or envelope.max() < 0.05:
            raise AssertionError("no sound found")
        first = int(np.nonzero(envelope >= envelope.max() / 2)[0][0])
        return self.audio_start + (a + first * size) / self.sample_rate

    def first_bright(self, threshold: float, after: float = 0.0) -> float:
        for t, luma in zip(self.frame_times, self.lumas, strict=True):
            if t >= after and luma > threshold:
                return t
        raise AssertionError("no bright picture found")

    def av_offsets(self, after: float = 0.0, threshold: float = 150) -> list[tuple[float, float]]:
        """(flash time, flash minus beep) of every flash from ``after`` on, the beep placed
        where a player plays it (by the samples before it)."""
        found: list[tuple[float, float]] = []
        while True:
            try:
                flash = self.first_bright(threshold, after=after)
            except AssertionError:
                return found
            found.append((flash, flash - self.onset(flash - 0.5, flash + 0.5)))
            after = flash + 1.0


def _place(chunks: list[np.ndarray[Any, Any]], frame: AudioFrame, start: float) -> None:
    """Add a frame's first channel after the ones before it, as a player plays them; at
    a cut (its timestamp more than 1 ms off the samples before it) where its timestamp
    says, with silence in a hole."""
    samples = frame.to_ndarray()[0]
    have = sum(len(c) for c in chunks)
    at = round((float(frame.time or 0.0) - start) * frame.sample_rate)
    if abs(at - have) > frame.sample_rate // 1000:
        if at > have:
            chunks.append(np.zeros(at - have, dtype=samples.dtype))
        else:
            joined = np.concatenate(chunks)[: max(0, at)] if chunks else samples[:0]
            chunks[:] = [joined]
    chunks.append(samples)


def centre_luma(frame: VideoFrame) -> tuple[float, float]:
    plane = frame.planes[0]
    rows = np.frombuffer(memoryview(plane), np.uint8).reshape(-1, plane.line_size)
    y = rows[: frame.height, : frame.width]
    h, w = y.shape
    centre = y[h // 4: 3 * h // 4, w // 4: 3 * w // 4]
    left = y[:, : max(1, w // 50)]
    return float(centre.mean()), float(left.mean())


def audio_cuts(path: Path, tolerance: float = 0.001) -> list[tuple[float, float]]:
    """Where a file's audio timestamps leave the count of samples before them by more than
    ``tolerance``: (file time, jump) of each, counting on from there."""
    cuts: list[tuple[float, float]] = []
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return cuts
        expected: float | None = None
        for frame in container.decode(container.streams.audio[0]):
            if frame.pts is None or frame.time_base is None:
                continue
            t = float(frame.pts * frame.time_base)
            if expected is not None and abs(t - expected) > tolerance:
                cuts.append((round(expected, 4), round(t - expected, 4)))
            expected = t + frame.samples / frame.sample_rate
    return cuts


def check_audio(path: Path, cuts: int | None) -> list[tuple[float, float]]:
    """The file's audio cuts; AssertionError when there are more than ``cuts`` (None: any
    number is fine)."""
    found = audio_cuts(path)
    if cuts is not None and len(found) > cuts:
        raise AssertionError(f"{path.name}: audio is not continuous: (file time, jump) "
                             f"{found[:10]} ({len(found)} cuts, {cuts} expected at most)")
    return found


def probe(path: Path, cuts: int | None = 0) -> Probe:
    """What a player would see of ``path``; AssertionError when its audio has more than
    ``cuts`` cuts (:func:`check_audio`)."""
    found = check_audio(path, cuts)
    with av.open(str(path)) as container:
        keyframes = [float(packet.pts * packet.time_base)
                     for packet in container.demux(video=0)
                     if packet.is_keyframe and packet.pts is not None]
    with av.open(str(path)) as container:
        vstream = container.streams.video[0]
        astream = container.streams.audio[0]
        times: list[float] = []
        lumas: list[float] = []
        lefts: list[float] = []
        sizes: set[tuple[int, int]] = set()
        chunks: list[np.ndarray[Any, Any]] = []
        audio_start: float | None = None
        for frame in container.decode(vstream, astream):
            if isinstance(frame, VideoFrame):
                times.append(float(frame.time or 0.0))
                sizes.add((frame.width, frame.height))
                centre, left = centre_luma(frame)
                lumas.append(centre)
                lefts.append(left)
            elif isinstance(frame, AudioFrame):
                if audio_start is None:
                    audio_start = float(frame.time or 0.0)
                if not frame.format.is_planar:
                    raise AssertionError("expected planar decoded audio")
                _place(chunks, frame, audio_start)
        return Probe(
            container=container.format.name,
            duration=(container.duration or 0) / 1_000_000,
            video_codec=vstream.codec_context.name,
            audio_codec=astream.codec_context.name,
            width=vstream.codec_context.width,
            height=vstream.codec_context.height,
            fps=float(vstream.average_rate or vstream.guessed_rate or 0),
            frame_times=times,
            lumas=lumas,
            left_lumas=lefts,
            sizes=sizes,
            keyframes=keyframes,
            audio=np.concatenate(chunks) if chunks else np.zeros(0),
            audio_start=audio_start or 0.0,
            sample_rate=astream.codec_context.sample_rate,
            audio_cuts=found,
        )
