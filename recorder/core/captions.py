"""Chat messages as WebVTT cues (docs/media.md, "Captions"), the pure parts.

A chat event (``type: "chat"``, from the API or a ``chat`` data channel) becomes one cue
``<v user>text``, shown from its ``t`` for :data:`CUE_SECONDS` or until the next chat
message, whichever comes first. Cues are made in one pass with one message of look-ahead,
so a long recording's chat is never held in memory as a whole. The same cues go into
``chat.vtt`` (recording time) and into each Matroska/WebM file's subtitle track (that
file's time: recording time minus the file's offset).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

CUE_SECONDS: Final = 4.0
MIN_CUE_SECONDS: Final = 0.001  # two messages at the same instant: the first still shows
VTT_HEADER: Final = "WEBVTT\n"


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    user: str
    text: str

    def payload(self) -> str:
        """The cue's text as WebVTT has it: a voice span naming the user."""
        return f"<v {escape(self.user)}>{escape(self.text)}"

    def shifted(self, by: float) -> Cue:
        return Cue(self.start + by, self.end + by, self.user, self.text)


def escape(text: str) -> str:
    """Cue text: markup characters escaped, line breaks kept (no blank line: it would end
    the cue), the arrow that marks timings broken up."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    lines = [line.strip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return "\n".join(line for line in lines if line).replace("-->", "--&gt;")


def chat_lines(lines: Iterable[str]) -> Iterator[tuple[float, str, str]]:
    """(t, user, text) of every chat event among ``events.jsonl`` lines; a line that does
    not parse (the last one a kill cut) is skipped."""
    for line in lines:
        try:
            record: Any = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict) or record.get("type") != "chat":
            continue
        t, user, text = record.get("t"), record.get("user"), record.get("text")
        if isinstance(t, int | float) and isinstance(user, str) and isinstance(text, str):
            yield float(t), user, text


def cues(messages: Iterable[tuple[float, str, str]]) -> Iterator[Cue]:
    """A cue per message, in order: until the next message, or CUE_SECONDS at most."""
    previous: tuple[float, str, str] | None = None
    for message in messages:
        if previous is not None:
            yield _cue(previous, message[0])
        previous = message
    if previous is not None:
        yield _cue(previous, None)


def _cue(message: tuple[float, str, str], next_start: float | None) -> Cue:
    start, user, text = message
    end = start + CUE_SECONDS
    if next_start is not None:
        end = min(end, max(next_start, start + MIN_CUE_SECONDS))
    return Cue(start, end, user, text)


def within(cue_stream: Iterable[Cue], offset: float, duration: float) -> Iterator[Cue]:
    """The cues that show within a file that starts at ``offset`` and lasts ``duration``
    (recording seconds), in the file's time and cut to it."""
    for cue in cue_stream:
        start, end = cue.start - offset, cue.end - offset
        if end <= 0 or start >= duration:
            continue
        yield Cue(max(0.0, start), min(end, duration), cue.user, cue.text)


def timestamp(seconds: float) -> str:
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def vtt_block(cue: Cue) -> str:
    return f"\n{timestamp(cue.start)} --> {timestamp(cue.end)}\n{cue.payload()}\n"
