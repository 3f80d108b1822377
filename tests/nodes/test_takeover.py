"""A node killed in the middle of a recording and never restarted: another node on the same
Redis takes the recording over after RECORDER_ORPHAN_TIMEOUT_SECONDS when it can read the
files, or fails it naming the lost node and the path (docs/operations.md)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.api import call, node_settings, recording_url, room_url, wait_status
from tests.support.daemon import Daemon, run_daemon
from tests.support.media import probe
from tests.support.publisher import WhipPublisher

ORPHAN_TIMEOUT = 2


def node_id(daemon: Daemon) -> str:
    return f"test-node:{daemon.url.rsplit(':', 1)[1]}"


async def record_then_kill(http: aiohttp.ClientSession, a: Daemon, room: str,
                           headers: dict[str, str], seconds: float) -> str:
    """A recording on A with media for `seconds`, then A is SIGKILLed; its id."""
    async with WhipPublisher(f"{a.url}/whip/{room}", headers["Authorization"][7:],
                             video=(320, 240)) as publisher:
        state = await call(http, "POST", f"{room_url(a, room)}/recording/start", headers, 201,
                           params={"quality": "low", "recording_format": "webm"})
        rid: str = state["recording_id"]
        await wait_status(http, recording_url(a, room, rid), headers, {"recording"})
        await asyncio.sleep(seconds)
        a.process.send_signal(signal.SIGKILL)
        assert a.process.wait(10) == -signal.SIGKILL
        publisher.delete_status = 0  # its node is gone: nothing to delete
    return rid


async def test_a_dead_nodes_recording_is_finished_by_a_node_sharing_its_disk(
        redis_url: str, tmp_path: Path) -> None:
    settings: dict[str, Any] = node_settings(orphan_timeout_seconds=ORPHAN_TIMEOUT)
    storage = tmp_path / "shared"
    room = "room-takeover"
    with run_daemon(redis_url, storage=storage, **settings) as a, \
            run_daemon(redis_url, storage=storage, **settings) as b:
        headers = a.headers("user-t", rooms=[room])
        async with aiohttp.ClientSession() as http:
            rid = await record_then_kill(http, a, room, headers, 4)
            state = await wait_status(http, recording_url(b, room, rid), headers,
                                      {"completed", "failed"})
            # The room is free again: a new start on B records there.
            restart = await call(http, "POST", f"{room_url(b, room)}/recording/start",
                                 headers, 201, params={"quality": "low"})
            assert restart["node_id"] == node_id(b)
            await call(http, "DELETE", f"{room_url(b, room)}/recording/"
                                       f"{restart['recording_id']}", headers)
        b_log = b.log()
    assert state["status"] == "completed", state
    assert state["stop_reason"] == "recovered"
    assert state["recovered"] is True
    assert state["node_id"] == node_id(b)
    assert state["files"], state
    path = storage / rid / state["file_name"]
    info = await asyncio.to_thread(probe, path)
    assert info.video_codec == "vp8"
    assert info.video_seconds >= 2  # 4 s were sent; at most the last 2 s may be lost
    assert state["duration_seconds"] >= 2
    assert f"recording {rid}: taken over from lost node {node_id(a)}" in b_log


async def test_a_dead_nodes_recording_fails_where_its_files_cannot_be_read(
        redis_url: str, tmp_path: Path) -> None:
    settings: dict[str, Any] = node_settings(orphan_timeout_seconds=ORPHAN_TIMEOUT)
    room = "room-lost-disk"
    with run_daemon(redis_url, storage=tmp_path / "a", **settings) as a, \
            run_daemon(redis_url, storage=tmp_path / "b", **settings) as b:
        headers = a.headers("user-l", rooms=[room])
        async with aiohttp.ClientSession() as http:
            rid = await record_then_kill(http, a, room, headers, 2)
            folder = a.storage / rid
            assert folder.is_dir()
            a.storage.rename(tmp_path / "a-disk-gone")  # the dead node's disk goes with it
            state = await wait_status(http, recording_url(b, room, rid), headers,
                                      {"completed", "failed"})
            active = await call(http, "GET", f"{room_url(b, room)}/recordings", headers)
    assert state["status"] == "failed", state
    assert node_id(a) in state["error"]
    assert str(folder) in state["error"]
    assert state["node_id"] == node_id(a)
    assert [r["status"] for r in active["recordings"]] == ["failed"]
