"""Finished recordings made directly in a real Redis, for worker tests that need files far
larger than a test can record over WebRTC (the state is what `recorderd` writes at stop)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from recorder.core import lifecycle
from recorder.core.lifecycle import Action
from recorder.core.limits import Limits
from recorder.core.models import (
    FileInfo,
    RecordingState,
    Upload,
    UploadState,
    UploadTarget,
)
from recorder.core.presets import Format, Quality, quality_settings
from recorder.state.jobs import UploadQueue
from recorder.state.keys import KeySpace
from recorder.state.store import StateStore

PREFIX = "webrtc:recording:"
KEYS = KeySpace(PREFIX)
LIMITS = Limits(1000, 1000, 1000)


def store_of(redis: aioredis.Redis) -> StateStore:
    return StateStore(redis, KEYS, 604800, 86400)


def write_random(path: Path, size: int, seed: int = 1) -> str:
    """`size` pseudo-random bytes (incompressible, cheap to make); returns their sha256."""
    digest = hashlib.sha256()
    rng = random.Random(seed)
    with path.open("wb") as f:
        left = size
        while left > 0:
            chunk = rng.randbytes(min(left, 1 << 20))
            f.write(chunk)
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


async def finished_recording(redis: aioredis.Redis, node_id: str, storage: Path, *,
                             size: int = 0, source: Path | None = None,
                             target: UploadTarget = UploadTarget.S3,
                             room_id: str = "room-up", user_id: str = "user-up",
                             extra: list[Path] | None = None) -> RecordingState:
    """A recording in `processing` with its files described and its upload queued (not the
    job: see :func:`queue_job`). Its file is `size` random bytes, or a copy of `source`."""
    rid = str(uuid.uuid4())
    folder = storage / rid
    folder.mkdir(parents=True)
    ext = source.suffix.lstrip(".") if source is not None else "webm"
    main = folder / f"recording_{rid}.{ext}"
    paths = [main]
    if source is not None:
        await asyncio.to_thread(shutil.copyfile, source, main)
    else:
        await asyncio.to_thread(write_random, main, size)
    for other in extra or []:
        copy = folder / other.name
        await asyncio.to_thread(shutil.copyfile, other, copy)
        paths.append(copy)
    files = [FileInfo(name=p.name, kind="composite" if p == main else "track",
                      size=p.stat().st_size, sha256=await asyncio.to_thread(sha256_of, p),
                      duration_seconds=3.0) for p in paths]
    store = store_of(redis)
    state = RecordingState(
        recording_id=rid, room_id=room_id, user_id=user_id, node_id=node_id,
        format=Format(ext), quality=Quality.LOW, quality_settings=quality_settings(Quality.LOW),
        storage_backend=target, local_path=str(folder), file_name=main.name,
        upload=Upload(target=target), created_at=lifecycle.now(), max_duration_seconds=7200)
    await store.admit(state, LIMITS)
    for action in (Action.MEDIA_STARTED, Action.STOP):
        await store.update(rid, _applying(action))

    def described(s: RecordingState) -> RecordingState:
        s.files = files
        s.file_size_bytes = files[0].size
        s.sha256 = files[0].sha256
        assert s.upload is not None
        s.upload.state = UploadState.QUEUED
        return s

    return await store.update(rid, described)


def _applying(action: Action) -> Callable[[RecordingState], RecordingState]:
    return lambda state: lifecycle.apply(state, action, lifecycle.now())


async def recorded_parts(redis: aioredis.Redis, recording_id: str, file_name: str) -> set[int]:
    """Part numbers the worker recorded as finished in the file's upload record."""
    fields: Any = await redis.hkeys(KEYS.upload(recording_id, file_name))
    return {int(str(f)[5:]) for f in fields if str(f).startswith("part:")}


async def queue_job(redis: aioredis.Redis, node_id: str, recording_id: str) -> str:
    return await UploadQueue(redis, KEYS, node_id).enqueue(recording_id)


async def drained(redis: aioredis.Redis, node_id: str, within: float = 60.0) -> None:
    """Wait until the node's upload stream is empty: every job acknowledged and deleted."""
    queue = UploadQueue(redis, KEYS, node_id)
    deadline = time.monotonic() + within
    while await queue.depth() != (0, 0):
        assert time.monotonic() < deadline, await queue.depth()
        await asyncio.sleep(0.1)


async def state_of(redis: aioredis.Redis, recording_id: str) -> RecordingState:
    return await store_of(redis).get(recording_id)


async def wait_for(redis: aioredis.Redis, recording_id: str, wanted: set[str],
                   within: float = 120.0) -> RecordingState:
    """Poll the state until its status is one of `wanted` (a hang guard, not a measure)."""
    deadline = time.monotonic() + within
    while True:
        state = await state_of(redis, recording_id)
        if state.status.value in wanted:
            return state
        assert time.monotonic() < deadline, f"still {state.status}: {state.model_dump()}"
        await asyncio.sleep(0.2)


@asynccontextmanager
async def events(redis_url: str) -> AsyncIterator[list[dict[str, Any]]]:
    """Collect the pub/sub status events published while the block runs."""
    client = aioredis.from_url(redis_url, decode_responses=True)
    pubsub = client.pubsub()
    await pubsub.subscribe(f"{PREFIX}events")
    seen: list[dict[str, Any]] = []

    async def listen() -> None:
        async for message in pubsub.listen():
            if message.get("type") == "message":
                seen.append(json.loads(message["data"]))

    task = asyncio.create_task(listen())
    try:
        yield seen
    finally:
        await asyncio.sleep(0.3)  # let the last messages arrive
        task.cancel()
        await pubsub.unsubscribe()
        await pubsub.aclose()
        await client.aclose()
