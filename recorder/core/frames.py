"""Frame counts of a capture: received from the sources, written to the files, dropped (behind,
or arrived with no stream to go to). One vocabulary for the media, the room's reports and
the service; the stored state's `frames` has the same three numbers."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FrameCounts:
    received: int = 0
    written: int = 0
    dropped: int = 0

    def __add__(self, other: FrameCounts) -> FrameCounts:
        return FrameCounts(self.received + other.received, self.written + other.written,
                           self.dropped + other.dropped)
