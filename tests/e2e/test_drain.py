"""End to end: SIGTERM drains a real recorderd (docs/operations.md). Active recordings stop with
`stop_reason: shutdown` and leave whole files, new work is refused with 503 and Retry-After
meanwhile, and the process exits 0; a second signal cuts the drain short."""

from __future__ import annotations

import asyncio
import json
import signal
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from aiortc import RTCPeerConnection

from recorder import main as recorderd
from tests.support.api import PREFIX, call, wait_status
from tests.support.daemon import run_daemon
from tests.support.media import probe
from tests.support.publisher import WhipPublisher

ROOMS = 3
MEDIA_BEFORE_DRAIN = 3.0


async def whip_offer() -> str:
    peer = RTCPeerConnection()
    try:
        peer.addTransceiver("video", direction="sendonly")
        await peer.setLocalDescription(await peer.createOffer())
        return peer.localDescription.sdp
    finally:
        await peer.close()


async def readyz(http: aiohttp.ClientSession, url: str) -> int:
    async with http.get(f"{url}/readyz") as resp:
        return resp.status


async def stored_state(redis_url: str, recording_id: str) -> dict[str, Any]:
    client = aioredis.from_url(redis_url, decode_responses=True)
    try:
        raw = await client.get(f"{PREFIX}state:{recording_id}")
    finally:
        await client.aclose()
    assert raw is not None, recording_id
    state: dict[str, Any] = json.loads(raw)
    return state


async def test_sigterm_drains_three_recordings(redis_url: str) -> None:
    offer = await whip_offer()
    with run_daemon(redis_url) as daemon:
        headers = daemon.headers("user-drain")
        bases = [f"{daemon.url}/api/webrtc/rooms/room-drain-{i}/recording" for i in range(ROOMS)]
        async with AsyncExitStack() as stack:
            publishers = [await stack.enter_async_context(WhipPublisher(
                f"{daemon.url}/whip/room-drain-{i}", headers["Authorization"][7:],
                video=(320, 180), fps=10)) for i in range(ROOMS)]
            http = await stack.enter_async_context(aiohttp.ClientSession())
            rids = [(await call(http, "POST", f"{base}/start", headers, 201,
                                params={"recording_format": "webm", "quality": "low"})
                     )["recording_id"] for base in bases]
            started = [await wait_status(http, f"{base}/{rid}", headers, {"recording"})
                       for base, rid in zip(bases, rids, strict=True)]
            await asyncio.sleep(MEDIA_BEFORE_DRAIN)

            daemon.process.send_signal(signal.SIGTERM)
            for _ in range(1000):  # until the signal is handled
                if (ready := await readyz(http, daemon.url)) != 200:
                    break
                await asyncio.sleep(0.01)
            assert ready == 503
            # the drain is under way (/readyz says so): the node refuses new work
            start, whip = await asyncio.gather(
                http.post(f"{daemon.url}/api/webrtc/rooms/room-drain-new/recording/start",
                          headers=headers),
                http.post(f"{daemon.url}/whip/room-drain-new", data=offer,
                          headers={**headers, "Content-Type": "application/sdp"}))
            for resp in (start, whip):
                assert resp.status == 503, (resp.url, resp.status, await resp.text())
                assert int(resp.headers["Retry-After"]) > 0
                resp.release()
            code = await asyncio.to_thread(daemon.process.wait, 60)
            for publisher in publishers:
                publisher.delete_status = 0  # its server is gone: nothing to delete
        log = daemon.log()
        assert code == 0, log[-3000:]
        for rid, before in zip(rids, started, strict=True):  # files go with the daemon's folder
            state = await stored_state(redis_url, rid)
            assert state["status"] == "completed", (state, log[-3000:])
            assert state["stop_reason"] == "shutdown"
            assert state["recovered"] is False
            path = daemon.storage / rid / f"recording_{rid}.webm"
            assert state["files"][0]["size"] == path.stat().st_size
            info = await asyncio.to_thread(probe, path)
            assert info.video_codec == "vp8"
            assert info.video_seconds >= MEDIA_BEFORE_DRAIN - 1.0, (info, before["started_at"])


class EndlessDrain:
    """A service whose recordings never finish: only a second signal ends the drain."""

    def __init__(self) -> None:
        self.cancelled = False

    async def drain(self, deadline_seconds: float) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise


async def test_a_second_signal_cuts_the_drain_short() -> None:
    loop = asyncio.get_running_loop()
    service = EndlessDrain()
    drain = asyncio.create_task(recorderd._drain(service, 3600))  # type: ignore[arg-type]
    try:
        await asyncio.sleep(0)  # its handlers are installed
        signal.raise_signal(signal.SIGINT)
        forced = await asyncio.wait_for(drain, 60)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    assert forced is True
    assert service.cancelled
