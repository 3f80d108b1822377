"""``thumbnail.jpg``: the picture two seconds into a recording, 640 pixels wide.

The file is seeked to the keyframe at or before 2 s and decoded up to the first picture at
2 s or later (a shorter file gives its last picture), scaled with its aspect kept and
encoded once as JPEG. Blocking; one picture's decoding.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path
from typing import Final

import av
from av.video.frame import VideoFrame

logger = logging.getLogger(__name__)

THUMBNAIL_FILE: Final = "thumbnail.jpg"
THUMBNAIL_WIDTH: Final = 640
THUMBNAIL_AT_SECONDS: Final = 2.0


def picture_at(path: Path, at: float = THUMBNAIL_AT_SECONDS) -> VideoFrame | None:
    """The first picture at ``at`` or later (else the last one); None without video."""
    with av.open(str(path)) as container:
        if not container.streams.video:
            return None
        stream = container.streams.video[0]
        if stream.time_base is not None:
            try:
                container.seek(int(at / stream.time_base), stream=stream, backward=True)
            except av.FFmpegError:
                container.seek(0)
        picked: VideoFrame | None = None
        for frame in container.decode(stream):
            picked = frame
            if frame.time is not None and frame.time >= at:
                break
        return picked


def jpeg(frame: VideoFrame, width: int = THUMBNAIL_WIDTH) -> bytes:
    """``frame`` as a JPEG ``width`` pixels wide, its aspect kept (an even height)."""
    height = max(2, round(frame.height * width / max(1, frame.width) / 2) * 2)
    picture = frame.reformat(width=width, height=height, format="yuvj420p")
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height = width, height
    codec.pix_fmt = "yuvj420p"
    codec.time_base = Fraction(1, 25)
    packets = [*codec.encode(picture), *codec.encode(None)]
    return b"".join(bytes(p) for p in packets)


def write_thumbnail(video: Path, target: Path, width: int = THUMBNAIL_WIDTH) -> bool:
    """Write ``target`` from ``video``; False when it has no picture."""
    frame = picture_at(video)
    if frame is None or frame.width <= 0:
        return False
    temporary = target.with_name(f".{target.name}.tmp")
    temporary.write_bytes(jpeg(frame, width))
    temporary.replace(target)
    return True
