"""A pull sink for tests: records what a pull delivers and lets a test wait for it."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

from recorder.media.encoded import EncodedFrame
from recorder.rtc.publisher import Source
from recorder.rtc.receiver import Frame

WAIT = 60.0  # a hang guard on a busy machine, not a measurement


class RecordingSink:
    def __init__(self) -> None:
        self.sources: list[tuple[Source, str | None]] = []
        self.frames: Counter[str] = Counter()  # source id -> frames
        self.encoded: Counter[str] = Counter()  # source id -> frames that came undecoded
        self.keyframes: Counter[str] = Counter()  # source id -> encoded keyframes
        self.events: list[str] = []  # "lost" / "restored", in order
        self.messages: list[tuple[str, str, str | bytes]] = []  # (publisher, label, message)
        self._changed = asyncio.Event()

    def source(self, source: Source, replaces: str | None) -> None:
        self.sources.append((source, replaces))
        self._changed.set()

    def frame(self, source: Source, frame: Frame) -> None:
        self.frames[source.source_id] += 1
        if isinstance(frame, EncodedFrame):
            self.encoded[source.source_id] += 1
            self.keyframes[source.source_id] += frame.keyframe
        self._changed.set()

    def message(self, publisher_id: str, label: str, message: str | bytes) -> None:
        self.messages.append((publisher_id, label, message))
        self._changed.set()

    def lost(self, at: float) -> None:
        self.events.append("lost")
        self._changed.set()

    def restored(self, at: float) -> None:
        self.events.append("restored")
        self._changed.set()

    def frames_of(self, kind: str, generation: int | None = None) -> int:
        return sum(n for sid, n in self.frames.items()
                   if sid.split("/")[-1].startswith(kind)
                   and (generation is None or sid.split("/")[-2] == str(generation)))

    async def until(self, condition: Callable[[], bool]) -> None:
        async def wait() -> None:
            while not condition():
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(wait(), WAIT)
