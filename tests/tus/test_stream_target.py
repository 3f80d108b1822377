"""Our tus client and the Stream target against the official tus server, behind a Cloudflare
Stream double: resuming by HEAD, the statuses tus defines, Cloudflare's own behaviour."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import redis.asyncio as aioredis

from recorder.config.settings import Settings
from recorder.core.models import FileInfo
from tests.support.cloudflare_stream import ACCOUNT, TOKEN, CloudflareDouble, Fault
from tests.support.finished_recordings import KEYS, sha256_of, write_random
from tests.support.tus_server import TusServer
from workers.cloudflare_stream import StreamTarget
from workers.errors import PermanentError
from workers.retry import RetryPolicy
from workers.target import FileJob
from workers.upload_record import UploadRecord

MIB = 1 << 20
CHUNK = 5 * MIB


def target_for(double: CloudflareDouble, redis: aioredis.Redis, token: str = TOKEN,
               **extra: object) -> StreamTarget:
    settings = Settings.model_validate({
        "cf_account_id": ACCOUNT, "cf_api_token": token, "cf_api_base": double.api_base,
        "tus_chunk_bytes": CHUNK, **extra})
    return StreamTarget(settings, RetryPolicy(attempts=4, initial=0.1, cap=0.2), redis, KEYS)


def file_job(redis: aioredis.Redis, path: Path, sent: list[int] | None = None) -> FileJob:
    info = FileInfo(name=path.name, kind="composite", size=path.stat().st_size,
                    sha256=sha256_of(path), duration_seconds=12.5)
    progress: Callable[[int], None] = (sent.append if sent is not None else lambda _: None)
    return FileJob(recording_id="rec-" + path.stem, room_id="room-t", path=path, info=info,
                   record=UploadRecord(redis, KEYS, "rec-" + path.stem, path.name, 3600),
                   on_progress=progress, duration_seconds=info.duration_seconds)


def video_file(path: Path, size: int) -> Path:
    write_random(path, size)
    return path


def stored_bytes(tus: TusServer, double: CloudflareDouble, uid: str) -> Path:
    return tus.stored(double.videos[uid].tus_url.rsplit("/", 1)[1])


async def test_a_connection_cut_mid_chunk_resumes_from_the_servers_offset(
    cloudflare: CloudflareDouble, tus_server: TusServer, redis_client: aioredis.Redis,
    tmp_path: Path,
) -> None:
    path = video_file(tmp_path / "cut.webm", 12 * MIB + 123)
    cloudflare.faults.append(Fault("PATCH", cut_after=3 * MIB))
    target = target_for(cloudflare, redis_client)
    job = file_job(redis_client, path)
    try:
        stored = await target.store(job)
    finally:
        await target.close()
    assert stored.stream_id is not None
    assert stored.playback is not None
    assert stored.playback.state == "pending"
    patches = cloudflare.requests("PATCH")
    assert patches[0].status == 0  # cut
    heads = [i for i, e in enumerate(cloudflare.log) if e.method == "HEAD"]
    cut_at = cloudflare.log.index(patches[0])
    assert heads, cloudflare.log
    assert heads[0] == cut_at + 1, cloudflare.log  # asked the server first
    resumed = patches[1].upload_offset
    assert resumed is not None
    assert 0 < resumed <= 3 * MIB, patches  # the bytes the server kept were not sent again
    assert [p.status for p in patches[1:]] == [204] * len(patches[1:])
    assert sha256_of(stored_bytes(tus_server, cloudflare, stored.stream_id)) == job.info.sha256
    video = cloudflare.videos[stored.stream_id]
    assert video.meta["name"] == path.name
    assert video.max_duration == 13 + 60
    assert not video.require_signed
    assert await redis_client.get(KEYS.stream(stored.stream_id)) == job.recording_id
    assert await redis_client.exists(job.record.key) == 0
    assert all(e.authorized for e in cloudflare.log)


async def test_a_worker_restart_continues_the_same_video(
    cloudflare: CloudflareDouble, tus_server: TusServer, redis_client: aioredis.Redis,
    tmp_path: Path,
) -> None:
    path = video_file(tmp_path / "restart.webm", 16 * MIB)
    first = target_for(cloudflare, redis_client)
    job = file_job(redis_client, path)
    task = asyncio.create_task(first.store(job))
    while not any(e.status == 204 for e in cloudflare.requests("PATCH")):
        assert not task.done(), task
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await first.close()
    assert (await job.record.load())["url"].endswith("?tusv2=true")
    await cloudflare.settled()  # the cancelled PATCH is logged before `before` is taken
    before = len(cloudflare.log)
    second = target_for(cloudflare, redis_client)
    try:
        stored = await second.store(file_job(redis_client, path))
    finally:
        await second.close()
    after = cloudflare.log[before:]
    assert [e.method for e in after[:2]] == ["HEAD", "PATCH"], after
    assert (after[1].upload_offset or 0) >= CHUNK
    assert len(cloudflare.requests("POST")) == 1  # one video, continued
    assert stored.stream_id is not None
    assert sha256_of(stored_bytes(tus_server, cloudflare, stored.stream_id)) == job.info.sha256


async def test_a_gone_upload_is_created_again(
    cloudflare: CloudflareDouble, tus_server: TusServer, redis_client: aioredis.Redis,
    tmp_path: Path,
) -> None:
    path = video_file(tmp_path / "gone.webm", 11 * MIB)
    cloudflare.faults.append(Fault("PATCH", status=410, skip=1))
    target = target_for(cloudflare, redis_client)
    try:
        stored = await target.store(file_job(redis_client, path))
    finally:
        await target.close()
    creations = cloudflare.requests("POST")
    assert len(creations) == 2
    assert stored.stream_id is not None
    assert list(cloudflare.videos)[-1] == stored.stream_id
    assert sha256_of(stored_bytes(tus_server, cloudflare, stored.stream_id)) == sha256_of(path)


@pytest.mark.parametrize(("status", "meaning"), [(412, "does not support tus"),
                                                 (415, "bug")])
async def test_version_and_content_type_refusals_give_up_at_once(
    cloudflare: CloudflareDouble, redis_client: aioredis.Redis, tmp_path: Path,
    status: int, meaning: str,
) -> None:
    path = video_file(tmp_path / f"refused{status}.webm", 6 * MIB)
    cloudflare.faults.append(Fault("PATCH", status=status))
    target = target_for(cloudflare, redis_client)
    try:
        with pytest.raises(PermanentError, match=meaning):
            await target.store(file_job(redis_client, path))
    finally:
        await target.close()
    assert len(cloudflare.requests("PATCH")) == 1  # not retried


async def test_checksum_mismatch_and_offset_conflict_resend_after_head(
    cloudflare: CloudflareDouble, tus_server: TusServer, redis_client: aioredis.Redis,
    tmp_path: Path,
) -> None:
    path = video_file(tmp_path / "resend.webm", 7 * MIB)
    cloudflare.faults += [Fault("PATCH", status=460), Fault("PATCH", status=409)]
    target = target_for(cloudflare, redis_client)
    try:
        stored = await target.store(file_job(redis_client, path))
    finally:
        await target.close()
    methods = [e.method for e in cloudflare.log if e.method in ("HEAD", "PATCH")]
    assert methods[:4] == ["PATCH", "HEAD", "PATCH", "HEAD"], methods
    assert stored.stream_id is not None
    assert sha256_of(stored_bytes(tus_server, cloudflare, stored.stream_id)) == sha256_of(path)


async def test_a_bad_token_is_refused_without_retries(
    cloudflare: CloudflareDouble, redis_client: aioredis.Redis, tmp_path: Path,
) -> None:
    path = video_file(tmp_path / "token.webm", MIB)
    target = target_for(cloudflare, redis_client, token="wrong")
    try:
        with pytest.raises(PermanentError, match="401"):
            await target.store(file_job(redis_client, path))
    finally:
        await target.close()
    assert [e.status for e in cloudflare.log] == [401]


async def test_signing_keys_make_videos_require_signed_urls(
    cloudflare: CloudflareDouble, redis_client: aioredis.Redis, tmp_path: Path,
) -> None:
    path = video_file(tmp_path / "signed.webm", MIB)
    target = target_for(cloudflare, redis_client, cf_stream_key_id="key-1",
                        cf_stream_key_pem="-----BEGIN PRIVATE KEY-----")
    try:
        stored = await target.store(file_job(redis_client, path))
    finally:
        await target.close()
    assert stored.stream_id is not None
    assert cloudflare.videos[stored.stream_id].require_signed


def audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libopus", rate=48000)
        for i in range(50):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 960), dtype=np.int16),
                                               format="s16", layout="mono")
            frame.sample_rate = 48000
            frame.pts = i * 960
            frame.time_base = Fraction(1, 48000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


async def test_audio_only_files_are_not_sent_to_stream(
    cloudflare: CloudflareDouble, redis_client: aioredis.Redis, tmp_path: Path,
) -> None:
    path = audio_only(tmp_path / "voice.webm")
    target = target_for(cloudflare, redis_client)
    try:
        stored = await target.store(file_job(redis_client, path))
    finally:
        await target.close()
    assert not stored.uploaded
    assert stored.stream_id is None
    assert stored.playback is not None
    assert (stored.playback.state, stored.playback.error) == ("skipped", "audio-only")
    assert cloudflare.log == []
