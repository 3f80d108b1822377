"""The files beside a finished recording's media: its events, its chat as captions and as
a subtitle track in each Matroska/WebM file, and a thumbnail (docs/media.md).

Made once the media files are final (a live capture's, a deferred transcode's outputs, or
files recovered after a crash), before they are described, since the subtitle track
rewrites them. ``events.jsonl`` is the source of the captions, read in one pass per output
(never held whole). Nothing here fails a recording: a sidecar that cannot be made is
logged and left out.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import av

from recorder.core.captions import VTT_HEADER, chat_lines, cues, vtt_block, within
from recorder.core.events import EventCounts
from recorder.media.subtitles import add_subtitles, takes_subtitles
from recorder.media.thumbnail import THUMBNAIL_FILE, write_thumbnail
from recorder.room.event_log import EVENTS_FILE
from recorder.room.messages import FileResult

logger = logging.getLogger(__name__)

CAPTIONS_FILE: Final = "chat.vtt"
EVENTS_KIND: Final = "events"
CAPTIONS_KIND: Final = "captions"
THUMBNAIL_KIND: Final = "thumbnail"


@dataclass
class Sidecars:
    files: list[tuple[Path, str]] = field(default_factory=list)  # (path, kind)
    counted: dict[str, EventCounts] = field(default_factory=dict)  # events.jsonl's lines
    subtitles: dict[str, int] = field(default_factory=dict)  # media file -> cues in it


def _lines(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8", errors="replace") as f:
        yield from f


def count_events(path: Path) -> dict[str, EventCounts]:
    """Recorded events per channel, as the file has them (a recovered recording's)."""
    counted: dict[str, EventCounts] = {}
    for line in _lines(path):
        try:
            channel = json.loads(line).get("channel")
        except (ValueError, AttributeError):
            continue
        if isinstance(channel, str):
            counted.setdefault(channel, EventCounts()).recorded += 1
    return counted


def write_captions(events: Path, target: Path) -> int:
    """``chat.vtt`` from the chat events; the number of cues (0: no file)."""
    count = 0
    temporary = target.with_name(f".{target.name}.tmp")
    with temporary.open("w", encoding="utf-8") as out:
        out.write(VTT_HEADER)
        for cue in cues(chat_lines(_lines(events))):
            out.write(vtt_block(cue))
            count += 1
    if count:
        temporary.replace(target)
    else:
        temporary.unlink()
    return count


def make_sidecars(folder: Path, media: list[FileResult], events_file: Path | None) -> Sidecars:
    """Blocking: reads the events, rewrites the Matroska/WebM files, decodes one picture."""
    made = Sidecars()
    events = events_file or folder / EVENTS_FILE
    if events.is_file() and events.stat().st_size > 0:
        made.files.append((events, EVENTS_KIND))
        made.counted = count_events(events)
        _captions(folder, media, events, made)
    _thumbnail(folder, media, made)
    return made


def _captions(folder: Path, media: list[FileResult], events: Path, made: Sidecars) -> None:
    try:
        if write_captions(events, folder / CAPTIONS_FILE):
            made.files.append((folder / CAPTIONS_FILE, CAPTIONS_KIND))
    except OSError as exc:
        logger.warning("%s: captions not written: %s", folder.name, exc)
    for result in media:
        path = Path(result.path)
        if not takes_subtitles(path):
            continue
        file_cues = within(cues(chat_lines(_lines(events))), result.offset_seconds,
                           result.duration_seconds)
        try:
            made.subtitles[path.name] = add_subtitles(path, file_cues)
        except (av.FFmpegError, OSError) as exc:
            logger.warning("%s: no subtitle track in %s: %s", folder.name, path.name, exc)


def _thumbnail(folder: Path, media: list[FileResult], made: Sidecars) -> None:
    target = folder / THUMBNAIL_FILE
    for result in media:
        try:
            if write_thumbnail(Path(result.path), target):
                made.files.append((target, THUMBNAIL_KIND))
                return
        except (av.FFmpegError, OSError, ValueError) as exc:
            logger.warning("%s: no thumbnail from %s: %s", folder.name,
                           Path(result.path).name, exc)
