"""Uploads to S3 (moto's server) as a user of `recorderd` and `recorder-worker` sees them."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families

from recorder.state.jobs import UploadQueue
from recorder.state.totals import ClusterTotals
from tests.support.api import call, wait_status
from tests.support.daemon import run_daemon
from tests.support.finished_recordings import (
    KEYS,
    drained,
    events,
    finished_recording,
    queue_job,
    sha256_of,
    state_of,
    wait_for,
)
from tests.support.manifests import check_manifest
from tests.support.publisher import WhipPublisher
from tests.support.upload_servers import AWS_ENV, BUCKET, MotoServer, PartProxy, run_worker

MIB = 1 << 20


def node_of(url: str) -> str:
    return f"test-node:{url.rsplit(':', 1)[1]}"


async def metric_values(http: aiohttp.ClientSession, url: str) -> dict[str, float]:
    async with http.get(f"{url}/metrics") as response:
        text = await response.text()
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples
            if not s.labels}


async def test_a_recording_lands_in_s3_verified_and_leaves_the_disk(
    moto: MotoServer, redis_client: aioredis.Redis, redis_url: str, tmp_path: Path,
) -> None:
    with run_daemon(redis_url, upload_target="s3", s3_bucket=BUCKET,
                    s3_endpoint_url=moto.url) as daemon, \
            run_worker(redis_url, node_of(daemon.url), daemon.storage, tmp_path,
                       s3_endpoint_url=moto.url):
        room = "s3-room"
        headers = daemon.headers("user-s3", rooms=[room])
        rooms_url = f"{daemon.url}/api/webrtc/rooms/{room}"
        async with events(redis_url) as seen, aiohttp.ClientSession() as http:
            async with WhipPublisher(f"{daemon.url}/whip/{room}",
                                     headers["Authorization"][7:], video=(640, 360), fps=15):
                state = await call(http, "POST", f"{rooms_url}/recording/start", headers, 201,
                                   json={"quality": "low"})
                rid = state["recording_id"]
                assert state["upload"]["target"] == "s3"
                base = f"{rooms_url}/recording/{rid}"
                await wait_status(http, base, headers, {"recording"})
                await asyncio.sleep(2.0)
                stopped = await call(http, "POST", f"{base}/stop", headers, 200)
                assert stopped["status"] == "processing"
            final = await wait_status(http, base, headers, {"completed", "failed"}, within=90)
            metrics = await metric_values(http, daemon.url)
        folder = daemon.storage / final["recording_id"]
        left = sorted(os.listdir(folder))  # the daemon's storage goes at exit
    assert final["status"] == "completed", final
    key = f"webrtc-recordings/{room}/{rid}/recording_{rid}.webm"
    assert final["s3_key"] == key
    assert final["files"][0]["s3_key"] == key
    assert final["upload"]["state"] == "uploaded"
    assert final["upload"]["attempts"] == 1
    assert final["upload"]["bytes_sent"] == sum(f["size"] for f in final["files"])
    s3 = moto.client()
    _check_sidecars_beside_the_video(s3, final, key, tmp_path)
    head = s3.head_object(Bucket=BUCKET, Key=key)
    assert head["ContentLength"] == final["file_size_bytes"]
    assert head["Metadata"]["sha256"] == final["sha256"]
    local = tmp_path / "downloaded.webm"
    s3.download_file(BUCKET, key, str(local))
    assert sha256_of(local) == final["sha256"]
    assert left == [".uploaded"]
    mine = [e["type"] for e in seen if e["recording_id"] == rid]
    assert mine[-2:] == ["recording_stopped", "recording_completed"], mine
    assert mine.count("recording_completed") == 1
    assert metrics["recorder_storage_free_bytes"] > 0
    assert "recorder_upload_queue_depth" in metrics


def _check_sidecars_beside_the_video(s3: Any, final: dict[str, Any], key: str,
                                     tmp_path: Path) -> None:
    """Thumbnail and manifest are stored next to the video; the manifest, uploaded last,
    says where every other file went and follows the schema."""
    folder = key.rsplit("/", 1)[0]
    kinds = {f["kind"]: f for f in final["files"]}
    assert set(kinds) == {"composite", "thumbnail", "manifest"}, kinds
    assert final["files"][-1]["kind"] == "manifest"
    for info in final["files"]:
        assert info["s3_key"] == f"{folder}/{info['name']}"
    local = tmp_path / "manifest.json"
    s3.download_file(BUCKET, kinds["manifest"]["s3_key"], str(local))
    manifest = check_manifest(local)
    assert manifest["status"] == "completed"
    assert {f["name"]: f["location"] for f in manifest["files"]} == {
        f["name"]: {"type": "s3", "key": f["s3_key"]} for f in final["files"]
        if f["kind"] != "manifest"}
    assert sha256_of(local) == kinds["manifest"]["sha256"]


async def test_a_target_down_for_a_while_delays_the_upload_and_loses_nothing(
    redis_client: aioredis.Redis, redis_url: str, storage: Path, tmp_path: Path,
) -> None:
    node = "down-node:1"
    state = await finished_recording(redis_client, node, storage, size=30 * MIB)
    rid = state.recording_id
    s3 = MotoServer()
    s3.start()
    try:
        s3.create_bucket()
        async with PartProxy(s3.url, delay=0.3) as proxy:
            with run_worker(redis_url, node, storage, tmp_path, s3_endpoint_url=proxy.url,
                            s3_part_bytes=5 * MIB, upload_retry_attempts=30,
                            upload_retry_max_seconds=5) as worker:
                await queue_job(redis_client, node, rid)
                deadline = time.monotonic() + 60
                while len(proxy.sent()) < 2:
                    assert time.monotonic() < deadline, worker.log()[-3000:]
                    await asyncio.sleep(0.05)
                proxy.down = True  # the target goes down mid-upload, losing what it held
                s3.stop()
                down_since = time.monotonic()
                while time.monotonic() - down_since < 60:  # down for a whole minute
                    during = await state_of(redis_client, rid)
                    assert during.status.value == "processing", during.error
                    await asyncio.sleep(0.5)
                assert (storage / rid / state.file_name).is_file()
                assert "next try in" in worker.log()
                s3.start()
                s3.create_bucket()
                proxy.down = False
                final = await wait_for(redis_client, rid, {"completed", "failed"})
                log = worker.log()
        assert final.status.value == "completed", (final.error, log[-3000:])
        assert "starting over" in log
        head = s3.client().head_object(Bucket=BUCKET, Key=final.s3_key)
        assert head["ContentLength"] == 30 * MIB
        assert head["Metadata"]["sha256"] == state.sha256
        assert not (storage / rid / state.file_name).exists()
    finally:
        s3.stop()


async def test_a_given_up_upload_fails_keeps_the_file_and_an_admin_retry_completes_it(
    redis_client: aioredis.Redis, redis_url: str, tmp_path: Path,
) -> None:
    s3 = MotoServer()  # not started: nothing listens on its port yet
    with run_daemon(redis_url, upload_target="s3", s3_bucket=BUCKET,
                    s3_endpoint_url=s3.url) as daemon:
        node = node_of(daemon.url)
        state = await finished_recording(redis_client, node, daemon.storage, size=2 * MIB)
        busy = await finished_recording(redis_client, node, daemon.storage, size=MIB)
        rid = state.recording_id
        retry_url = f"{daemon.url}/api/webrtc/admin/recordings/{rid}/retry-upload"
        with run_worker(redis_url, node, daemon.storage, tmp_path, s3_endpoint_url=s3.url,
                        upload_retry_attempts=2, upload_retry_max_seconds=0.5):
            await queue_job(redis_client, node, rid)
            failed = await wait_for(redis_client, rid, {"failed", "completed"})
            assert failed.status.value == "failed"
            assert failed.error is not None
            assert failed.error.startswith("upload: ")
            assert failed.upload is not None
            assert failed.upload.state.value == "failed"
            assert (daemon.storage / rid / state.file_name).is_file()
            assert not (daemon.storage / rid / ".uploaded").exists()
            given_up = await ClusterTotals(redis_client, KEYS).read()
            assert (given_up.upload_failures, given_up.uploaded_bytes) == ({"s3": 1}, {})
            async with aiohttp.ClientSession() as http:
                async with http.post(retry_url, headers=daemon.headers("user-up")) as resp:
                    assert resp.status == 403
                other = (f"{daemon.url}/api/webrtc/admin/recordings/{busy.recording_id}"
                         "/retry-upload")
                async with http.post(other, headers=daemon.headers("root", "admin")) as resp:
                    assert resp.status == 409  # processing, not failed
                s3.start()
                s3.create_bucket()
                retried = await call(http, "POST", retry_url, daemon.headers("root", "admin"),
                                     200)
                assert retried["status"] == "processing"
                assert retried["upload"]["state"] == "queued"
                assert retried["error"] is None
            final = await wait_for(redis_client, rid, {"completed", "failed"})
    try:
        assert final.status.value == "completed", final.error
        assert final.upload is not None
        assert final.upload.attempts == 2
        head = s3.client().head_object(Bucket=BUCKET, Key=final.s3_key)
        assert head["Metadata"]["sha256"] == state.sha256
        assert await redis_client.exists(KEYS.upload(rid, state.file_name)) == 0
        # the give-up wrote the manifest (failed), the retry uploaded it last, rewritten
        manifest = final.files[-1]
        assert final.s3_key is not None
        folder = final.s3_key.rsplit("/", 1)[0]
        assert (manifest.kind, manifest.s3_key) == ("manifest", f"{folder}/manifest.json")
        totals = await ClusterTotals(redis_client, KEYS).read()  # what /metrics exports
        assert (totals.upload_failures, totals.uploaded_bytes) == (
            {"s3": 1}, {"s3": 2 * MIB + manifest.size})
    finally:
        s3.stop()


async def test_the_embedded_node_uploads_by_itself(moto: MotoServer) -> None:
    with run_daemon("embedded", AWS_ENV, upload_target="s3", s3_bucket=BUCKET,
                    s3_endpoint_url=moto.url) as daemon:
        room = "embedded-room"
        headers = daemon.headers("user-emb", rooms=[room])
        rooms_url = f"{daemon.url}/api/webrtc/rooms/{room}"
        async with aiohttp.ClientSession() as http:
            async with WhipPublisher(f"{daemon.url}/whip/{room}",
                                     headers["Authorization"][7:], video=(640, 360), fps=15):
                state = await call(http, "POST", f"{rooms_url}/recording/start", headers, 201,
                                   json={"quality": "low"})
                base = f"{rooms_url}/recording/{state['recording_id']}"
                await wait_status(http, base, headers, {"recording"})
                await asyncio.sleep(1.5)
                await call(http, "POST", f"{base}/stop", headers, 200)
            final = await wait_status(http, base, headers, {"completed", "failed"}, within=90)
    assert final["status"] == "completed", final
    head = moto.client().head_object(Bucket=BUCKET, Key=final["s3_key"])
    assert head["Metadata"]["sha256"] == final["sha256"]


async def test_a_start_for_an_unconfigured_target_is_refused(redis_url: str) -> None:
    with run_daemon(redis_url) as daemon:
        async with aiohttp.ClientSession() as http:
            for target, setting in (("s3", "RECORDER_S3_BUCKET"),
                                    ("cloudflare_stream", "RECORDER_CF_ACCOUNT_ID")):
                async with http.post(f"{daemon.url}/api/webrtc/rooms/r/recording/start",
                                     headers=daemon.headers("u"),
                                     json={"upload": target}) as resp:
                    body = await resp.json()
                    assert resp.status == 400, body
                    assert setting in body["detail"]


async def test_a_job_lost_before_it_was_queued_is_queued_again_when_the_node_starts(
    moto: MotoServer, redis_client: aioredis.Redis, redis_url: str, tmp_path: Path,
) -> None:
    node = "restarted-node:1"
    storage = tmp_path / "recordings"
    lost = await finished_recording(redis_client, node, storage, size=MIB)  # no job queued
    queue = UploadQueue(redis_client, KEYS, node)
    assert await queue.queued_recordings() == set()
    with run_daemon(redis_url, node_id=node, storage_dir=storage, upload_target="s3",
                    s3_bucket=BUCKET, s3_endpoint_url=moto.url):
        deadline = time.monotonic() + 30
        while await queue.queued_recordings() != {lost.recording_id}:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        with run_worker(redis_url, node, storage, tmp_path, s3_endpoint_url=moto.url):
            final = await wait_for(redis_client, lost.recording_id, {"completed", "failed"})
            await drained(redis_client, node)
    assert final.status.value == "completed", final.error
