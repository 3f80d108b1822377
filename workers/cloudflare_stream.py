"""Cloudflare Stream as an upload target: tus creation and upload, then verification.

Creation is ``POST {api}/accounts/{account}/stream`` with the API token; the video id comes
back in ``stream-media-id`` and is indexed at once as ``{prefix}stream:{id}`` (Stream's
webhooks name videos by it). The upload URL and the id are kept in the file's upload record,
so a restarted worker continues the same video with HEAD. Verified means the tus offset
equals the file's length and Stream reports the video's ``size`` as that length
(docs/operations.md).

Stream refuses media without a video track, so audio-only files are not sent: they stay on
disk and their `playback` says ``skipped`` / ``audio-only``. Only media files go to Stream:
a recording's events, captions, thumbnail and manifest stay on the node, served by the file
route (the manifest says so for each), and follow the folder's retention.

The bearer token goes with the tus requests too, as Cloudflare's own examples send it.
"""

from __future__ import annotations

import asyncio
import logging
import math
from pathlib import Path
from typing import Any

import aiohttp
import av
import redis.asyncio as aioredis

from recorder.config.settings import Settings
from recorder.core.models import MEDIA_KINDS, Playback
from recorder.state.connection import store_errors
from recorder.state.keys import KeySpace
from workers.errors import PermanentError, TransientError, UploadGone, transient_status
from workers.retry import RetryPolicy
from workers.target import FileJob, Stored
from workers.tus import TusClient

logger = logging.getLogger(__name__)

MEDIA_ID_HEADER = "stream-media-id"
MAX_DURATION_SECONDS = 21600  # the largest maxDurationSeconds Stream accepts
DURATION_SLACK_SECONDS = 60  # Stream's measure of a file may differ a little from ours
MAX_RESTARTS = 3  # tus uploads that may vanish (404/410) before the job gives up
_SIZE_CHECKS = 5  # Stream may need a moment after the last PATCH to report the size
_SIZE_CHECK_PAUSE = 1.0
AUDIO_ONLY = Playback(state="skipped", error="audio-only")
BESIDE = Stored(uploaded=False)  # a sidecar: Stream takes only video; it stays on the node


def has_video(path: Path) -> bool:
    """Whether the file has a video stream (PyAV reads the container's headers only)."""
    try:
        with av.open(str(path)) as container:
            return bool(container.streams.video)
    except av.error.FFmpegError as exc:
        logger.warning("cannot probe %s (%s); sending it as video", path.name, exc)
        return True


def upload_metadata(name: str, duration_seconds: float | None,
                    signed: bool) -> dict[str, str | None]:
    """Stream's tus metadata keys (its docs spell them in lower case)."""
    metadata: dict[str, str | None] = {"name": name}
    if signed:
        metadata["requiresignedurls"] = None  # the key's presence is what counts
    if duration_seconds is not None:
        limit = math.ceil(duration_seconds) + DURATION_SLACK_SECONDS
        metadata["maxdurationseconds"] = str(min(MAX_DURATION_SECONDS, max(1, limit)))
    return metadata


class StreamTarget:
    def __init__(self, settings: Settings, policy: RetryPolicy, redis: aioredis.Redis,
                 keys: KeySpace) -> None:
        if not (settings.cf_account_id and settings.cf_api_token):
            raise ValueError("RECORDER_CF_ACCOUNT_ID and RECORDER_CF_API_TOKEN are required")
        self._api = f"{settings.cf_api_base}/accounts/{settings.cf_account_id}/stream"
        self._auth = {"Authorization": f"Bearer {settings.cf_api_token}"}
        self._signed = settings.signed_stream_urls
        self._chunk = settings.tus_chunk_bytes
        self._policy = policy
        self._redis = redis
        self._keys = keys
        self._index_ttl = settings.state_ttl_seconds
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=120)
            self._session = aiohttp.ClientSession(timeout=timeout)
        return self._session

    def _tus(self) -> TusClient:
        return TusClient(self._http(), self._policy, self._chunk, self._auth)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ---- Target ---------------------------------------------------------------------------

    async def store(self, job: FileJob) -> Stored:
        prefix = f"recording {job.recording_id}: stream {job.info.name}"
        if job.info.kind not in MEDIA_KINDS:
            return BESIDE  # events, captions, thumbnail, manifest: the file route serves them
        if not await asyncio.to_thread(has_video, job.path):
            logger.info("%s: audio only, not sent to Stream (kept on disk)", prefix)
            return Stored(playback=AUDIO_ONLY, uploaded=False)
        tus = self._tus()
        for _ in range(MAX_RESTARTS):
            fields = await job.record.load()
            url, stream_id = fields.get("url"), fields.get("stream_id")
            try:
                if url and stream_id:
                    offset = await tus.offset(url, prefix)
                    logger.info("%s: resuming video %s at %d of %d bytes", prefix, stream_id,
                                offset, job.info.size)
                else:
                    url, stream_id = await self._create(job, tus, prefix)
                    offset = 0
                job.on_progress(offset)

                async def sent(n: int) -> None:
                    job.on_progress(n)
                    await job.record.save(offset=n)

                await tus.send(url, job.path, job.info.size, offset, prefix, sent)
                offset = await tus.offset(url, prefix)
            except UploadGone as exc:
                logger.warning("%s: tus upload is gone (%s); creating a new one", prefix,
                               exc.message)
                await job.record.clear()
                continue
            if offset != job.info.size:
                raise PermanentError(f"tus offset {offset} is not the file's length "
                                     f"{job.info.size}")
            size = await self._stream_size(job, stream_id, prefix)
            if size != job.info.size:
                raise PermanentError(f"Stream reports {size} bytes for video {stream_id}, "
                                     f"the file has {job.info.size}")
            await job.record.clear()
            logger.info("%s: video %s stored and verified (%d bytes)", prefix, stream_id, size)
            return Stored(stream_id=stream_id, playback=Playback(state="pending"))
        raise PermanentError(f"the tus upload of {job.info.name} vanished {MAX_RESTARTS} times")

    async def stored(self, job: FileJob) -> Stored | None:
        if job.info.kind not in MEDIA_KINDS:
            return BESIDE
        if job.info.playback is not None and job.info.playback.state == AUDIO_ONLY.state:
            return Stored(playback=job.info.playback, uploaded=False)
        stream_id = job.info.stream_id
        if stream_id is None:
            return None
        prefix = f"recording {job.recording_id}: stream {job.info.name}"
        if await self._stream_size(job, stream_id, prefix, checks=1) != job.info.size:
            return None
        return Stored(stream_id=stream_id, playback=job.info.playback or Playback())

    async def abandon(self, job: FileJob) -> None:
        """Keep the tus upload: an admin retry continues it where it stopped."""
        logger.info("recording %s: stream upload of %s kept for a retry", job.recording_id,
                    job.info.name)

    # ---- steps ----------------------------------------------------------------------------

    async def _create(self, job: FileJob, tus: TusClient, prefix: str) -> tuple[str, str]:
        metadata = upload_metadata(job.info.name, job.duration_seconds, self._signed)
        created = await tus.create(self._api, job.info.size, metadata, prefix)
        stream_id = next((v for k, v in created.headers.items()
                          if k.lower() == MEDIA_ID_HEADER), None)
        if not stream_id:
            raise PermanentError(f"Stream answered the creation without {MEDIA_ID_HEADER}")
        await job.record.start(target="cloudflare_stream", url=created.url, stream_id=stream_id,
                               length=job.info.size, offset=0)
        with store_errors():
            await self._redis.set(self._keys.stream(stream_id), job.recording_id,
                                  ex=self._index_ttl)
        logger.info("%s: video %s created", prefix, stream_id)
        return created.url, stream_id

    async def _stream_size(self, job: FileJob, stream_id: str, prefix: str,
                           checks: int = _SIZE_CHECKS) -> int | None:
        """The video's `size` as Stream reports it; None when it has no such video."""
        size: int | None = None
        for check in range(checks):
            video = await self._video(stream_id, prefix)
            if video is None:
                return None
            raw = video.get("size")
            size = int(raw) if isinstance(raw, int | float) else None
            if size == job.info.size:
                return size
            if check + 1 < checks:
                await asyncio.sleep(_SIZE_CHECK_PAUSE)
        return size

    async def _video(self, stream_id: str, prefix: str) -> dict[str, Any] | None:
        url = f"{self._api}/{stream_id}"
        async for attempt in self._policy.retrying("Stream video details", prefix):
            with attempt:
                try:
                    async with self._http().get(url, headers=self._auth) as response:
                        if response.status == 404:
                            return None
                        body: Any = await response.json(content_type=None)
                        if response.status != 200 or not isinstance(body, dict):
                            errors = body.get("errors") if isinstance(body, dict) else body
                            detail = f"Stream video details: HTTP {response.status} {errors}"
                            if transient_status(response.status):
                                raise TransientError(detail)
                            raise PermanentError(detail)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    raise TransientError(f"Stream video details: {exc}") from exc
                except ValueError as exc:  # not JSON
                    raise TransientError(f"Stream video details: {exc}") from exc
                result = body.get("result")
                return result if isinstance(result, dict) else None
        raise AssertionError("unreachable: tenacity raises or returns")
