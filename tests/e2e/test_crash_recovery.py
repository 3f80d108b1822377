"""End to end: recorderd killed with SIGKILL and started again (same node id, same storage)
finishes what it left: the recording that had media completes as `recovered` with a file
missing at most its last 2 s (docs/media.md, docs/operations.md); one still waiting for media
fails."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.api import call, wait_status
from tests.support.daemon import run_daemon
from tests.support.manifests import check_manifest
from tests.support.media import probe
from tests.support.publisher import WhipPublisher

MAX_LOSS = 2.0
MEDIA_BEFORE_KILL = 5.0


async def test_a_restarted_node_recovers_its_orphans(redis_url: str, tmp_path: Path) -> None:
    node = f"crash-node-{uuid.uuid4().hex[:8]}"
    storage = tmp_path / "recordings"
    live_room, empty_room = f"room-crash-{node}", f"room-empty-{node}"
    # no-media timeout far beyond the test: the pending one must fail through recovery
    settings: dict[str, Any] = {"node_id": node, "no_media_timeout_seconds": 600}
    with run_daemon(redis_url, storage=storage, **settings) as daemon:
        headers = daemon.headers("user-crash")
        live = f"{daemon.url}/api/webrtc/rooms/{live_room}/recording"
        empty = f"{daemon.url}/api/webrtc/rooms/{empty_room}/recording"
        async with WhipPublisher(f"{daemon.url}/whip/{live_room}", headers["Authorization"][7:],
                                 video=(640, 360), fps=15) as publisher, \
                aiohttp.ClientSession() as http:
            state = await call(http, "POST", f"{live}/start", headers, 201,
                               params={"recording_format": "webm", "quality": "low"})
            rid = state["recording_id"]
            pending = (await call(http, "POST", f"{empty}/start", headers, 201))["recording_id"]
            state = await wait_status(http, f"{live}/{rid}", headers, {"recording"})
            started = datetime.fromisoformat(state["started_at"]).timestamp()
            await asyncio.sleep(max(0.0, started + MEDIA_BEFORE_KILL - time.time()))
            waiting = await call(http, "GET", f"{empty}/{pending}/status", headers, 200)
            assert waiting["status"] == "pending"  # still waiting for media at the kill
            media_at_kill = time.time() - started
            daemon.process.send_signal(signal.SIGKILL)
            assert daemon.process.wait(10) == -signal.SIGKILL
            publisher.delete_status = 0  # its server is gone: nothing to delete

    with run_daemon(redis_url, storage=storage, **settings) as daemon:
        headers = daemon.headers("user-crash")
        live = f"{daemon.url}/api/webrtc/rooms/{live_room}/recording"
        empty = f"{daemon.url}/api/webrtc/rooms/{empty_room}/recording"
        async with aiohttp.ClientSession() as http:
            state = await wait_status(http, f"{live}/{rid}", headers,
                                      {"completed", "failed"}, within=120)
            failed = await wait_status(http, f"{empty}/{pending}", headers,
                                       {"completed", "failed", "cancelled"}, within=60)
            log = daemon.log()

    assert state["status"] == "completed", (state, log[-3000:])
    assert state["stop_reason"] == "recovered"
    assert state["recovered"] is True
    assert [f["name"] for f in state["files"]] == [f"recording_{rid}.webm", "thumbnail.jpg",
                                                   "manifest.json"]
    manifest = check_manifest(storage / rid / "manifest.json")
    assert (manifest["recovered"], manifest["stop_reason"]) == (True, "recovered")
    assert check_manifest(storage / pending / "manifest.json")["status"] == "failed"
    path = storage / rid / f"recording_{rid}.webm"
    assert state["files"][0]["size"] == path.stat().st_size
    info = await asyncio.to_thread(probe, path)
    assert info.video_codec == "vp8"
    assert info.video_seconds >= media_at_kill - MAX_LOSS, (info, media_at_kill)
    assert state["duration_seconds"] >= media_at_kill - MAX_LOSS
    assert failed["status"] == "failed"
    assert "node restarted before media" in failed["error"]
    assert f"recording {rid}: recovered after a restart" in log  # one line each, with its id
    assert f"recording {pending}: orphan failed" in log
