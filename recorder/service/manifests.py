"""Writing a recording's ``manifest.json`` into its folder and listing it in ``files``
(the content is :func:`recorder.core.manifest.manifest`, pure).

Every recording gets one: a finished capture's is written by :mod:`recorder.service.completion`
with its files, a cancelled or failed recording's here when it ends (a cancelled folder
keeps nothing else), and the upload worker rewrites it once the files are stored. The file
is replaced in one rename, so a reader never sees half of it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

from recorder.core.errors import NotFound, RecorderError
from recorder.core.manifest import MANIFEST_FILE, MANIFEST_KIND, manifest, with_manifest
from recorder.core.models import FileInfo, RecordingState
from recorder.service.handoff import describe_file
from recorder.state.store import StateStore

logger = logging.getLogger(__name__)


def write_manifest(state: RecordingState) -> FileInfo:
    """Write ``state``'s manifest into its folder (made if missing); its description.
    Blocking."""
    folder = Path(state.local_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / MANIFEST_FILE
    temporary = folder / f".{MANIFEST_FILE}.tmp"
    text = json.dumps(manifest(state), ensure_ascii=False, indent=2) + "\n"
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)
    return describe_file(path, MANIFEST_KIND, None)


async def write_final_manifest(store: StateStore, state: RecordingState) -> None:
    """A recording that ended without completing (cancelled, failed): its manifest written
    and listed. Never raises: the recording's end does not depend on it."""
    try:
        info = await asyncio.to_thread(write_manifest, state)
        await store.update(state.recording_id, lambda s: with_manifest(s, info))
    except NotFound:
        return
    except (OSError, RecorderError) as exc:
        logger.warning("recording %s: manifest not written: %s", state.recording_id, exc)
