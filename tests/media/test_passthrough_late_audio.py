"""A passthrough file must not lose a publisher's sound because its first picture came
first: the file's streams are fixed when it opens (it waits a moment for the audio)."""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from recorder.core.presets import Format, Layout, Quality
from recorder.media.capture import CaptureSpec
from recorder.media.encoded import AUDIO_CLOCK, VIDEO_CLOCK, EncodedFrame, is_keyframe
from recorder.media.passthrough import PassthroughCapture
from recorder.media.sources import Publisher
from tests.support.file_analysis import probe

FPS = 15
SECONDS = 2.0
AUDIO_LATE = 0.3  # the microphone's first packet comes this long after the first picture


def vp8_frames() -> list[EncodedFrame]:
    encoder = av.CodecContext.create("libvpx", "w")
    encoder.width, encoder.height, encoder.pix_fmt = 320, 180, "yuv420p"
    encoder.time_base = Fraction(1, VIDEO_CLOCK)
    encoder.options = {"deadline": "realtime", "cpu-used": "8"}
    out = []
    for i in range(int(SECONDS * FPS)):
        picture = np.full((180, 320, 3), 40 + 5 * (i % 20), dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p")
        frame.pts = i * VIDEO_CLOCK // FPS
        for packet in encoder.encode(frame):
            data = bytes(packet)
            out.append(EncodedFrame("video", "vp8", data, int(packet.pts or 0), VIDEO_CLOCK,
                                    is_keyframe("vp8", data)))
    return out


def opus_frames() -> list[EncodedFrame]:
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate, encoder.layout, encoder.format = AUDIO_CLOCK, "stereo", "s16"
    encoder.time_base = Fraction(1, AUDIO_CLOCK)
    out = []
    samples = AUDIO_CLOCK // 50
    for i in range(int((SECONDS - AUDIO_LATE) * 50)):
        tone = (np.sin(np.arange(samples) * 0.05) * 8000).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(np.repeat(tone, 2).reshape(1, -1), format="s16",
                                           layout="stereo")
        frame.sample_rate, frame.pts = AUDIO_CLOCK, i * samples
        for packet in encoder.encode(frame):
            out.append(EncodedFrame("audio", "opus", bytes(packet), int(packet.pts or 0),
                                    AUDIO_CLOCK, True))
    return out


def test_a_picture_before_any_sound_keeps_the_sound(tmp_path: Path) -> None:
    path = tmp_path / "late-audio.webm"
    capture = PassthroughCapture(CaptureSpec("late-audio", path, Format.WEBM, Quality.SOURCE,
                                             Layout.COMPOSITE))
    publisher = Publisher("s1", "cam")
    video, audio = vp8_frames(), opus_frames()
    schedule = sorted([(f.seconds, "v", f) for f in video]
                      + [(AUDIO_LATE + f.seconds, "a", f) for f in audio],
                      key=lambda item: item[0])
    start = time.monotonic()
    capture.add_source("s1/video", "video", publisher)
    added_audio = False
    for at, kind, frame in schedule:
        time.sleep(max(0.0, start + at - time.monotonic()))
        if kind == "a" and not added_audio:  # a source is announced by its first frame
            capture.add_source("s1/audio", "audio", publisher)
            added_audio = True
        capture.push_encoded(f"s1/{'video' if kind == 'v' else 'audio'}", frame,
                             time.monotonic())
    result = capture.stop()
    info = probe(path)
    assert info.video_codec == "vp8"
    assert info.audio_codec == "opus", "the file has no sound"
    assert info.audio_duration > SECONDS - AUDIO_LATE - 0.3
    assert result.frames.dropped == 0
