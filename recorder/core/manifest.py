"""A recording's ``manifest.json`` (docs/media.md, "Manifest"), as a pure function of its
state: what was recorded, by whom, with which pauses and events, and where each file is.

It follows ``docs/manifest.schema.json``. The node writes it when the capture ends (and for
a cancelled or failed recording when it ends), the upload worker rewrites it once the files
are stored (then each file says where), and the ``recording.complete`` and
``recording.ready`` webhooks carry it in ``data.manifest``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import quote

from recorder.core.models import FileInfo, RecordingState

MANIFEST_FILE: Final = "manifest.json"
MANIFEST_KIND: Final = "manifest"
MANIFEST_VERSION: Final = 1


def _iso(at: datetime | None) -> str | None:
    if at is None:
        return None
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def file_route(recording_id: str, name: str) -> str:
    """The file route that serves a file kept on the node (with a token or a signed URL)."""
    return f"/api/webrtc/recordings/{recording_id}/file?name={quote(name, safe='')}"


def location(recording_id: str, info: FileInfo) -> dict[str, Any]:
    """Where the file is: at S3, at Cloudflare Stream, or on the node."""
    if info.s3_key is not None:
        return {"type": "s3", "key": info.s3_key}
    if info.stream_id is not None:
        return {"type": "cloudflare_stream", "stream_id": info.stream_id}
    return {"type": "local", "url": file_route(recording_id, info.name)}


def _file(recording_id: str, info: FileInfo) -> dict[str, Any]:
    return {"name": info.name, "kind": info.kind, "size": info.size, "sha256": info.sha256,
            "duration_seconds": info.duration_seconds, "offset_seconds": info.offset_seconds,
            "location": location(recording_id, info)}


def manifest(state: RecordingState) -> dict[str, Any]:
    """The manifest of ``state`` (every file but the manifest itself)."""
    rid = state.recording_id
    return {
        "manifest_version": MANIFEST_VERSION,
        "recording_id": rid,
        "room_id": state.room_id,
        "status": state.status.value,
        "format": state.format.value,
        "quality": state.quality.value,
        "layout": state.layout.value,
        "transcode": state.transcode.value,
        "started_at": _iso(state.started_at),
        "stopped_at": _iso(state.stopped_at),
        "duration_seconds": state.duration_seconds,
        "stop_reason": None if state.stop_reason is None else state.stop_reason.value,
        "recovered": state.recovered,
        "error": state.error,
        "files": [_file(rid, f) for f in state.files if f.kind != MANIFEST_KIND],
        "publishers": [{
            "publisher_id": p.publisher_id, "role": p.role,
            "joined_seconds": p.joined_seconds, "left_seconds": p.left_seconds,
            "tracks": [{"kind": t.kind, "codec": t.codec} for t in p.tracks],
        } for p in state.publishers],
        "pauses": [{
            "paused_at": _iso(p.paused_at), "resumed_at": _iso(p.resumed_at),
            "position_seconds": p.position_seconds,
        } for p in state.pauses],
        "events": {channel: c.model_dump() for channel, c in sorted(state.events.items())},
    }


def with_manifest(state: RecordingState, info: FileInfo) -> RecordingState:
    """``state`` whose ``files`` list ``info`` (the manifest) last, once."""
    new = state.model_copy(deep=True)
    new.files = [f for f in new.files if f.kind != MANIFEST_KIND] + [info]
    return new
