"""Finished recordings written straight into a daemon's store, with a file on its disk:
what lists, views and access checks need, without recording real media first."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from recorder.core.limits import Limits
from recorder.core.models import FileInfo, RecordingState, Status
from recorder.state import KeySpace, StateStore
from tests.support.states import make_state

TTL_SECONDS = 3600
_ROOMY = Limits(max_per_room=100_000, max_per_user=100_000, max_concurrent=100_000)
FILE_BYTES = b"not really a webm file"


async def seed_completed(redis_url: str, prefix: str, node_id: str, storage: Path,
                         room_id: str, user_id: str, *, count: int = 1,
                         source: dict[str, Any] | None = None) -> list[RecordingState]:
    """`count` completed recordings of `user_id` in `room_id` on `node_id`, oldest first."""
    redis = aioredis.from_url(redis_url, decode_responses=True)
    store = StateStore(redis, KeySpace(prefix), TTL_SECONDS, TTL_SECONDS)
    made: list[RecordingState] = []
    try:
        for _ in range(count):
            state = make_state(room_id, user_id, node_id)
            folder = storage / state.recording_id
            update: dict[str, Any] = {"local_path": str(folder)}
            if source is not None:
                update["source"] = source
            state = await store.admit(state.model_copy(update=update), _ROOMY)
            folder.mkdir(parents=True)
            (folder / state.file_name).write_bytes(FILE_BYTES)
            made.append(await store.update(state.recording_id, _completed))
    finally:
        await redis.aclose()
    return made


def _completed(state: RecordingState) -> RecordingState:
    info = FileInfo(name=state.file_name, kind="composite", size=len(FILE_BYTES),
                    sha256=hashlib.sha256(FILE_BYTES).hexdigest())
    return state.model_copy(update={"status": Status.COMPLETED, "files": [info],
                                    "file_size_bytes": info.size, "sha256": info.sha256})
