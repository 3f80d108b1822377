"""When the video pipeline hands a slot to the encoder, and what it keeps waiting meanwhile.

A slot is due on the clock's horizon (the media clock minus the capture's latency), or
sooner once every shown source sent a picture past it: decoded pictures (1.4 MB each at
720p) then wait a frame or two, not the whole latency.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from av.video.frame import VideoFrame

from recorder.core.presets import PRESETS, Quality
from recorder.media.counts import FrameCounter
from recorder.media.timeline import Horizon
from recorder.media.video import Arrange, VideoInput, VideoPipeline
from tests.support.synth import video_frame

FPS = PRESETS[Quality.LOW].fps  # pictures at the output rate: one per slot


@dataclass
class StillHorizon:
    until: float = 0.0

    def horizon(self) -> Horizon:
        return Horizon(self.until, final=False)


@dataclass
class Encoder:
    """Stands in for the file's writer: keeps the slots it is handed."""

    preset = PRESETS[Quality.LOW]
    video_time_base = 1
    slots: list[int] = field(default_factory=list)

    def write_video(self, frame: VideoFrame | None) -> None:
        if frame is not None:
            self.slots.append(int(frame.pts or 0))


def pipeline(horizon: StillHorizon) -> tuple[VideoPipeline, Encoder]:
    encoder = Encoder()
    video = VideoPipeline("rec-slots", horizon, encoder, FrameCounter())  # type: ignore[arg-type]
    return video, encoder


def picture(source_id: str, k: int) -> VideoInput:
    return VideoInput(source_id, video_frame(64, 36, 80, k * 3000), k / FPS)


def test_a_sources_next_picture_releases_the_slot_before_it() -> None:
    horizon = StillHorizon()  # the clock's horizon never moves: only arrivals release slots
    video, encoder = pipeline(horizon)
    video.handle(Arrange(("cam",)))
    for k in range(10):
        video.handle(picture("cam", k))
        video.emit(horizon.until)
        assert encoder.slots == list(range(k)), k  # slot k waits for picture k + 1
    assert len(video._pending["cam"]) == 1  # the newest picture only


def test_a_shown_source_without_a_picture_holds_slots_for_the_clock() -> None:
    horizon = StillHorizon()
    video, encoder = pipeline(horizon)
    video.handle(Arrange(("cam", "screen")))
    for k in range(10):
        video.handle(picture("cam", k))
        video.emit(horizon.until)
    assert encoder.slots == []  # the screen share may still send for these slots
    horizon.until = 5 / FPS + 0.5 / FPS
    video.emit(horizon.until)
    assert encoder.slots == list(range(6))
