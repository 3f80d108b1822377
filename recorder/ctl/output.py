"""What recorderctl prints: aligned tables for people, JSON for scripts.

Tables show the few fields an operator scans for; `--json` prints the server's objects
unchanged, so scripts see every field and keep working when fields are added.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TextIO

LIST_COLUMNS = ("recording_id", "room_id", "user_id", "status", "format", "quality",
                "duration_seconds", "started_at")
STATE_FIELDS = ("recording_id", "room_id", "user_id", "status", "stop_reason", "format",
                "quality", "layout", "transcode", "duration_seconds", "started_at",
                "stopped_at", "local_path", "file_name", "file_size_bytes", "error")


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def table(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def print_json(value: Any, out: TextIO) -> None:
    print(json.dumps(value, indent=2, sort_keys=False), file=out)


def print_state(state: dict[str, Any], out: TextIO) -> None:
    """One recording, one field a line; fields the server left empty are skipped."""
    shown = [(name, cell(state.get(name))) for name in STATE_FIELDS if state.get(name) is not None]
    width = max(len(name) for name, _ in shown) if shown else 0
    for name, value in shown:
        print(f"{name.ljust(width)}  {value}", file=out)


def print_list(recordings: Sequence[dict[str, Any]], out: TextIO) -> None:
    if not recordings:
        print("no recordings", file=out)
        return
    rows = [[cell(r.get(c)) for c in LIST_COLUMNS] for r in recordings]
    headers = [c.removesuffix("_seconds").replace("_", " ") for c in LIST_COLUMNS]
    print(table(rows, headers), file=out)


def watch_line(name: str, data: dict[str, Any]) -> str:
    """`12:00:01.250  paused  recording_paused`; the first message (the state) has no event
    time, it is the status as of now."""
    at = str(data.get("at") or "")
    clock = at[11:23] if len(at) >= 23 else "now".ljust(12)
    return f"{clock}  {cell(data.get('status'))}  {name}"
