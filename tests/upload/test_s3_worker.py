"""The worker against moto's S3 server over real HTTP, on recordings made in a real Redis."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import redis.asyncio as aioredis

from recorder.state.jobs import UploadQueue
from tests.support.finished_recordings import (
    KEYS,
    drained,
    events,
    finished_recording,
    queue_job,
    recorded_parts,
    state_of,
    wait_for,
)
from tests.support.upload_servers import BUCKET, MotoServer, PartProxy, off_loop, run_worker

MIB = 1 << 20
NODE = "upload-node:1"


async def test_a_killed_worker_is_resumed_without_resending_finished_parts(
    moto: MotoServer, redis_client: aioredis.Redis, redis_url: str, storage: Path,
    tmp_path: Path,
) -> None:
    state = await finished_recording(redis_client, NODE, storage, size=60 * MIB)
    rid = state.recording_id
    record_key = KEYS.upload(rid, state.file_name)
    async with PartProxy(moto.url, delay=0.4) as proxy:
        settings = {"s3_endpoint_url": proxy.url, "s3_part_bytes": 5 * MIB,
                    "job_claim_seconds": 3}
        with run_worker(redis_url, NODE, storage, tmp_path, **settings) as first:
            await queue_job(redis_client, NODE, rid)
            deadline = time.monotonic() + 120
            while len(await recorded_parts(redis_client, rid, state.file_name)) < 4:
                assert time.monotonic() < deadline, first.log()[-3000:]
                await asyncio.sleep(0.05)
            first.kill()
        killed_at = time.monotonic()
        while proxy.in_flight:  # what the dead worker had sent still reaches S3, or not
            assert time.monotonic() - killed_at < 60
            await asyncio.sleep(0.05)
        finished_before = await recorded_parts(redis_client, rid, state.file_name)
        record = await redis_client.hgetall(record_key)
        listing = moto.client().list_parts(Bucket=BUCKET, Key=record["key"],
                                           UploadId=record["upload_id"])
        held_at_kill = {int(p["PartNumber"]) for p in listing.get("Parts", [])}
        assert finished_before <= held_at_kill
        assert (await state_of(redis_client, rid)).status.value == "processing"
        with run_worker(redis_url, NODE, storage, tmp_path, **settings) as second:
            final = await wait_for(redis_client, rid, {"completed", "failed"})
            await drained(redis_client, NODE)
            log = second.log()
    assert final.status.value == "completed", (final.error, log[-3000:])
    sent_after = [p.part_number for p in proxy.parts if p.at > killed_at and p.status == 200]
    # Parts S3 held when the first worker died were not sent again; the rest were, once.
    assert not held_at_kill & set(sent_after), (held_at_kill, sent_after)
    assert sorted(sent_after) == sorted(set(range(1, 13)) - held_at_kill)
    assert "resuming" in log
    head = moto.client().head_object(Bucket=BUCKET, Key=final.s3_key)
    assert head["ContentLength"] == 60 * MIB
    assert head["Metadata"]["sha256"] == state.sha256
    assert not (storage / rid / state.file_name).exists()
    assert (storage / rid / ".uploaded").is_file()
    assert final.upload is not None
    assert final.upload.state.value == "uploaded"
    assert final.upload.bytes_sent == 60 * MIB
    assert await redis_client.exists(record_key) == 0


async def test_a_duplicate_job_stores_one_object_and_completes_once(
    moto: MotoServer, redis_client: aioredis.Redis, redis_url: str, storage: Path,
    tmp_path: Path,
) -> None:
    state = await finished_recording(redis_client, NODE, storage, size=3 * MIB)
    rid = state.recording_id
    async with events(redis_url) as seen:
        with run_worker(redis_url, NODE, storage, tmp_path, s3_endpoint_url=moto.url), \
                run_worker(redis_url, NODE, storage, tmp_path, s3_endpoint_url=moto.url):
            await queue_job(redis_client, NODE, rid)
            await queue_job(redis_client, NODE, rid)
            final = await wait_for(redis_client, rid, {"completed", "failed"})
            await drained(redis_client, NODE)
    assert final.status.value == "completed", final.error
    completions = [e for e in seen if e["recording_id"] == rid and e["type"] ==
                   "recording_completed"]
    assert len(completions) == 1, seen
    listing = moto.client().list_objects_v2(Bucket=BUCKET,
                                            Prefix=f"webrtc-recordings/room-up/{rid}/")
    assert [o["Key"] for o in listing.get("Contents", [])] == [final.s3_key]


async def test_a_stopping_worker_hands_its_job_back_at_once(
    moto: MotoServer, redis_client: aioredis.Redis, redis_url: str, storage: Path,
    tmp_path: Path,
) -> None:
    state = await finished_recording(redis_client, NODE, storage, size=30 * MIB)
    rid = state.recording_id
    async with PartProxy(moto.url, delay=0.4) as proxy:
        settings = {"s3_endpoint_url": proxy.url, "s3_part_bytes": 5 * MIB}  # claim: 300 s
        async with off_loop(run_worker(redis_url, NODE, storage, tmp_path,
                                       **settings)) as first:
            await queue_job(redis_client, NODE, rid)
            deadline = time.monotonic() + 60
            while len(await recorded_parts(redis_client, rid, state.file_name)) < 2:
                assert time.monotonic() < deadline, first.log()[-3000:]
                await asyncio.sleep(0.05)
        # SIGTERM: it exited 0, and its job waits in the stream for anyone, unclaimed.
        assert await UploadQueue(redis_client, KEYS, NODE).depth() == (1, 0)
        assert "handed back" in first.log()
        with run_worker(redis_url, NODE, storage, tmp_path, **settings):
            final = await wait_for(redis_client, rid, {"completed", "failed"}, within=60)
            await drained(redis_client, NODE)
    assert final.status.value == "completed", final.error
    assert len(proxy.sent()) <= 6 + 4  # six parts, and at most the four in flight again
