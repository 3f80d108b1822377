"""End to end: Redis restarted empty in the middle of a recording loses nothing.

The node writes back what it runs (docs/operations.md, "When the store fails"): within two
heartbeats the recording's state, its indexes and the limits it holds are back; a start in
the meantime answers 503 with Retry-After, then 429 `max_per_room` as before the restart;
the recording stays readable and stoppable and its file is complete. A restart after it
finished brings its final state back too.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path

import aiohttp
import redis.asyncio as aioredis

from tests.support.api import PREFIX, WAIT_SECONDS, call, wait_status
from tests.support.daemon import run_daemon
from tests.support.media import probe
from tests.support.publisher import WhipPublisher
from tests.support.redis_processes import redis_process

HEARTBEAT = 2
MEDIA_BEFORE = 3.0  # seconds recorded before the restart
MEDIA_AFTER = 3.0  # and after it
MAX_LOSS = 1.0  # a stop loses at most what the encoder had not flushed


async def _start_answer(http: aiohttp.ClientSession, url: str, headers: dict[str, str]
                        ) -> tuple[int, dict[str, str], str]:
    async with http.post(url, headers=headers) as resp:
        return resp.status, dict(resp.headers), await resp.text()


async def test_a_recording_survives_redis_restarted_empty(tmp_path: Path) -> None:
    room = "room-restart"
    with redis_process() as server, run_daemon(
            server.url, storage=tmp_path / "recordings", heartbeat_seconds=HEARTBEAT,
            max_per_room=1, max_per_user=10) as daemon:
        owner, other = daemon.headers("user-a", rooms=[room]), daemon.headers("user-b")
        start = f"{daemon.url}/api/webrtc/rooms/{room}/recording/start"
        async with WhipPublisher(f"{daemon.url}/whip/{room}", owner["Authorization"][7:],
                                 video=(640, 360), fps=15), aiohttp.ClientSession() as http:
            rid = (await call(http, "POST", start, owner, 201,
                              params={"recording_format": "webm", "quality": "low"})
                   )["recording_id"]
            base = f"{daemon.url}/api/webrtc/rooms/{room}/recording/{rid}"
            began = datetime.fromisoformat(
                (await wait_status(http, base, owner, {"recording"}))["started_at"])
            await asyncio.sleep(MEDIA_BEFORE)

            server.restart_empty()
            # Right after the restart nothing may be admitted: the store has no epoch yet,
            # or the nodes are writing back what they run.
            status, headers, body = await _start_answer(http, start, other)
            assert status == 503, body
            assert int(headers["Retry-After"]) >= 1

            # Once the gate opens, the room's limit holds again: 429 max_per_room.
            deadline = time.monotonic() + WAIT_SECONDS
            while status == 503:
                assert time.monotonic() < deadline, body
                await asyncio.sleep(min(int(headers["Retry-After"]), HEARTBEAT) / 4)
                status, headers, body = await _start_answer(http, start, other)
            assert status == 429, body
            assert '"max_per_room"' in body

            state = await call(http, "GET", f"{base}/status", owner)
            assert state["status"] == "recording"
            redis = aioredis.from_url(server.url, decode_responses=True)
            try:
                assert rid in await redis.smembers(f"{PREFIX}active")
                assert rid in await redis.smembers(f"{PREFIX}room:{room}")
                assert rid in await redis.smembers(f"{PREFIX}user:user-a")
                assert await redis.get(f"{PREFIX}room-owner:{room}") == daemon.node_id
            finally:
                await redis.aclose()

            await asyncio.sleep(MEDIA_AFTER)
            stopped = await call(http, "POST", f"{base}/stop", owner, 200)
            media = (datetime.fromisoformat(stopped["stopped_at"]) - began).total_seconds()
            final = await wait_status(http, base, owner, {"completed", "failed"})

            # a second restart after it finished: the node writes its final state back
            server.restart_empty()
            deadline = time.monotonic() + WAIT_SECONDS
            while True:
                async with http.get(f"{base}/status", headers=owner) as resp:
                    if resp.status == 200:
                        again = await resp.json()
                        break
                    assert resp.status in (404, 503), await resp.text()
                assert time.monotonic() < deadline, "the finished state never came back"
                await asyncio.sleep(HEARTBEAT / 4)
            assert again == final

    assert final["status"] == "completed", final
    path = tmp_path / "recordings" / rid / f"recording_{rid}.webm"
    assert final["files"][0]["size"] == path.stat().st_size
    info = await asyncio.to_thread(probe, path)
    assert info.video_seconds >= media - MAX_LOSS, (info, media)
    assert final["duration_seconds"] >= media - MAX_LOSS
