"""End to end: a real recorderd runs each active room in a child process of its own.

Two rooms record in two processes; killing one room's process (as a codec segfault would)
ends that room's recording as crash recovery does while the other room records on; a
SIGTERM drain finalises every room and leaves no process behind; refusals raised inside a
room process reach the HTTP client with the status they had in-process; with
``rooms_per_process`` above 1, rooms beyond one per core share processes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from contextlib import AsyncExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from tests.e2e.test_drain import stored_state, whip_offer
from tests.support.api import call, wait_status
from tests.support.daemon import Daemon, run_daemon, stop_cleanly
from tests.support.media import probe
from tests.support.publisher import WhipPublisher

MAX_LOSS = 2.0  # docs/media.md: a kill loses at most the last 2 s
LENGTH_SLACK = 1.0  # a whole file against the span between started_at and stopped_at


def room_processes(daemon_pid: int) -> dict[str, int]:
    """Room id -> pid of the daemon's children that run a room (`-m recorder.room`)."""
    found: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) != daemon_pid or fields[0] == "Z":
            continue
        if b"recorder.room" not in argv:
            continue
        for arg in argv:
            if arg.startswith(b"--room="):
                found[arg[len(b"--room="):].decode()] = int(entry.name)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def span(state: dict[str, Any]) -> float:
    started = datetime.fromisoformat(state["started_at"])
    stopped = datetime.fromisoformat(state["stopped_at"])
    return (stopped - started).total_seconds()


async def publish_each(stack: AsyncExitStack, daemon: Daemon, rooms: list[str],
                       headers: dict[str, str]) -> list[WhipPublisher]:
    """A small WHIP publisher in each room, closed with `stack`."""
    return [await stack.enter_async_context(WhipPublisher(
        f"{daemon.url}/whip/{room}", headers["Authorization"][7:], video=(320, 180), fps=15))
        for room in rooms]


async def record(http: aiohttp.ClientSession, daemon: Daemon, room: str,
                 headers: dict[str, str], fmt: str = "webm") -> tuple[str, str, dict[str, Any]]:
    base = f"{daemon.url}/api/webrtc/rooms/{room}/recording"
    rid = (await call(http, "POST", f"{base}/start", headers, 201,
                      params={"recording_format": fmt, "quality": "low"}))["recording_id"]
    state = await wait_status(http, f"{base}/{rid}", headers, {"recording"})
    return f"{base}/{rid}", rid, state


async def test_a_killed_room_process_takes_down_its_room_only(redis_url: str) -> None:
    rooms = ["room-proc-a", "room-proc-b"]
    with run_daemon(redis_url, max_per_user=10) as daemon:
        headers = daemon.headers("user-proc")
        async with AsyncExitStack() as stack:
            await publish_each(stack, daemon, rooms, headers)
            http = await stack.enter_async_context(aiohttp.ClientSession())
            (base_a, rid_a, state_a), (base_b, rid_b, _) = [
                await record(http, daemon, room, headers) for room in rooms]

            pids = room_processes(daemon.process.pid)
            assert set(pids) == set(rooms), pids
            assert len({*pids.values(), daemon.process.pid}) == 3

            started_a = datetime.fromisoformat(state_a["started_at"]).timestamp()
            await asyncio.sleep(max(0.0, started_a + 5.0 - time.time()))
            media_at_kill = time.time() - started_a
            os.kill(pids["room-proc-a"], signal.SIGKILL)

            lost = await wait_status(http, base_a, headers, {"completed", "failed"}, within=60)
            await asyncio.sleep(2.0)  # room b records on meanwhile
            assert (await call(http, "GET", f"{base_b}/status", headers, 200))["status"] \
                == "recording"
            assert room_processes(daemon.process.pid) == {"room-proc-b": pids["room-proc-b"]}
            await call(http, "POST", f"{base_b}/stop", headers, 200)
            kept = await wait_status(http, base_b, headers, {"completed", "failed"})

        assert daemon.process.poll() is None  # recorderd itself never went down
        assert lost["status"] == "completed", lost
        assert lost["stop_reason"] == "recovered"
        assert lost["recovered"] is True
        lost_file = daemon.storage / rid_a / lost["file_name"]
        info_a = await asyncio.to_thread(probe, lost_file)
        assert info_a.video_codec == "vp8"
        assert info_a.video_seconds >= media_at_kill - MAX_LOSS, (info_a, media_at_kill)

        assert kept["status"] == "completed", kept
        assert kept["stop_reason"] == "requested", kept
        info_b = await asyncio.to_thread(probe, daemon.storage / rid_b / kept["file_name"])
        assert info_b.video_seconds >= span(kept) - LENGTH_SLACK, (info_b, span(kept))
        assert info_b.video_seconds > media_at_kill + 1.0  # it went on past the other's death


async def test_sigterm_drains_room_processes_and_leaves_none(redis_url: str) -> None:
    rooms = ["room-proc-drain-1", "room-proc-drain-2"]
    with run_daemon(redis_url, max_per_user=10) as daemon:
        headers = daemon.headers("user-proc-drain")
        async with AsyncExitStack() as stack:
            publishers = await publish_each(stack, daemon, rooms, headers)
            http = await stack.enter_async_context(aiohttp.ClientSession())
            rids = [(await record(http, daemon, room, headers, fmt))[1]
                    for room, fmt in zip(rooms, ["webm", "mp4"], strict=True)]
            pids = room_processes(daemon.process.pid)
            assert set(pids) == set(rooms)
            await asyncio.sleep(2.0)
            # SIGTERM, then exit 0 asserted
            await asyncio.to_thread(stop_cleanly, daemon.process, 40, "recorderd", daemon.log)
            for publisher in publishers:
                publisher.delete_status = 0  # its server is gone: nothing to delete

        assert not [pid for pid in pids.values() if alive(pid)], daemon.log()[-3000:]
        for rid in rids:
            state = await stored_state(redis_url, rid)
            assert state["status"] == "completed", state
            assert state["stop_reason"] == "shutdown"
            assert state["recovered"] is False
            info = await asyncio.to_thread(probe, daemon.storage / rid / state["file_name"])
            assert info.video_seconds >= span(state) - LENGTH_SLACK, (info, span(state))


async def test_refusals_in_a_room_process_keep_their_http_status(redis_url: str) -> None:
    room = "room-proc-refusals"
    offer = await whip_offer()
    with run_daemon(redis_url, max_publishers_per_room=1) as daemon:
        headers = daemon.headers("user-proc-ref")
        whip = f"{daemon.url}/whip/{room}"
        sdp = {**headers, "Content-Type": "application/sdp"}
        async with aiohttp.ClientSession() as http:
            async with http.post(whip, data="v=0\r\nnot an offer\r\n", headers=sdp) as resp:
                assert resp.status == 400, await resp.text()
                assert resp.content_type == "application/problem+json"
            async with WhipPublisher(whip, headers["Authorization"][7:], video=(320, 180)):
                assert set(room_processes(daemon.process.pid)) == {room}
                async with http.post(whip, data=offer, headers=sdp) as resp:
                    body = await resp.text()
                    assert resp.status == 503, body
                    assert "1 publishers" in body
                    assert resp.headers["Retry-After"] == "10"


async def test_rooms_share_processes_once_every_core_has_one(redis_url: str) -> None:
    cores = len(os.sched_getaffinity(0))
    rooms = [f"room-share-{k}" for k in range(cores + 1)]
    with run_daemon(redis_url, max_per_user=10, rooms_per_process=2) as daemon:
        headers = daemon.headers("user-share")
        async with AsyncExitStack() as stack:
            await publish_each(stack, daemon, rooms, headers)
            http = await stack.enter_async_context(aiohttp.ClientSession())
            started = [await record(http, daemon, room, headers) for room in rooms]
            children = set(room_processes(daemon.process.pid).values())
            assert len(children) == cores, children  # the last room shares one of them
            await asyncio.sleep(2.0)
            states = []
            for base, _, _ in started:
                await call(http, "POST", f"{base}/stop", headers, 200)
                states.append(await wait_status(http, base, headers, {"completed", "failed"}))
        for (_, rid, _), state in zip(started, states, strict=True):
            assert state["status"] == "completed", state
            info = await asyncio.to_thread(probe, daemon.storage / rid / state["file_name"])
            assert info.video_seconds >= span(state) - LENGTH_SLACK, (info, span(state))
        for _ in range(60):  # the publishers left: every room is idle, each process exits
            if not room_processes(daemon.process.pid):
                break
            await asyncio.sleep(0.5)
        assert not room_processes(daemon.process.pid), daemon.log()[-3000:]
