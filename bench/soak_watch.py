"""A/V offsets of a file while it is being written, for the soak.

Decoding an hour-long file again every minute would cost the soak more than the recorder
it watches; so each file is read once, as it grows: :class:`GrowingFile` hands PyAV the
bytes written so far and waits for more instead of ending (the files are written to
survive a kill: Matroska clusters flushed as they close), and a thread decodes it as a
player would. The sound is placed sample after sample (at a cut, by its timestamp, as
``tests.support.file_analysis`` does); a flash is the first picture whose centre turns
bright, a beep the first 2.5 ms whose loudness reaches half a beep's. Each flash is
paired with the beep nearest it within half a second: the offset is flash minus beep.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.audio.frame import AudioFrame
from av.video.frame import VideoFrame

from tests.support.file_analysis import centre_luma

logger = logging.getLogger(__name__)

BRIGHT = 150.0  # centre luma of a flash (the pictures are grey, about 60)
LOUD = 0.28  # RMS of half a beep (0.8 peak); the tone under it is 0.07
WINDOW = 120  # samples in a loudness window: 2.5 ms at 48 kHz
PAIR_SECONDS = 0.5
POLL_SECONDS = 0.2


class GrowingFile:
    """A file being written, read as a stream that ends only once ``done`` is set."""

    def __init__(self, path: Path, done: threading.Event) -> None:
        self._file = path.open("rb")
        self._done = done

    def read(self, size: int = -1) -> bytes:
        while True:
            data = self._file.read(size if size > 0 else 1 << 16)
            if data:
                return data
            if self._done.is_set():
                return self._file.read(size if size > 0 else 1 << 16)
            time.sleep(POLL_SECONDS)

    def close(self) -> None:
        self._file.close()


class FileWatch(threading.Thread):
    def __init__(self, path: Path, done: threading.Event) -> None:
        super().__init__(name=f"watch-{path.name}", daemon=True)
        self.path = path
        self._done = done
        self.flashes: list[float] = []
        self.beeps: list[float] = []
        self.error: str | None = None
        self._bright = False
        self._loud = False
        self._samples = 0  # placed so far
        self._audio_start: float | None = None
        self._pending = np.zeros(0, dtype=np.float32)

    def offsets(self, since: float = 0.0) -> list[tuple[float, float]]:
        """(flash time, flash minus nearest beep) of the flashes from ``since`` on."""
        beeps = list(self.beeps)
        found = []
        for flash in list(self.flashes):
            near = [b for b in beeps if abs(b - flash) <= PAIR_SECONDS]
            if flash >= since and near:
                found.append((flash, flash - min(near, key=lambda b: abs(b - flash))))
        return found

    def run(self) -> None:
        source = GrowingFile(self.path, self._done)
        try:
            with av.open(source, mode="r", format=None) as container:
                streams = [*container.streams.video[:1], *container.streams.audio[:1]]
                for frame in container.decode(*streams):
                    if isinstance(frame, VideoFrame):
                        self._picture(frame)
                    elif isinstance(frame, AudioFrame):
                        self._sound(frame)
        except Exception as exc:  # a soak reports what it could not read and goes on
            self.error = f"{type(exc).__name__}: {exc}"
            logger.warning("%s: %s", self.path.name, self.error)
        finally:
            source.close()

    def _picture(self, frame: VideoFrame) -> None:
        bright = centre_luma(frame)[0] > BRIGHT
        if bright and not self._bright and frame.time is not None:
            self.flashes.append(float(frame.time))
        self._bright = bright

    def _sound(self, frame: AudioFrame) -> None:
        if frame.time is None:
            return
        if self._audio_start is None:
            self._audio_start = float(frame.time)
        rate = frame.sample_rate
        at = round((float(frame.time) - self._audio_start) * rate)
        have = self._samples + len(self._pending)
        samples: Any = frame.to_ndarray()[0].astype(np.float32)
        if abs(at - have) > rate // 1000 and at > have:  # a cut: silence where it skips
            samples = np.concatenate([np.zeros(at - have, dtype=np.float32), samples])
        self._pending = np.concatenate([self._pending, samples])
        whole = len(self._pending) // WINDOW * WINDOW
        if not whole:
            return
        blocks = self._pending[:whole].reshape(-1, WINDOW)
        for k, level in enumerate(np.sqrt(np.mean(blocks ** 2, axis=1))):
            loud = bool(level >= LOUD)
            if loud and not self._loud:
                self.beeps.append(self._audio_start + (self._samples + k * WINDOW) / rate)
            self._loud = loud
        self._samples += whole
        self._pending = self._pending[whole:]
