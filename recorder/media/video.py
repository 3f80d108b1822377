"""The video pipeline: the selected source's pictures at a constant frame rate.

Senders deliver a variable frame rate (browsers drop to 15 fps in low light or under load,
screen shares send a frame only when something changes), and players and editors want a
constant one. So output slot ``n`` sits at media time ``n / fps`` and, once the media clock
passed it, shows the latest picture whose media time is at or before the slot (rounded to
the nearest slot): the last picture repeats across gaps, black fills the time before the
first one and after the last video source left, and pictures that a newer one replaced
before their slot are skipped. Each
picture is scaled once, when it first becomes visible, not once per slot.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass
from typing import Final

from av.video.frame import PictureType, VideoFrame

from recorder.media.counts import FrameCounter
from recorder.media.letterbox import Letterbox, black_frame
from recorder.media.timeline import Timeline
from recorder.media.worker import PipelineWorker
from recorder.media.writer import MediaWriter

logger = logging.getLogger(__name__)

INBOX_FRAMES: Final = 32
# Further behind than this, the encoder cannot keep up: skip slots (the last picture
# stays on screen longer) instead of falling ever further behind and stalling the stop.
MAX_LAG_SECONDS: Final = 2.0


@dataclass(frozen=True)
class VideoInput:
    source_id: str
    frame: VideoFrame | None  # None: black from this media time on
    media_time: float


@dataclass(frozen=True)
class Select:
    """From now on show this source; None: no video source is left, so after what was
    already sent the picture turns black at ``media_time`` (rather than freezing on the
    last face of someone who left)."""

    source_id: str | None
    media_time: float = 0.0


VideoItem = VideoInput | Select


class VideoPipeline(PipelineWorker[VideoItem]):
    def __init__(self, recording_id: str, timeline: Timeline, writer: MediaWriter,
                 counts: FrameCounter) -> None:
        fps = writer.preset.fps
        super().__init__("video", recording_id, timeline, INBOX_FRAMES, tick=0.5 / fps)
        self._writer = writer
        self._counts = counts
        self._fps = fps
        self._half_slot = 0.5 / fps
        self._letterbox = Letterbox(writer.preset.width, writer.preset.height)
        self._selected: str | None = None
        self._pending: deque[VideoInput] = deque()
        self._current: VideoFrame | None = None
        self._black: VideoFrame | None = None
        self._next_slot = 0
        self.skipped_slots = 0

    def handle(self, item: VideoItem) -> None:
        if isinstance(item, Select):
            self._selected = item.source_id
            if item.source_id is None:
                self._queue(VideoInput("", None, item.media_time))
            return
        if item.source_id == self._selected:
            self._queue(item)

    def _queue(self, item: VideoInput) -> None:
        pending = self._pending
        while pending and pending[-1].media_time >= item.media_time:
            pending.pop()  # a clock jump back: the later arrival replaces what it overlaps
        pending.append(item)

    def emit(self, until: float) -> None:
        # Slot n is due once pictures up to half a slot after it had time to arrive.
        due = math.floor((until - self._half_slot) * self._fps) + 1
        behind = due - self._next_slot
        if behind > MAX_LAG_SECONDS * self._fps:
            skip = behind - self._fps // 2
            logger.warning("recording %s: video encoding %.1f s behind, skipping %d slots",
                           self.recording_id, behind / self._fps, skip)
            self.skipped_slots += skip
            self._next_slot += skip
        while self._next_slot < due:
            self._emit_slot(self._next_slot)
            self._next_slot += 1

    def finish(self, end: float) -> None:
        last = max(self._next_slot, round(end * self._fps))
        while self._next_slot < last:
            self._emit_slot(self._next_slot)
            self._next_slot += 1
        self._writer.write_video(None)

    def _emit_slot(self, slot: int) -> None:
        limit = slot / self._fps + self._half_slot
        newest: VideoInput | None = None
        pending = self._pending
        while pending and pending[0].media_time <= limit:
            newest = pending.popleft()
        if newest is not None:
            if newest.frame is None:
                self._current = None
            else:
                self._current = self._letterbox.fit(newest.frame)
                self._counts.written()
        frame = self._current
        if frame is None:
            if self._black is None:
                self._black = black_frame(self._letterbox.width, self._letterbox.height)
            frame = self._black
        frame.pts = slot
        frame.time_base = self._writer.video_time_base
        # A decoded keyframe keeps its picture type, which encoders take as "force a
        # keyframe": repeated slots would all become keyframes.
        frame.pict_type = PictureType.NONE
        self._writer.write_video(frame)
        self.emitted = (slot + 1) / self._fps

    def close(self) -> None:
        self._pending.clear()
        self._current = None
