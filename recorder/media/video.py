"""The video pipeline: every shown source's pictures at a constant frame rate.

Senders deliver a variable frame rate (browsers drop to 15 fps in low light or under load,
screen shares send a frame only when something changes), and players and editors want a
constant one. So output slot ``n`` sits at media time ``n / fps`` and, once the media clock
passed it, shows for each source the latest picture whose media time is at or before the
slot (rounded to the nearest slot): a source's last picture repeats across its gaps,
pictures that a newer one replaced before their slot are skipped, and black fills a tile
before its source's first picture and the whole frame while no video source is present
(rather than freezing on the last face of someone who left).

Which sources are shown, and where, changes at media times too (:class:`Arrange`, sent as
publishers join and leave), so a re-flow lands in the file exactly when it happened.
Drawing is :class:`recorder.media.compose.Compositor`'s: each picture is scaled once, when
it first becomes visible, not once per slot.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass
from typing import Final

from av.video.frame import PictureType, VideoFrame

from recorder.media.compose import Compositor
from recorder.media.counts import FrameCounter
from recorder.media.muxer import MediaWriter
from recorder.media.pipeline import PipelineWorker
from recorder.media.timeline import HorizonSource

logger = logging.getLogger(__name__)

INBOX_FRAMES: Final = 32  # per shown source
# Further behind than this, the encoder cannot keep up: skip slots (the last picture
# stays on screen longer) instead of falling ever further behind and stalling the stop.
MAX_LAG_SECONDS: Final = 2.0


@dataclass(frozen=True)
class VideoInput:
    source_id: str
    frame: VideoFrame
    media_time: float


@dataclass(frozen=True)
class Arrange:
    """From ``media_time`` on show ``sources`` (join order), ``featured`` in the large
    tile; no sources: black."""

    sources: tuple[str, ...]
    featured: str | None = None
    media_time: float = 0.0


VideoItem = VideoInput | Arrange


class VideoPipeline(PipelineWorker[VideoItem]):
    def __init__(self, recording_id: str, timeline: HorizonSource, writer: MediaWriter,
                 counts: FrameCounter) -> None:
        fps = writer.preset.fps
        super().__init__("video", recording_id, timeline, INBOX_FRAMES, tick=0.5 / fps)
        self._writer = writer
        self._counts = counts
        self._fps = fps
        self._half_slot = 0.5 / fps
        self.compositor = Compositor(writer.preset.width, writer.preset.height)
        self._pending: dict[str, deque[VideoInput]] = {}
        self._arrangements: deque[Arrange] = deque()
        self._announced: frozenset[str] = frozenset()  # sources of the latest Arrange
        self._next_slot = 0
        self.skipped_slots = 0

    def handle(self, item: VideoItem) -> None:
        if isinstance(item, Arrange):
            arrangements = self._arrangements
            while arrangements and arrangements[-1].media_time >= item.media_time:
                arrangements.pop()  # superseded before it was shown
            arrangements.append(item)
            self._announced = frozenset(item.sources)
            return
        pending = self._pending.get(item.source_id)
        if pending is None:
            pending = self._pending[item.source_id] = deque()
        while pending and pending[-1].media_time >= item.media_time:
            pending.pop()  # a clock jump back: the later arrival replaces what it overlaps
        pending.append(item)

    def emit(self, until: float) -> None:
        # Slot n is due once pictures up to half a slot after it had time to arrive: on the
        # clock's horizon, or sooner once every shown source sent a picture after it.
        until = max(until, self._arrived())
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

    def _arrived(self) -> float:
        """Media time before which no shown source can send another picture (0.0: some shown
        source has none waiting).

        A source's pictures arrive in order, so once its newest picture is past a slot,
        that slot has all it will get. Emitting then, rather than a latency later, keeps a
        source's decoded pictures waiting for a fraction of that latency: each 720p picture
        is 1.4 MB (docs/architecture.md, "Room workers").
        """
        newest = []
        for source_id in self._announced:
            pending = self._pending.get(source_id)
            if not pending:
                return 0.0
            newest.append(pending[-1].media_time)
        return min(newest, default=0.0)

    def finish(self, end: float) -> None:
        last = max(self._next_slot, round(end * self._fps))
        while self._next_slot < last:
            self._emit_slot(self._next_slot)
            self._next_slot += 1
        self._writer.write_video(None)

    def _emit_slot(self, slot: int) -> None:
        limit = slot / self._fps + self._half_slot
        arrangement: Arrange | None = None
        while self._arrangements and self._arrangements[0].media_time <= limit:
            arrangement = self._arrangements.popleft()
        if arrangement is not None:
            self.compositor.arrange(arrangement.sources, arrangement.featured)
        for source_id, pending in list(self._pending.items()):
            newest: VideoInput | None = None
            while pending and pending[0].media_time <= limit:
                newest = pending.popleft()
            if newest is not None and self.compositor.show(source_id, newest.frame):
                self._counts.written()
            if not pending and source_id not in self._announced:
                del self._pending[source_id]  # it left and everything it sent is placed
                self.compositor.forget(source_id)
        frame = self.compositor.render()
        frame.pts = slot
        frame.time_base = self._writer.video_time_base
        # A decoded keyframe keeps its picture type, which encoders take as "force a
        # keyframe": repeated slots would all become keyframes.
        frame.pict_type = PictureType.NONE
        self._writer.write_video(frame)
        self.emitted = (slot + 1) / self._fps

    def close(self) -> None:
        self._pending.clear()
        self._arrangements.clear()
