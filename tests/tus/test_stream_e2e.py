"""A recording stored in Cloudflare Stream (the double, in front of the official tus server),
as a user of `recorderd` and `recorder-worker` sees it."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from tests.support.api import call, wait_status
from tests.support.cloudflare_stream import ACCOUNT, TOKEN, CloudflareDouble
from tests.support.daemon import run_daemon
from tests.support.finished_recordings import KEYS, events, sha256_of
from tests.support.manifests import check_manifest
from tests.support.publisher import WhipPublisher
from tests.support.tus_server import TusServer
from tests.support.upload_servers import run_worker

STREAM = {"cf_account_id": ACCOUNT, "cf_api_token": TOKEN}


async def test_a_recording_lands_in_stream_verified_and_leaves_the_disk(
    cloudflare: CloudflareDouble, tus_server: TusServer, redis_client: aioredis.Redis,
    redis_url: str, tmp_path: Path,
) -> None:
    settings: dict[str, Any] = {**STREAM, "cf_api_base": cloudflare.api_base}
    with run_daemon(redis_url, **settings) as daemon, \
            run_worker(redis_url, f"test-node:{daemon.url.rsplit(':', 1)[1]}", daemon.storage,
                       tmp_path, **settings):
        room = "stream-room"
        headers = daemon.headers("user-cf", rooms=[room])
        rooms_url = f"{daemon.url}/api/webrtc/rooms/{room}"
        async with events(redis_url) as seen, aiohttp.ClientSession() as http:
            async with WhipPublisher(f"{daemon.url}/whip/{room}",
                                     headers["Authorization"][7:], video=(640, 360), fps=15):
                state = await call(http, "POST", f"{rooms_url}/recording/start", headers, 201,
                                   json={"quality": "low", "upload": "cloudflare_stream"})
                rid = state["recording_id"]
                base = f"{rooms_url}/recording/{rid}"
                await wait_status(http, base, headers, {"recording"})
                await asyncio.sleep(2.0)
                await call(http, "POST", f"{base}/stop", headers, 200)
            final = await wait_status(http, base, headers, {"completed", "failed"}, within=90)
        # the daemon's storage goes at exit
        left = sorted(os.listdir(daemon.storage / final["recording_id"]))
        manifest = check_manifest(daemon.storage / final["recording_id"] / "manifest.json")
    assert final["status"] == "completed", final
    stream_id = final["stream_id"]
    assert stream_id in cloudflare.videos
    assert final["files"][0]["stream_id"] == stream_id
    assert final["playback"] == {"state": "pending", "error": None}
    assert final["upload"]["state"] == "uploaded"
    assert final["storage_backend"] == "cloudflare_stream"
    assert final["s3_key"] is None
    stored = tus_server.stored(cloudflare.videos[stream_id].tus_url.rsplit("/", 1)[1])
    assert sha256_of(stored) == final["sha256"]
    assert cloudflare.videos[stream_id].meta["name"] == final["file_name"]
    assert await redis_client.get(KEYS.stream(stream_id)) == rid
    assert 0 < await redis_client.ttl(KEYS.stream(stream_id)) <= 604800
    # only the video goes to Stream; the sidecars stay, served by the file route
    assert left == [".uploaded", "manifest.json", "thumbnail.jpg"]
    assert len(cloudflare.videos) == 1
    assert {f["name"]: f["location"] for f in manifest["files"]} == {
        final["file_name"]: {"type": "cloudflare_stream", "stream_id": stream_id},
        "thumbnail.jpg": {"type": "local", "url": f"/api/webrtc/recordings/{rid}/file"
                                                  "?name=thumbnail.jpg"}}
    assert manifest["status"] == "completed"
    mine = [e["type"] for e in seen if e["recording_id"] == rid]
    assert mine.count("recording_completed") == 1

