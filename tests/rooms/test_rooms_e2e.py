"""End to end: a real recorderd runs its rooms in a warm pool of room workers (or, with
``RECORDER_ROOM_ISOLATION=process``, a process per room).

Killing a worker (as a codec segfault would) ends its rooms' recordings as crash recovery
does, closes its publishers' sessions (they post again and land on a live worker), leaves
the other worker's rooms recording, and a new worker takes the dead one's place; a SIGTERM
drain finalises every room and leaves no process behind; refusals raised inside a room
process reach the HTTP client with the status they had in-process.
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
from tests.support.api import WAIT_SECONDS, call, metrics, wait_status
from tests.support.daemon import Daemon, run_daemon, stop_cleanly
from tests.support.media import probe
from tests.support.publisher import WhipPublisher

MAX_LOSS = 2.0  # docs/media.md: a kill loses at most the last 2 s
LENGTH_SLACK = 1.0  # a whole file against the span between started_at and stopped_at


def room_processes(daemon_pid: int) -> dict[str, int]:
    """Name (`worker-N`, or a room id) -> pid of the daemon's room processes."""
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
            if arg.startswith(b"--name="):
                found[arg[len(b"--name="):].decode()] = int(entry.name)
    return found


async def workers_up(daemon: Daemon, count: int) -> dict[str, int]:
    """The pool's workers once `count` of them run."""
    deadline = time.monotonic() + WAIT_SECONDS
    while len(found := room_processes(daemon.process.pid)) < count:
        assert time.monotonic() < deadline, (found, daemon.log()[-3000:])
        await asyncio.sleep(0.1)
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


async def test_a_killed_worker_takes_down_its_rooms_only(redis_url: str) -> None:
    # Publishers open the rooms in turn: with no recording yet every price is 0, so they
    # alternate by room count: worker 0 gets rooms 1, 3 and 5, worker 1 rooms 2 and 4.
    rooms = [f"room-pool-{k}" for k in range(1, 6)]
    with run_daemon(redis_url, max_per_user=10, max_publishers_per_user=10,
                    room_workers=2) as daemon:
        headers = daemon.headers("user-pool")
        async with AsyncExitStack() as stack:
            before = await workers_up(daemon, 2)
            publishers = await publish_each(stack, daemon, rooms, headers)
            http = await stack.enter_async_context(aiohttp.ClientSession())
            (base1, rid1, state1), (base3, rid3, _), (base2, rid2, _) = [
                await record(http, daemon, room, headers) for room in rooms[:3:2] + rooms[1:2]]
            started = datetime.fromisoformat(state1["started_at"]).timestamp()
            await asyncio.sleep(max(0.0, started + 5.0 - time.time()))
            media_at_kill = time.time() - started
            os.kill(before["worker-0"], signal.SIGKILL)

            lost = [await wait_status(http, base, headers, {"completed", "failed"}, within=60)
                    for base in (base1, base3)]
            after = await workers_up(daemon, 2)
            assert after["worker-1"] == before["worker-1"]
            assert after["worker-0"] != before["worker-0"]
            for publisher in publishers[0::2]:  # the node closed their sessions
                publisher.delete_status = 0
            again = await stack.enter_async_context(WhipPublisher(
                f"{daemon.url}/whip/{rooms[4]}", headers["Authorization"][7:],
                video=(320, 180), fps=15))
            base5, rid5, _ = await record(http, daemon, rooms[4], headers)
            await asyncio.sleep(2.0)
            assert (await call(http, "GET", f"{base2}/status", headers, 200))["status"] \
                == "recording"
            for base in (base2, base5):
                await call(http, "POST", f"{base}/stop", headers, 200)
            kept, posted_again = [await wait_status(http, base, headers,
                                                    {"completed", "failed"})
                                  for base in (base2, base5)]
            assert again.delete_status is None  # still connected, deleted on exit
            deadline = time.monotonic() + WAIT_SECONDS
            while (values := await metrics(http, daemon)).get(
                    "recorder_room_worker_restarts_total") != 1:  # the gauges follow the heartbeat
                assert time.monotonic() < deadline, values
                await asyncio.sleep(0.5)

        assert daemon.process.poll() is None  # recorderd itself never went down
        assert values['recorder_room_worker_rooms{worker="1"}'] >= 1
        assert values['recorder_room_worker_pss_bytes{worker="0"}'] > 0
        for state, rid in zip(lost, (rid1, rid3), strict=True):
            assert state["status"] == "completed", state
            assert (state["stop_reason"], state["recovered"]) == ("recovered", True), state
            info = await asyncio.to_thread(probe, daemon.storage / rid / state["file_name"])
            assert info.video_seconds >= media_at_kill - MAX_LOSS, (info, media_at_kill)
        for state, rid in ((kept, rid2), (posted_again, rid5)):
            assert (state["status"], state["stop_reason"]) == ("completed", "requested"), state
            info = await asyncio.to_thread(probe, daemon.storage / rid / state["file_name"])
            assert info.video_seconds >= span(state) - LENGTH_SLACK, (info, span(state))
        assert span(kept) > media_at_kill + 1.0  # it went on past the other worker's death


async def test_sigterm_drains_room_processes_and_leaves_none(redis_url: str) -> None:
    rooms = ["room-proc-drain-1", "room-proc-drain-2"]
    with run_daemon(redis_url, max_per_user=10, room_workers=2) as daemon:
        headers = daemon.headers("user-proc-drain")
        async with AsyncExitStack() as stack:
            publishers = await publish_each(stack, daemon, rooms, headers)
            http = await stack.enter_async_context(aiohttp.ClientSession())
            rids = [(await record(http, daemon, room, headers, fmt))[1]
                    for room, fmt in zip(rooms, ["webm", "mp4"], strict=True)]
            pids = room_processes(daemon.process.pid)
            assert set(pids) == {"worker-0", "worker-1"}, pids
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
            async with (WhipPublisher(whip, headers["Authorization"][7:], video=(320, 180)),
                        http.post(whip, data=offer, headers=sdp) as resp):
                body = await resp.text()
                assert resp.status == 503, body
                assert "1 publishers" in body
                assert resp.headers["Retry-After"] == "10"


async def test_a_process_per_room_comes_and_goes_with_its_room(redis_url: str) -> None:
    rooms = ["room-own-1", "room-own-2"]
    with run_daemon(redis_url, max_per_user=10, room_isolation="process") as daemon:
        headers = daemon.headers("user-own")
        assert room_processes(daemon.process.pid) == {}  # nothing warm
        async with AsyncExitStack() as stack:
            await publish_each(stack, daemon, rooms, headers)
            http = await stack.enter_async_context(aiohttp.ClientSession())
            started = [await record(http, daemon, room, headers) for room in rooms]
            assert set(room_processes(daemon.process.pid)) == set(rooms)
            await asyncio.sleep(2.0)
            states = []
            for base, _, _ in started:
                await call(http, "POST", f"{base}/stop", headers, 200)
                states.append(await wait_status(http, base, headers, {"completed", "failed"}))
        for (_, rid, _), state in zip(started, states, strict=True):
            assert state["status"] == "completed", state
            info = await asyncio.to_thread(probe, daemon.storage / rid / state["file_name"])
            assert info.video_seconds >= span(state) - LENGTH_SLACK, (info, span(state))
        deadline = time.monotonic() + WAIT_SECONDS
        while room_processes(daemon.process.pid):  # publishers gone: each room's process exits
            assert time.monotonic() < deadline, daemon.log()[-3000:]
            await asyncio.sleep(0.5)
