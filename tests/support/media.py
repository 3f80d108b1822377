"""Decode a recorded file with PyAV and describe what a viewer would get."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av

from tests.support.file_analysis import check_audio


@dataclass(frozen=True)
class Probe:
    video_codec: str | None
    audio_codec: str | None
    width: int
    height: int
    video_frames: int
    video_seconds: float  # last video frame end - first frame start
    audio_seconds: float
    mean_luma: float  # average luma of the decoded video (0 black .. 255 white)

    @property
    def duration(self) -> float:
        return max(self.video_seconds, self.audio_seconds)


def probe(path: Path, cuts: int | None = 0) -> Probe:
    """Decode every frame (not just headers): a file that does not decode fails here, and
    so does one whose audio has more than ``cuts`` cuts
    (:func:`tests.support.file_analysis.check_audio`)."""
    check_audio(path, cuts)
    with av.open(str(path)) as container:
        vstream = container.streams.video[0] if container.streams.video else None
        astream = container.streams.audio[0] if container.streams.audio else None
        vcodec = vstream.codec_context.name if vstream else None
        acodec = astream.codec_context.name if astream else None
        width = height = frames = 0
        v_first = v_last = a_first = a_last = None
        luma_sum = 0.0
        for frame in container.decode(*(s for s in (vstream, astream) if s is not None)):
            if not isinstance(frame, av.VideoFrame | av.AudioFrame):
                continue
            if frame.pts is None or frame.time_base is None:
                continue
            t = float(frame.pts * frame.time_base)
            if isinstance(frame, av.VideoFrame):
                width, height = frame.width, frame.height
                frames += 1
                v_first = t if v_first is None else min(v_first, t)
                v_last = t if v_last is None else max(v_last, t)
                if frames % 10 == 1:
                    luma_sum += float(frame.to_ndarray(format="gray").mean())
            else:
                end = t + frame.samples / frame.sample_rate
                a_first = t if a_first is None else min(a_first, t)
                a_last = end if a_last is None else max(a_last, end)
        fps = float(vstream.average_rate) if vstream and vstream.average_rate else 30.0
        video_seconds = (v_last - v_first + 1 / fps) if v_first is not None and v_last else 0.0
        audio_seconds = (a_last - a_first) if a_first is not None and a_last else 0.0
        samples = (frames + 9) // 10
        return Probe(vcodec, acodec, width, height, frames, video_seconds, audio_seconds,
                     luma_sum / samples if samples else 0.0)
