"""A WebVTT subtitle track with the chat, added to a finished Matroska or WebM file.

Why after the capture and not while it writes: a cue's end is the next message (or 4 s),
known only later, and a sparse subtitle stream in FFmpeg's interleaving queue holds the
audio and video packets back until it has a packet too (up to ``max_interleave_delta``, 10 s
by default), which would break the two-second kill guarantee. So the live file is written
as before, and when it is final it is copied packet by packet (no decoding) into a file
beside it with one more stream, ``webvtt`` (Matroska's ``S_TEXT/WEBVTT``, WebM's
``D_WEBVTT/SUBTITLES``), whose packets are the cues' payloads at their times; the copy then
replaces the file in one rename. A kill during the copy leaves the original whole (the
half-written copy is a dot-file that nothing lists); a killed recording gets its track when
it is recovered, from ``events.jsonl``. MP4 keeps the chat beside it only (``chat.vtt``):
a text track in fragmented MP4 is not something every player reads.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Final

import av
from av.container import InputContainer, OutputContainer
from av.packet import Packet
from av.stream import Stream

from recorder.core.captions import VTT_HEADER, Cue

logger = logging.getLogger(__name__)

SUBTITLE_TIME_BASE: Final = Fraction(1, 1000)
MUXERS: Final = {".mkv": "matroska", ".webm": "webm"}


def takes_subtitles(path: Path) -> bool:
    return path.suffix in MUXERS


def add_subtitles(path: Path, file_cues: Iterable[Cue], language: str = "und") -> int:
    """Rewrite ``path`` with a subtitle track of ``file_cues`` (file time, in order); the
    number of cues written (0: the file is left as it was). Blocking."""
    cue_iter = iter(file_cues)
    first = next(cue_iter, None)
    if first is None or not takes_subtitles(path):
        return 0
    temporary = path.with_name(f".{path.name}.subtitles")
    try:
        written = _copy_with(path, temporary, _chain(first, cue_iter), language)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return written


def _chain(first: Cue, rest: Iterator[Cue]) -> Iterator[Cue]:
    yield first
    yield from rest


def _template() -> InputContainer:
    """A WebVTT stream to copy the subtitle stream's parameters from (PyAV opens no encoder
    for a copied stream, and FFmpeg's webvtt encoder wants an ASS header)."""
    container = av.open(io.BytesIO(VTT_HEADER.encode()), format="webvtt")
    assert isinstance(container, InputContainer)
    return container


def _copy_with(source: Path, target: Path, cue_iter: Iterator[Cue], language: str) -> int:
    written = 0
    with av.open(str(source)) as src, _template() as template:
        out: OutputContainer = av.open(str(target), "w", format=MUXERS[source.suffix])
        try:
            streams = {s.index: out.add_stream_from_template(s) for s in src.streams
                       if s.type in ("video", "audio")}
            subtitles = out.add_stream_from_template(template.streams[0])
            subtitles.metadata["language"] = language
            subtitles.metadata["title"] = "chat"
            pending = next(cue_iter, None)
            for packet in src.demux():
                if packet.dts is None or packet.stream.index not in streams:
                    continue
                at = float(packet.pts * packet.time_base) if packet.pts is not None else 0.0
                while pending is not None and pending.start <= at:
                    out.mux(_cue_packet(pending, subtitles))
                    written += 1
                    pending = next(cue_iter, None)
                packet.stream = streams[packet.stream.index]
                out.mux(packet)
            while pending is not None:
                out.mux(_cue_packet(pending, subtitles))
                written += 1
                pending = next(cue_iter, None)
        finally:
            out.close()
    return written


def _cue_packet(cue: Cue, stream: Stream) -> Packet[Stream]:
    packet: Packet[Stream] = Packet(cue.payload().encode())
    packet.stream = stream
    packet.time_base = SUBTITLE_TIME_BASE
    packet.pts = packet.dts = round(cue.start * 1000)
    packet.duration = max(1, round((cue.end - cue.start) * 1000))
    return packet
