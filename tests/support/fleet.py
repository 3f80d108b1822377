"""What the admin tests put in a cluster's Redis and on its nodes' disks: recordings in
the statuses an operator meets, a dead webhook, a real little video file."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import redis.asyncio as aioredis

from recorder.core import lifecycle
from recorder.core.lifecycle import Action
from recorder.core.limits import Limits
from recorder.core.models import FileInfo, RecordingState, Upload, UploadTarget
from recorder.core.webhooks import WebhookJob
from recorder.state import KeySpace, StateStore
from tests.support.states import make_state

TTL_SECONDS = 3600
ROOMY = Limits(max_per_room=100_000, max_per_user=100_000, max_concurrent=100_000)
ADMIN_PREFIX = "/api/webrtc/admin"


class Cluster:
    """One client of the cluster's Redis under its key prefix, for arranging a test."""

    def __init__(self, redis_url: str, prefix: str) -> None:
        self.redis = aioredis.from_url(redis_url, decode_responses=True)
        self.keys = KeySpace(prefix)
        self.store = StateStore(self.redis, self.keys, TTL_SECONDS, TTL_SECONDS)

    async def close(self) -> None:
        await self.redis.aclose()

    async def recording(self, node_id: str, storage: Path, room_id: str, user_id: str,
                        actions: tuple[Action, ...] = (), video: bool = False,
                        **update: Any) -> RecordingState:
        """A recording of `node_id` taken through `actions`, its folder on `storage` (with
        a real WebM when `video`)."""
        state = make_state(room_id, user_id, node_id)
        folder = storage / state.recording_id
        state = state.model_copy(update={"local_path": str(folder), **update})
        state = await self.store.admit(state, ROOMY)
        folder.mkdir(parents=True)
        if video:
            write_webm(folder / state.file_name)
        for action in actions:
            state = await self.store.update(state.recording_id, applying(action))
        return state

    async def failed_upload(self, node_id: str, storage: Path, room_id: str,
                            user_id: str) -> RecordingState:
        """A recording whose upload to S3 was given up, its file kept."""
        state = await self.recording(node_id, storage, room_id, user_id,
                                     (Action.MEDIA_STARTED, Action.STOP), video=True,
                                     storage_backend=UploadTarget.S3,
                                     upload=Upload(target=UploadTarget.S3))
        path = Path(state.local_path) / state.file_name
        data = path.read_bytes()
        info = FileInfo(name=path.name, kind="composite", size=len(data),
                        sha256=hashlib.sha256(data).hexdigest(), duration_seconds=1.0)

        def failed(s: RecordingState) -> RecordingState:
            s.files, s.file_size_bytes, s.sha256 = [info], info.size, info.sha256
            assert s.upload is not None
            s.upload.error = "upload: HTTP 503"
            return lifecycle.apply(s, Action.UPLOAD_FAILED, lifecycle.now(),
                                   error="upload: HTTP 503")

        return await self.store.update(state.recording_id, failed)

    async def dead_letter(self, recording_id: str, url: str = "http://127.0.0.1:9/hook",
                          last_error: str = "HTTP 500") -> WebhookJob:
        job = WebhookJob(id=f"msg_{uuid.uuid4().hex}", url=url, event="recording.complete",
                         recording_id=recording_id, body="{}", created=time.time() - 60,
                         attempts=8, last_status=500, last_error=last_error)
        await self.redis.rpush(self.keys.webhooks_dead(), job.to_json())
        return job


def applying(action: Action) -> Callable[[RecordingState], RecordingState]:
    return lambda state: lifecycle.apply(state, action, lifecycle.now())


def write_webm(path: Path, frames: int = 15, size: tuple[int, int] = (160, 120)) -> None:
    """A short VP8 WebM: a blue-to-yellow ramp (bright on average) with a dark bar that
    moves."""
    width, height = size
    ramp = np.linspace(80, 255, width, dtype=np.float32)
    with av.open(str(path), "w", format="webm") as container:
        stream = container.add_stream("libvpx", rate=15)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, 15)
        for n in range(frames):
            picture = np.empty((height, width, 3), dtype=np.uint8)
            picture[..., 0] = picture[..., 1] = ramp.astype(np.uint8)
            picture[..., 2] = (335 - ramp).astype(np.uint8)
            left = (n * width // frames) % (width - 16)
            picture[:, left:left + 16] = 30
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts = n
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def admin_paths(routes: Any) -> list[tuple[str, str]]:
    """(method, path) of every admin route of a route table, ids filled in."""
    filled = []
    for route in routes:
        if route.path.startswith(ADMIN_PREFIX + "/"):
            filled.append((route.method, route.path.replace("{recording_id}",
                                                            uuid.uuid4().hex)))
    return filled
