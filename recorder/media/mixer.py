"""Placing every audio source on the media timeline and summing them.

A source's samples are put where its wall time says, but kept contiguous: packet jitter
and rounding move a frame's computed position by a few milliseconds, and honouring those
would click (overlaps) or crackle (tiny holes). So a frame within ``snap`` of where the
previous one ended continues it exactly; only a real gap (packet loss, a muted sender)
becomes silence, and a real overlap (a sender clock jump backwards) is trimmed. Blocks are
mixed in order; a block nobody spoke in is silence, so the track covers the whole file.
Pure numpy, no threads or clocks: the audio pipeline drives it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

Samples = npt.NDArray[np.float32]  # shape (n, channels), float32 in [-1, 1]

SNAP_SECONDS = 0.04


def _empty(channels: int) -> Samples:
    return np.zeros((0, channels), dtype=np.float32)


@dataclass
class _Source:
    channels: int
    start: int = 0  # timeline index of pending[0]
    pending: Samples = field(default_factory=lambda: _empty(2))
    next_index: int | None = None  # where the next frame continues, once one came
    leaving: bool = False


class AudioMixer:
    def __init__(self, rate: int = 48_000, channels: int = 2, block: int = 960,
                 snap_seconds: float = SNAP_SECONDS) -> None:
        self.rate = rate
        self.channels = channels
        self.block = block
        self._snap = int(snap_seconds * rate)
        self._sources: dict[str, _Source] = {}
        self.mixed = 0  # timeline index up to which blocks were produced

    @property
    def sources(self) -> int:
        return len(self._sources)

    def add(self, source_id: str, samples: Samples, position: int) -> int:
        """Queue ``samples`` of a source at timeline index ``position`` (snapped).

        Returns how many samples were kept (0: all of it was too late or empty).
        """
        src = self._sources.get(source_id)
        if src is None:
            src = self._sources[source_id] = _Source(self.channels,
                                                     pending=_empty(self.channels))
        src.leaving = False
        if src.next_index is not None and abs(position - src.next_index) <= self._snap:
            position = src.next_index
        # Whatever lands before what was already mixed or queued is dropped from the head.
        floor = max(self.mixed, src.start + len(src.pending)) if len(src.pending) else self.mixed
        if position < floor:
            samples = samples[floor - position:]
            position = floor
        if not len(samples):
            return 0
        if not len(src.pending):
            src.start = position
            src.pending = np.ascontiguousarray(samples, dtype=np.float32)
        else:
            end = src.start + len(src.pending)
            parts = [src.pending]
            if position > end:
                parts.append(np.zeros((position - end, self.channels), dtype=np.float32))
            parts.append(samples.astype(np.float32, copy=False))
            src.pending = np.concatenate(parts)
        src.next_index = position + len(samples)
        return len(samples)

    def remove(self, source_id: str) -> None:
        """The source left: what it already sent is still mixed, then it is forgotten."""
        src = self._sources.get(source_id)
        if src is None:
            return
        if len(src.pending):
            src.leaving = True
        else:
            del self._sources[source_id]

    def mix_block(self, size: int | None = None) -> Samples:
        """The next block of the mix (``size`` samples, default one block), clipped."""
        size = self.block if size is None else size
        begin, end = self.mixed, self.mixed + size
        out = np.zeros((size, self.channels), dtype=np.float32)
        for source_id, src in list(self._sources.items()):
            have = len(src.pending)
            if have:
                lo = max(begin, src.start)
                hi = min(end, src.start + have)
                if hi > lo:
                    out[lo - begin: hi - begin] += src.pending[lo - src.start: hi - src.start]
                if src.start + have <= end:
                    src.pending = src.pending[:0]
                    src.start = end
                elif src.start < end:
                    src.pending = src.pending[end - src.start:]
                    src.start = end
            if src.leaving and not len(src.pending):
                del self._sources[source_id]
        self.mixed = end
        np.clip(out, -1.0, 1.0, out=out)
        return out
