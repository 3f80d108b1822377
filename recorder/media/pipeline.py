"""The encoder thread shape shared by the audio and video pipelines.

Decoding, scaling, mixing and encoding cost milliseconds per frame; on the event loop they
would delay every peer's packets, so each pipeline runs in its own thread (PyAV releases
the GIL inside swscale, the encoders and the muxer). The loop only hands frames over
through a bounded inbox: when a pipeline falls behind, new frames are refused (and counted
as dropped by the caller) instead of growing memory without limit. Control messages
(source added or removed) always get in, so they are never lost to a full inbox.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections import deque
from typing import Generic, TypeVar

from recorder.media.timeline import HorizonSource

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Inbox(Generic[T]):
    """A deque with a bound for frames and none for control messages."""

    def __init__(self, capacity: int, wake_each: bool = True) -> None:
        self.capacity = capacity  # frames; the owner may raise it as sources join
        # False: a frame does not wake the taker, who comes by at its own pace (a thread
        # woken ~80 times a second per stream costs more than the muxing it does)
        self._wake_each = wake_each
        self._items: deque[T] = deque()
        self._cond = threading.Condition()
        self._woken = False

    def __len__(self) -> int:
        return len(self._items)

    def offer(self, item: T) -> bool:
        with self._cond:
            if len(self._items) >= self.capacity:
                return False
            self._items.append(item)
            if self._wake_each:
                self._cond.notify()
            return True

    def put(self, item: T) -> None:
        with self._cond:
            self._items.append(item)
            self._cond.notify()

    def wake(self) -> None:
        with self._cond:
            self._woken = True
            self._cond.notify()

    def take(self, timeout: float) -> list[T]:
        """Everything queued; waits up to ``timeout`` when empty (0: never waits)."""
        with self._cond:
            if not self._items and not self._woken and timeout > 0:
                self._cond.wait(timeout)
            self._woken = False
            items = list(self._items)
            self._items.clear()
            return items


class PipelineWorker(ABC, Generic[T], threading.Thread):
    """Drains its inbox and emits output up to the timeline's horizon, until stopped.

    The horizon is read *before* the inbox is drained: every frame due before that
    horizon was handed over before it was read, so no slot is emitted without it.
    """

    def __init__(
        self, kind: str, recording_id: str, timeline: HorizonSource, capacity: int, tick: float
    ) -> None:
        threading.Thread.__init__(self, name=f"{kind}-{recording_id[:8]}", daemon=True)
        self.kind = kind
        self.recording_id = recording_id
        self.inbox: Inbox[T] = Inbox(capacity)
        self.error: BaseException | None = None
        self.emitted = 0.0  # media seconds handed to the encoder so far
        self._timeline = timeline
        self._tick = tick

    @property
    def failed(self) -> bool:
        return self.error is not None

    def run(self) -> None:
        try:
            self._loop()
        except Exception as exc:  # any codec or muxer error ends this pipeline only
            self.error = exc
            logger.error("recording %s: %s pipeline failed: %s", self.recording_id,
                         self.kind, exc)
        finally:
            self.close()

    def _loop(self) -> None:
        while True:
            horizon = self._timeline.horizon()
            for item in self.inbox.take(0):
                self.handle(item)
            if horizon.final:
                if not horizon.aborted:
                    self.finish(horizon.until)
                return
            self.emit(horizon.until)
            for item in self.inbox.take(self._tick):
                self.handle(item)

    @abstractmethod
    def handle(self, item: T) -> None:
        """Take one inbox item (a frame or a control message)."""

    @abstractmethod
    def emit(self, until: float) -> None:
        """Encode everything due at or before media time ``until``."""

    @abstractmethod
    def finish(self, end: float) -> None:
        """Encode up to ``end`` exactly and flush the encoder."""

    def close(self) -> None:
        """Release what the thread holds; runs last, also after an error."""
