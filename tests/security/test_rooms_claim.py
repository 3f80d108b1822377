"""The token's `rooms` claim guards every route that takes or returns a recording: a token
for room `a` neither lists, downloads, gets playback URLs for, nor acts on its own user's
recordings in room `x` (403 before any 404 or 409), against a real recorderd on real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from recorder.core.models import RecordingState
from tests.support.daemon import Daemon, run_daemon
from tests.support.seed import FILE_BYTES, seed_completed

PREFIX = "rooms-claim:"
USER = "user-rooms"


@pytest.fixture(scope="module")
def daemon(redis_url: str) -> Iterator[Daemon]:
    with run_daemon(redis_url, key_prefix=PREFIX) as node:
        yield node


@dataclass
class Seeded:
    in_a: RecordingState
    in_x: RecordingState


@pytest.fixture
async def seeded(daemon: Daemon, redis_url: str) -> Seeded:
    (in_a,) = await seed_completed(redis_url, PREFIX, daemon.node_id, daemon.storage, "a", USER)
    (in_x,) = await seed_completed(redis_url, PREFIX, daemon.node_id, daemon.storage, "x", USER)
    return Seeded(in_a, in_x)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def answer(http: aiohttp.ClientSession, method: str, url: str,
                 headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with http.request(method, url, headers=headers) as response:
        if response.content_type.endswith("json"):
            return response.status, await response.json(content_type=None)
        return response.status, await response.read()


def recording_routes(daemon: Daemon, room: str, rid: str) -> list[tuple[str, str]]:
    base = f"{daemon.url}/api/webrtc/rooms/{room}/recording/{rid}"
    return [("GET", base + "/status"), ("POST", base + "/stop"), ("POST", base + "/pause"),
            ("POST", base + "/resume"), ("DELETE", base)]


async def test_a_token_for_room_a_is_refused_every_recording_in_room_x(
    daemon: Daemon, seeded: Seeded, http: aiohttp.ClientSession
) -> None:
    room_a = daemon.headers(USER, rooms=["a"])
    rid = seeded.in_x.recording_id
    routes = [("GET", f"{daemon.url}/api/webrtc/recordings/{rid}/file"),
              ("GET", f"{daemon.url}/api/webrtc/recordings/{rid}/playback-url")]
    # by the recording's own room, and through a room the token holds (403, not 404)
    routes += recording_routes(daemon, "x", rid) + recording_routes(daemon, "a", rid)
    for method, url in routes:
        status, body = await answer(http, method, url, room_a)
        assert status == 403, (method, url, status, body)
        if "/rooms/x/" not in url:  # a room the client did not name is not told
            assert "room x" not in body["detail"], body
            assert USER not in body["detail"], body

    # nothing changed: the same user's token without the claim still finds it completed
    anywhere = daemon.headers(USER)
    status, state = await answer(http, "GET", recording_routes(daemon, "x", rid)[0][1], anywhere)
    assert (status, state["status"]) == (200, "completed")
    status, body = await answer(http, "GET", f"{daemon.url}/api/webrtc/recordings/{rid}/file",
                                anywhere)
    assert (status, body) == (200, FILE_BYTES)


async def test_the_same_routes_answer_in_the_tokens_room(
    daemon: Daemon, seeded: Seeded, http: aiohttp.ClientSession
) -> None:
    room_a = daemon.headers(USER, rooms=["a"])
    rid = seeded.in_a.recording_id
    status, body = await answer(http, "GET", f"{daemon.url}/api/webrtc/recordings/{rid}/file",
                                room_a)
    assert (status, body) == (200, FILE_BYTES)
    status, body = await answer(
        http, "GET", f"{daemon.url}/api/webrtc/recordings/{rid}/playback-url", room_a)
    assert status == 200, body
    status, state = await answer(http, "GET", recording_routes(daemon, "a", rid)[0][1], room_a)
    assert (status, state["recording_id"]) == (200, rid)
    # a finished recording cannot be stopped: 409 comes only once the room check passed
    status, _ = await answer(http, "POST", recording_routes(daemon, "a", rid)[1][1], room_a)
    assert status == 409


async def test_an_unknown_id_stays_404_and_a_signed_url_needs_no_token(
    daemon: Daemon, seeded: Seeded, http: aiohttp.ClientSession
) -> None:
    room_a = daemon.headers(USER, rooms=["a"])
    unknown = "0" * 32
    status, _ = await answer(http, "GET", recording_routes(daemon, "a", unknown)[0][1], room_a)
    assert status == 404
    status, _ = await answer(http, "GET", f"{daemon.url}/api/webrtc/recordings/{unknown}/file",
                             room_a)
    assert status == 404

    rid = seeded.in_x.recording_id
    status, body = await answer(
        http, "GET", f"{daemon.url}/api/webrtc/recordings/{rid}/playback-url",
        daemon.headers(USER))
    assert status == 200, body
    async with http.get(body["signed_url"]) as response:  # no Authorization at all
        assert response.status == 200
        assert await response.read() == FILE_BYTES


async def test_lists_keep_only_the_tokens_rooms(
    daemon: Daemon, seeded: Seeded, http: aiohttp.ClientSession
) -> None:
    room_a = daemon.headers(USER, rooms=["a"])
    status, listed = await answer(http, "GET", f"{daemon.url}/api/webrtc/recordings", room_a)
    assert status == 200
    assert {r["room_id"] for r in listed["recordings"]} == {"a"}
    assert seeded.in_a.recording_id in {r["recording_id"] for r in listed["recordings"]}
    assert listed["count"] == len(listed["recordings"])

    status, listed = await answer(
        http, "GET", f"{daemon.url}/api/webrtc/recordings?status=completed", room_a)
    assert status == 200
    assert {r["room_id"] for r in listed["recordings"]} == {"a"}

    status, _ = await answer(http, "GET", f"{daemon.url}/api/webrtc/rooms/x/recordings", room_a)
    assert status == 403
    status, listed = await answer(http, "GET", f"{daemon.url}/api/webrtc/rooms/a/recordings",
                                  room_a)
    assert status == 200
    assert {r["room_id"] for r in listed["recordings"]} == {"a"}

    # the same user without the claim sees both rooms
    status, listed = await answer(http, "GET", f"{daemon.url}/api/webrtc/recordings",
                                  daemon.headers(USER))
    assert {"a", "x"} <= {r["room_id"] for r in listed["recordings"]}


async def test_retry_upload_is_refused_to_users_before_any_lookup(
    daemon: Daemon, seeded: Seeded, http: aiohttp.ClientSession
) -> None:
    for rid in (seeded.in_x.recording_id, "0" * 32):
        status, _ = await answer(
            http, "POST", f"{daemon.url}/api/webrtc/admin/recordings/{rid}/retry-upload",
            daemon.headers(USER, rooms=["a"]))
        assert status == 403


async def test_an_admin_token_is_not_narrowed_by_its_rooms(
    daemon: Daemon, seeded: Seeded, http: aiohttp.ClientSession
) -> None:
    """Admins may act on any recording (docs/security.md): their `rooms` claim does not hide
    another room's recordings from them."""
    admin = daemon.headers("ops", role="admin", rooms=["a"])
    rid = seeded.in_x.recording_id
    status, state = await answer(http, "GET", recording_routes(daemon, "x", rid)[0][1], admin)
    assert (status, state["room_id"]) == (200, "x")
