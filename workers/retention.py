"""Local retention: folders whose upload was verified are removed after some days.

Only a recording folder holding an ``.uploaded`` marker (written after every file in it was
verified at its target) older than RECORDER_RETENTION_DAYS is removed; nothing else in the
storage directory is ever touched, whatever its age: a folder without the marker may hold
the only copy of a recording. Age is the marker's mtime, i.e. when the upload finished.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from recorder.service.finished import UPLOADED_MARKER

logger = logging.getLogger(__name__)

SWEEP_PERIOD_SECONDS = 3600.0
DAY_SECONDS = 86400.0


def sweep(storage: Path, retention_days: float, now: float | None = None) -> list[Path]:
    """Remove expired uploaded folders directly under `storage`; returns what was removed."""
    cutoff = (time.time() if now is None else now) - retention_days * DAY_SECONDS
    removed: list[Path] = []
    try:
        children = list(storage.iterdir())
    except FileNotFoundError:
        return removed
    for folder in children:
        if folder.is_symlink() or not folder.is_dir():
            continue
        marker = folder / UPLOADED_MARKER
        try:
            uploaded_at = marker.lstat().st_mtime
        except FileNotFoundError:
            continue
        if uploaded_at > cutoff:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        if folder.exists():
            logger.warning("recording %s: retention could not remove %s", folder.name, folder)
            continue
        logger.info("recording %s: local copy removed by retention (uploaded %.1f days ago)",
                    folder.name, ((now or time.time()) - uploaded_at) / DAY_SECONDS)
        removed.append(folder)
    return removed


@dataclass(frozen=True)
class DiskUsage:
    free_bytes: int  # free on the storage directory's filesystem
    used_bytes: int  # taken by the files under the storage directory
    total_bytes: int  # size of the storage directory's filesystem
    kept_uploaded: int = 0  # recording folders with an `.uploaded` marker still on disk
    kept_uploaded_bytes: int = 0  # the files in them


def disk_usage(storage: Path) -> DiskUsage:
    used = kept = kept_bytes = 0
    try:
        children = list(os.scandir(storage))
    except FileNotFoundError:
        children = []
    for child in children:
        size = _size(child)
        used += size
        if child.is_dir(follow_symlinks=False) and os.path.lexists(
                os.path.join(child.path, UPLOADED_MARKER)):
            kept += 1
            kept_bytes += size
    disk = shutil.disk_usage(storage)
    return DiskUsage(disk.free, used, disk.total, kept, kept_bytes)


def _size(entry: os.DirEntry[str]) -> int:
    """Bytes of a file, or of every file under a folder (symlinks not followed)."""
    try:
        if not entry.is_dir(follow_symlinks=False):
            return entry.stat(follow_symlinks=False).st_size
    except FileNotFoundError:  # removed while we walked
        return 0
    total = 0
    for root, _, files in os.walk(entry.path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                continue
    return total


async def run_retention(storage: Path, retention_days: float,
                        period_seconds: float = SWEEP_PERIOD_SECONDS) -> None:
    """Sweep now and then every `period_seconds`, until cancelled."""
    while True:
        try:
            removed = await asyncio.to_thread(sweep, storage, retention_days)
            if removed:
                logger.info("retention: removed %d uploaded folder(s)", len(removed))
        except OSError as exc:
            logger.warning("retention sweep failed: %s", exc)
        await asyncio.sleep(period_seconds)
