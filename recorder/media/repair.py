"""Turning the file of a killed recording into a playable one, after a restart.

A recording whose process was killed leaves a file without its trailer: a Matroska/WebM
file with no duration, cues or last (partly written) cluster, or a fragmented MP4 whose
last fragment may be cut short. Everything before that is intact, because the writer
closes a cluster or fragment at least every second and flushes it to the kernel
(:mod:`recorder.media.muxer`), so a kill loses at most the last ~1.3 s (measured).

Recovery copies every readable packet (no re-encoding: it is cheap and loses nothing)
into a new file beside the old one, which the muxer finishes properly (duration, index;
an MP4 becomes a plain one with its index in front, which every player opens). The tail
the demuxer cannot read, or reads short, is left out. The new file is then decoded from
start to end, and only when that succeeds does it replace the original, atomically: a
failure at any step (or a second kill) leaves the original as it was. A file that is
already whole comes out equivalent, so running recovery twice is harmless. A file damaged
inside (it does not decode, or more than a kill's worth is unreadable) is refused and left
as it was, since replacing it would lose what lies beyond the damage. Log lines name the
file's path, which holds the recording id.

Blocking and CPU-bound (it decodes the whole file): run it in a thread or a process.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import av
from av.container import InputContainer, OutputContainer
from av.packet import Packet
from av.stream import Stream

from recorder.core.errors import MediaError

logger = logging.getLogger(__name__)

# Muxer for each extension the recorder writes; the demuxer alone cannot tell WebM
# from Matroska.
_MUXERS: Final = {".webm": "webm", ".mkv": "matroska", ".mp4": "mp4"}
_MUXER_OPTIONS: Final = {"mp4": {"movflags": "+faststart"}}
_KINDS: Final = ("video", "audio")
# A demuxer that keeps failing without giving a packet has reached the damaged tail.
_MAX_READ_ERRORS: Final = 8
# A kill cuts at most one cluster or fragment (~1 s, ~2 MB at 15 Mbps). More unreadable
# than this is damage inside the file: replacing it would lose what lies beyond.
_MAX_UNREADABLE: Final = 8 << 20


@dataclass(frozen=True)
class RecoveredFile:
    path: Path
    duration_seconds: float  # what a player shows: first to last decoded media
    video_seconds: float  # end of the last decoded picture (0.0 if none)
    audio_seconds: float  # end of the last decoded sound (0.0 if none)
    packets: int  # packets kept
    dropped_packets: int  # packets read but left out (cut short or out of order)
    unread_bytes: int  # the original's tail after the last packet kept (a cut cluster...)


@dataclass
class _Copy:
    packets: int = 0
    dropped: int = 0
    kinds: set[str] = field(default_factory=set)
    read_until: int = 0  # end of the last packet kept, in the original's bytes
    unread_bytes: int = 0


def recover_file(path: Path) -> RecoveredFile:
    """Make the file at ``path`` playable with its real duration (see the module
    docstring). Raises MediaError, leaving the file untouched, when it holds nothing
    recoverable or the recovered copy does not decode."""
    muxer = _muxer_for(path)
    partial = path.with_name(f".{path.stem}.recovering{path.suffix}")
    partial.unlink(missing_ok=True)  # left by a recovery that was itself killed
    try:
        copy = _remux(path, partial, muxer)
        result = _verify(partial, path.name, copy)
        _replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    recovered = RecoveredFile(path, *result, copy.packets, copy.dropped, copy.unread_bytes)
    logger.info("recovered %s: %.2f s (video %.2f s, audio %.2f s), %d packets kept, "
                "%d dropped, %d bytes unreadable", path, recovered.duration_seconds,
                recovered.video_seconds, recovered.audio_seconds, copy.packets, copy.dropped,
                copy.unread_bytes)
    return recovered


def _muxer_for(path: Path) -> str:
    muxer = _MUXERS.get(path.suffix.lower())
    if muxer is None:
        raise MediaError(f"cannot recover {path.name}: not a .webm, .mkv or .mp4 file")
    if not path.is_file():
        raise MediaError(f"cannot recover {path}: no such file")
    return muxer


def _open_input(path: Path) -> InputContainer:
    try:
        return av.open(str(path), mode="r")
    except (av.FFmpegError, OSError) as exc:
        raise MediaError(f"nothing to recover in {path.name}: it has no readable header "
                         f"(killed before it was written?): {exc}") from exc


def _remux(source: Path, target: Path, muxer: str) -> _Copy:
    copy = _Copy()
    with _open_input(source) as src:
        streams = [s for s in src.streams if s.type in _KINDS]
        if not streams:
            raise MediaError(f"nothing to recover in {source.name}: no audio or video stream")
        try:
            with av.open(str(target), mode="w", format=muxer,
                         container_options=dict(_MUXER_OPTIONS.get(muxer, {}))) as out:
                _copy_packets(src, out, streams, copy)
                if copy.packets == 0:
                    raise MediaError(f"nothing to recover in {source.name}: no media was "
                                     "written before it ended")
        except (av.FFmpegError, OSError) as exc:  # a full disk, say
            raise MediaError(f"cannot write the recovered copy of {source.name}: {exc}") \
                from exc
    copy.unread_bytes = max(0, source.stat().st_size - copy.read_until)
    if copy.unread_bytes > _MAX_UNREADABLE:
        raise MediaError(f"cannot recover {source.name}: its last {copy.unread_bytes} bytes "
                         "are unreadable, more than a kill leaves; the file is left as it was")
    return copy


def _copy_packets(src: InputContainer, out: OutputContainer, streams: list[Stream],
                  copy: _Copy) -> None:
    targets = {s.index: out.add_stream_from_template(s) for s in streams}
    last_dts: dict[int, int] = {}
    for packet in _readable(src, streams):
        index = packet.stream.index
        dts = packet.dts
        if packet.is_corrupt or (dts is not None and dts < last_dts.get(index, dts)):
            copy.dropped += 1
            continue
        end = (packet.pos or 0) + packet.size
        packet.stream = targets[index]
        try:
            out.mux(packet)
        except ValueError as exc:  # e.g. a repeated timestamp; a write error is an OSError
            logger.warning("recovering %s: packet left out: %s", src.name, exc)
            copy.dropped += 1
            continue
        if dts is not None:
            last_dts[index] = dts
        copy.packets += 1
        copy.read_until = max(copy.read_until, end)
        copy.kinds.add(targets[index].type)


def _readable(src: InputContainer, streams: list[Stream]) -> Iterator[Packet[Stream]]:
    """Every packet the demuxer can read, past errors it recovers from (Matroska resyncs
    to the next cluster), until the end or a tail that only fails."""
    errors = 0
    while errors < _MAX_READ_ERRORS:
        try:
            for packet in src.demux(*streams):
                if packet.size == 0:  # the end-of-stream marker, not data
                    continue
                errors = 0
                yield packet
            return
        except (av.FFmpegError, OSError) as exc:
            errors += 1
            logger.info("recovering %s: unreadable data: %s", src.name, exc)


def _verify(path: Path, name: str, copy: _Copy) -> tuple[float, float, float]:
    """Decode the whole copy; (duration, video end, audio end) in seconds."""
    ends: dict[str, float] = {}
    packets = 0
    starts: dict[str, float] = {}  # of the latest picture, to time one with no duration
    start: float | None = None
    try:
        with av.open(str(path), mode="r") as container:
            streams = [s for s in container.streams if s.type in _KINDS]
            for packet in container.demux(*streams):
                packets += 1 if packet.size else 0
                for frame in packet.decode():
                    if not isinstance(frame, av.VideoFrame | av.AudioFrame) \
                            or frame.pts is None or frame.time_base is None:
                        continue
                    begin = float(frame.pts * frame.time_base)
                    kind = packet.stream.type
                    if isinstance(frame, av.AudioFrame):
                        length = frame.samples / frame.sample_rate
                    elif frame.duration:
                        length = float(frame.duration * frame.time_base)
                    else:  # Matroska may not say: a picture shows until the next one
                        length = max(0.0, begin - starts.get(kind, begin))
                    starts[kind] = begin
                    ends[kind] = max(ends.get(kind, 0.0), begin + length)
                    start = begin if start is None else min(start, begin)
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(f"the recovered copy of {name} does not decode: {exc}") \
            from exc
    if packets != copy.packets:
        raise MediaError(f"the recovered copy of {name} holds {packets} packets, "
                         f"not the {copy.packets} written")
    missing = copy.kinds - set(ends)
    if missing or start is None:
        raise MediaError(f"the recovered copy of {name} decodes to no "
                         f"{' or '.join(sorted(missing)) or 'media'}")
    video, audio = ends.get("video", 0.0), ends.get("audio", 0.0)
    return round(max(video, audio) - start, 3), round(video, 3), round(audio, 3)


def _replace(partial: Path, path: Path) -> None:
    """Put the verified copy in place of the original, durably and atomically."""
    shutil.copymode(path, partial)
    with partial.open("rb") as f:
        os.fsync(f.fileno())
    os.replace(partial, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
