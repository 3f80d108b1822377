"""Frame accounting shared by the event loop (received, refused) and the encoder threads.

What each number means, so that they stay honest:

- ``received``: frames pushed while the recording runs and placed on its timeline (frames
  cut by a pause, or pushed before the start or after the stop, are not counted);
- ``written``: received frames that reached a file. An audio frame counts when its
  samples enter the mix. A video frame counts when it is shown in at least one output
  slot of the constant frame rate (every video source has a tile in its file);
- ``dropped``: received frames lost because a pipeline fell behind (its inbox was full)
  or failed, and audio frames that came after their place was mixed (the process stalled
  for longer than the capture's latency).

The rest of ``received`` is neither written nor dropped: video frames superseded by a newer
frame before their slot came (the sender's rate is above the preset's, or a source's
frames came before its tile did).
"""

from __future__ import annotations

import threading

from recorder.core.frames import FrameCounts


class FrameCounter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._received = 0
        self._written = 0
        self._dropped = 0

    def received(self) -> None:
        with self._lock:
            self._received += 1

    def written(self, count: int = 1) -> None:
        with self._lock:
            self._written += count

    def dropped(self, count: int = 1) -> None:
        with self._lock:
            self._dropped += count

    def snapshot(self) -> FrameCounts:
        with self._lock:
            return FrameCounts(self._received, self._written, self._dropped)
