"""Several nodes on one Redis: a room lives on the node that claimed it, and requests sent to
another node act there (docs/operations.md): 307 for WHIP clients, forwarding for browsers and
control requests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from recorder.api.whip import OFFER_EXAMPLE
from tests.support.api import call, metrics, node_settings, recording_url, room_url, wait_status
from tests.support.daemon import Daemon, run_daemon
from tests.support.media import probe
from tests.support.publisher import WhipError, WhipPublisher
from tests.support.recording_files import media_files
from tests.support.redis_server import free_port

ORIGIN = "http://page.example"


@pytest.fixture(scope="module")
def shared() -> dict[str, Any]:
    return node_settings(cors_origins=ORIGIN)


@pytest.fixture(scope="module")
def nodes(redis_url: str, shared: dict[str, Any]) -> Iterator[tuple[Daemon, Daemon]]:
    with run_daemon(redis_url, **shared) as a, run_daemon(redis_url, **shared) as b:
        yield a, b


async def test_whip_post_without_origin_is_redirected_to_the_owner(
        nodes: tuple[Daemon, Daemon]) -> None:
    a, b = nodes
    room = "room-redirect"
    headers = a.headers("user-r", rooms=[room])
    token = headers["Authorization"][7:]
    async with WhipPublisher(f"{a.url}/whip/{room}", token, video=(320, 240)) as first, \
            aiohttp.ClientSession() as http:
        # A owns the room now: B sends WHIP clients there, path and query kept.
        with pytest.raises(WhipError) as refused:
            async with WhipPublisher(f"{b.url}/whip/{room}?role=screen", token,
                                     video=(320, 240)):
                pass
        assert refused.value.status == 307
        async with http.post(f"{b.url}/whip/{room}?role=screen", data=OFFER_EXAMPLE,
                             headers={**headers, "Content-Type": "application/sdp"},
                             allow_redirects=False) as resp:
            assert resp.status == 307
            location = resp.headers["Location"]
        assert location == f"{a.url}/whip/{room}?role=screen"

        # Following it publishes on A, which records both publishers.
        async with WhipPublisher(location, token, video=(320, 240)) as second:
            assert second.location is not None
            assert second.location.startswith(a.url)
            state = await call(http, "POST", f"{room_url(a, room)}/recording/start", headers,
                               201, params={"quality": "low"}, json={"layout": "tracks"})
            assert state["node_id"] == f"test-node:{a.url.rsplit(':', 1)[1]}"
            rid = state["recording_id"]
            await wait_status(http, recording_url(a, room, rid), headers, {"recording"})
            await asyncio.sleep(2)
            await call(http, "POST", f"{room_url(a, room)}/recording/{rid}/stop", headers)
        assert first.location is not None
        assert first.location.startswith(a.url)
        done = await wait_status(http, recording_url(a, room, rid), headers,
                                 {"completed", "failed"})
    assert done["status"] == "completed", done
    names = sorted(f["name"] for f in media_files(done))
    assert names == ["user-r-screen.webm", "user-r.webm"], names
    for name in names:
        info = await asyncio.to_thread(probe, Path(a.storage) / rid / name)
        assert info.video_frames > 0


async def test_browser_publish_and_control_requests_are_forwarded(
        nodes: tuple[Daemon, Daemon]) -> None:
    a, b = nodes
    room = "room-forward"
    headers = a.headers("user-f", rooms=[room])
    token = headers["Authorization"][7:]
    a_node = f"test-node:{a.url.rsplit(':', 1)[1]}"
    async with aiohttp.ClientSession() as http:
        # A claims the room with a start (no publisher yet: pending).
        state = await call(http, "POST", f"{room_url(a, room)}/recording/start", headers, 201,
                           params={"quality": "low"})
        rid = state["recording_id"]
        # A browser publishes through B: forwarded, the answer and session come from A.
        async with WhipPublisher(f"{b.url}/whip/{room}", token, video=(320, 240),
                                 headers={"Origin": ORIGIN}) as browser:
            assert browser.location is not None
            assert browser.location.startswith(b.url)
            assert browser.response_headers.get("Access-Control-Allow-Origin") == ORIGIN
            await wait_status(http, recording_url(b, room, rid), headers, {"recording"})
            # Control requests to B act on A's recording and return A's answers.
            recording = f"{room_url(b, room)}/recording/{rid}"
            paused = await call(http, "POST", f"{recording}/pause", headers)
            assert paused["status"] == "paused"
            assert paused["node_id"] == a_node
            await asyncio.sleep(1)
            resumed = await call(http, "POST", f"{recording}/resume", headers)
            assert resumed["status"] == "recording"
            await asyncio.sleep(2)
            # A second start in the room is refused by A (max_per_room) through B.
            refused = await call(http, "POST", f"{room_url(b, room)}/recording/start",
                                 headers, 429)
            assert refused["limit"] == "max_per_room"
            stopped = await call(http, "POST", f"{recording}/stop", headers)
            assert stopped["status"] == "processing"
            assert stopped["stop_reason"] == "requested"
            # The WHIP session is A's: its DELETE through B ends it there.
            assert await browser.delete() == 200
        done = await wait_status(http, recording_url(b, room, rid), headers,
                                 {"completed", "failed"})
        assert done["status"] == "completed", done
        assert done["node_id"] == a_node
        info = await asyncio.to_thread(probe, Path(a.storage) / rid / done["file_name"])
        assert info.video_frames > 0
        assert info.audio_seconds > 1
        assert not (b.storage / rid).exists()

        a_metrics, b_metrics = await metrics(http, a), await metrics(http, b)
    assert b_metrics['recorder_requests_forwarded_total{how="forward"}'] >= 6
    assert a_metrics['recorder_admissions_refused_total{limit="max_per_room"}'] >= 1
    assert 'recorder_admissions_refused_total{limit="max_per_room"}' not in b_metrics


async def test_an_unreachable_owner_is_503_and_nothing_is_forwarded_twice(
        nodes: tuple[Daemon, Daemon], redis_url: str, shared: dict[str, Any]) -> None:
    _, b = nodes
    room = "room-unreachable"
    headers = b.headers("user-u", rooms=[room])
    dead_end = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    async with aiohttp.ClientSession() as http:
        with run_daemon(redis_url, public_url=dead_end, **shared) as c:
            await call(http, "POST", f"{room_url(c, room)}/recording/start", headers, 201,
                       params={"quality": "low"})
            # C is alive (its heartbeat is fresh) but its public URL answers nothing.
            async with http.post(f"{room_url(b, room)}/recording/start", headers=headers,
                                 allow_redirects=False) as resp:
                assert resp.status == 503
                assert resp.content_type == "application/problem+json"
                assert int(resp.headers["Retry-After"]) > 0
                problem = await resp.json()
            assert "cannot be reached" in problem["detail"]
            # A request another node already forwarded is never sent on again.
            looped = await call(http, "POST", f"{room_url(b, room)}/recording/start",
                                {**headers, "Recorder-Forwarded-By": "elsewhere"}, 503)
            assert "moved to node" in looped["detail"]
