"""End to end: while Redis is away a recording's timer still fires on time, and its state
change lands when the store returns, in order (docs/operations.md, "When the store fails");
control requests answer 503 with Retry-After meanwhile and change nothing, and the node
that runs the recording still answers its status."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path

import aiohttp

from tests.support.api import WAIT_SECONDS, call, wait_status
from tests.support.daemon import Daemon, run_daemon
from tests.support.media import probe
from tests.support.publisher import WhipPublisher
from tests.support.redis_processes import redis_process

MAX_DURATION = 3
LATE = 1.5  # the stop may come this much after the limit (the timer, the encoder's flush)


async def logged(daemon: Daemon, text: str) -> None:
    """Until the daemon's log holds `text`."""
    deadline = time.monotonic() + WAIT_SECONDS
    while text not in daemon.log():
        assert time.monotonic() < deadline, daemon.log()[-3000:]
        await asyncio.sleep(0.1)


async def test_max_duration_fires_while_redis_is_down(tmp_path: Path) -> None:
    room = "room-outage"
    with redis_process() as server, run_daemon(
            server.url, storage=tmp_path / "recordings", heartbeat_seconds=1) as daemon:
        owner = daemon.headers("user-o", rooms=[room])
        rooms_url = f"{daemon.url}/api/webrtc/rooms/{room}"
        async with WhipPublisher(f"{daemon.url}/whip/{room}", owner["Authorization"][7:],
                                 video=(640, 360), fps=15), aiohttp.ClientSession() as http:
            rid = (await call(http, "POST", f"{rooms_url}/recording/start", owner, 201,
                              json={"quality": "low", "max_duration_seconds": MAX_DURATION})
                   )["recording_id"]
            base = f"{rooms_url}/recording/{rid}"
            await wait_status(http, base, owner, {"recording"})

            server.kill()
            async with http.post(f"{base}/pause", headers=owner) as resp:
                assert resp.status == 503, await resp.text()
                assert int(resp.headers["Retry-After"]) >= 1
            # the limit passes while the store is down: the node stops the recording anyway
            await logged(daemon, f"recording {rid}: store unreachable: recording -> "
                                 "processing now")
            # its status is still readable: the node that runs it answers
            during = await call(http, "GET", f"{base}/status", owner)
            assert (during["status"], during["stop_reason"]) == ("processing", "max_duration")
            server.start()  # empty: the node writes back the state, then the stop
            final = await wait_status(http, base, owner, {"completed", "failed"})

    assert final["status"] == "completed", final
    assert final["stop_reason"] == "max_duration"
    started = datetime.fromisoformat(final["started_at"])
    stopped = datetime.fromisoformat(final["stopped_at"])
    assert MAX_DURATION <= (stopped - started).total_seconds() <= MAX_DURATION + LATE
    path = tmp_path / "recordings" / rid / f"recording_{rid}.webm"
    info = await asyncio.to_thread(probe, path)
    assert MAX_DURATION - 1 <= info.video_seconds <= MAX_DURATION + LATE, info
