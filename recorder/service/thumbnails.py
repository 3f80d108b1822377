"""A recording's picture for the admin page: its ``thumbnail.jpg``, or a JPEG made here.

A recording folder that holds ``thumbnail.jpg`` (written when a recording is finished) is
served as it is. Otherwise the newest keyframe found in the recording's video file (the one
being written, for a live recording) is decoded and encoded as a small JPEG with PyAV, in a
thread. What a caller can make the node hold is bounded: one picture is made at a time on
a node, at most MAX_WAITING requests wait for it (others get 503), the demuxer reads at most
MAX_PACKETS packets, and each answer is cached for CACHE_SECONDS (at most CACHE_ENTRIES), so
a page refreshing every few seconds costs one decode per recording per period.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from pathlib import Path

import av
from av.video.stream import VideoStream

from recorder.core.errors import NotFound, Unavailable
from recorder.core.models import RecordingState
from recorder.media.thumbnail import jpeg

logger = logging.getLogger(__name__)

THUMBNAIL_FILE = "thumbnail.jpg"
MAX_THUMBNAIL_BYTES = 4 * 1024 * 1024
CACHE_SECONDS = 5.0
CACHE_ENTRIES = 64
MAX_WAITING = 8
MAX_PACKETS = 20_000  # demuxed (not decoded) while looking for the newest keyframe
WIDTH = 320
VIDEO_SUFFIXES = (".webm", ".mkv", ".mp4")
MAX_CANDIDATES = 16


class Thumbnails:
    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._waiting = 0
        self._cache: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._now = time.monotonic

    async def jpeg(self, state: RecordingState) -> bytes:
        """The recording's picture; NotFound when it has none on this node."""
        key = state.recording_id
        cached = self._cache.get(key)
        if cached is not None and self._now() - cached[0] < CACHE_SECONDS:
            return cached[1]
        if self._waiting >= MAX_WAITING:
            raise Unavailable("thumbnails: too many requests waiting", retry_after=1)
        self._waiting += 1
        try:
            async with self._lock:
                cached = self._cache.get(key)
                if cached is not None and self._now() - cached[0] < CACHE_SECONDS:
                    return cached[1]
                picture = await asyncio.to_thread(make_thumbnail, state)
        finally:
            self._waiting -= 1
        self._cache[key] = (self._now(), picture)
        self._cache.move_to_end(key)
        while len(self._cache) > CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return picture


def make_thumbnail(state: RecordingState) -> bytes:
    """Blocking: the stored thumbnail, else a JPEG of the newest keyframe of a video file."""
    folder = Path(state.local_path)
    stored = folder / THUMBNAIL_FILE
    if stored.is_file() and not stored.is_symlink():
        if stored.stat().st_size > MAX_THUMBNAIL_BYTES:
            raise NotFound(f"recording {state.recording_id}: {THUMBNAIL_FILE} is too large")
        return stored.read_bytes()
    for path in _candidates(state, folder):
        try:
            picture = _keyframe_jpeg(path)
        except (av.FFmpegError, OSError, ValueError) as exc:
            logger.info("recording %s: no picture from %s: %s", state.recording_id, path.name,
                        type(exc).__name__)
            continue
        if picture is not None:
            return picture
    raise NotFound(f"recording {state.recording_id} has no picture on this node")


def _candidates(state: RecordingState, folder: Path) -> list[Path]:
    """The recording's files, main file first, then other video files of its folder."""
    names = [state.file_name, *(f.name for f in state.files)]
    try:
        names += sorted(p.name for p in folder.iterdir() if p.suffix in VIDEO_SUFFIXES)
    except OSError:
        return []
    seen: list[Path] = []
    for name in names:
        path = folder / name
        if path not in seen and path.suffix in VIDEO_SUFFIXES and path.is_file() \
                and not path.is_symlink():
            seen.append(path)
    return seen[:MAX_CANDIDATES]


def _keyframe_jpeg(path: Path) -> bytes | None:
    with av.open(str(path), "r") as container:
        streams = [s for s in container.streams.video if isinstance(s, VideoStream)]
        if not streams:
            return None
        stream = streams[0]
        last = None
        for count, packet in enumerate(container.demux(stream)):
            if packet.is_keyframe and packet.size:
                last = packet
            if count >= MAX_PACKETS:
                break
        if last is None:
            return None
        decoder = av.CodecContext.create(stream.codec_context.name, "r")
        if stream.codec_context.extradata:
            decoder.extradata = stream.codec_context.extradata
        frames = [*decoder.decode(last), *decoder.decode(None)]  # type: ignore[attr-defined]
    if not frames:
        return None
    return jpeg(frames[0], WIDTH)
