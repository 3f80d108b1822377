"""Reading timed events back for tests: where an event sent at a wall time belongs on the
recording's clock, and the cues of a file's subtitle track (decoded with PyAV)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av


def expected_t(wall: float, started: datetime, pauses: list[dict[str, Any]]) -> float:
    """Recording time of wall time ``wall`` (unix seconds): since the first media, minus the
    pauses (the state's) that ended before it."""
    cut = 0.0
    for pause in pauses:
        resumed = pause.get("resumed_at")
        if resumed is None:
            continue
        begin = datetime.fromisoformat(pause["paused_at"]).timestamp()
        end = datetime.fromisoformat(resumed).timestamp()
        if end <= wall:
            cut += end - begin
    return wall - started.astimezone(UTC).timestamp() - cut


def subtitle_cues(path: Path) -> list[tuple[float, float, str]]:
    """(start, end, payload) of every packet of the file's first subtitle stream."""
    out: list[tuple[float, float, str]] = []
    with av.open(str(path)) as container:
        assert container.streams.subtitles, f"{path.name} has no subtitle track"
        stream = container.streams.subtitles[0]
        assert stream.codec_context.name == "webvtt"
        for packet in container.demux(stream):
            if packet.pts is None or packet.time_base is None:
                continue
            start = float(packet.pts * packet.time_base)
            end = start + float((packet.duration or 0) * packet.time_base)
            out.append((start, end, bytes(packet).decode()))
    return out
