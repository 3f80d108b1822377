"""Every malformed request gets a clean problem+json with the right status, and changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from recorder.core.access import Caller
from recorder.core.models import RecordingState
from recorder.core.paging import Page, PageRequest
from tests.api.conftest import Client, bearer, problem_of
from tests.api.fakes import FakeService

START = "/api/webrtc/rooms/room-1/recording/start"
JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("query", "body", "location"),
    [
        pytest.param("", b"{", "body", id="bad-json"),
        pytest.param("", b"[]", "body", id="not-an-object"),
        pytest.param("", b'{"colour": "red"}', "body.colour", id="unknown-field"),
        pytest.param("", b'{"max_duration_seconds": "long"}', "body.max_duration_seconds",
                     id="wrong-type"),
        pytest.param("", b'{"max_duration_seconds": 0}', "body.max_duration_seconds",
                     id="out-of-range"),
        pytest.param("", b'{"format": "avi"}', "body.format", id="bad-enum-body"),
        pytest.param("", b'{"source": {"type": "rtmp"}}', "body.source.type",
                     id="bad-source"),
        pytest.param("?quality=8k", b"", "query.quality", id="bad-enum-query"),
        pytest.param("?colour=red", b"", "query.colour", id="unknown-query"),
        pytest.param("?quality=low&quality=high", b"", "query.quality", id="repeated-query"),
    ],
)
async def test_invalid_start_input_is_400_saying_where(
    client: Client, service: FakeService, query: str, body: bytes, location: str
) -> None:
    response = await client.post(START + query, data=body, headers={**bearer(), **JSON})
    problem = await problem_of(response, 400)
    assert location in [e["location"] for e in problem["errors"]], problem
    assert service.states == {}


async def test_a_query_that_disagrees_with_the_body_is_400(
    client: Client, service: FakeService
) -> None:
    response = await client.post(START + "?recording_format=mp4", json={"format": "webm"},
                                 headers=bearer())
    problem = await problem_of(response, 400)
    assert "recording_format=mp4" in problem["detail"]
    assert service.states == {}


async def test_a_body_that_is_not_json_is_415(client: Client, service: FakeService) -> None:
    response = await client.post(START, data=b"format=mp4", headers={
        **bearer(), "Content-Type": "application/x-www-form-urlencoded"})
    await problem_of(response, 415)
    assert service.states == {}


async def test_an_oversized_body_is_413_whether_announced_or_streamed(
    client: Client, service: FakeService
) -> None:
    big = b'{"metadata": {"x": "' + b"a" * (1 << 20) + b'"}}'
    announced = await client.post(START, data=big, headers={**bearer(), **JSON})
    await problem_of(announced, 413)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 64 << 10):
            yield big[start:start + (64 << 10)]

    streamed = await client.post(START, data=chunks(), headers={**bearer(), **JSON})
    assert "Content-Length" not in streamed.request_info.headers
    await problem_of(streamed, 413)
    assert service.states == {}


async def test_unknown_routes_are_404_and_wrong_methods_405(client: Client) -> None:
    problem = await problem_of(await client.get("/api/webrtc/nothing", headers=bearer()), 404)
    assert problem["instance"] == "/api/webrtc/nothing"
    response = await client.get("/api/webrtc/rooms/room-1/recording/r1/stop", headers=bearer())
    problem = await problem_of(response, 405)
    assert response.headers["Allow"] == "POST"
    assert "POST" in problem["detail"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/webrtc/rooms/room%201/recordings",
        "/api/webrtc/rooms/-room/recordings",
        "/api/webrtc/rooms/room-1/recording/a%20b/status",
        "/api/webrtc/recordings?status=bogus",
        "/api/webrtc/recordings?user_id=",
    ],
)
async def test_malformed_ids_and_filters_are_400(client: Client, path: str) -> None:
    await problem_of(await client.get(path, headers=bearer()), 400)


async def test_a_failing_service_is_a_500_problem_without_details(
    client: Client, service: FakeService
) -> None:
    async def broken(caller: Caller, room_id: str, page: PageRequest) -> Page[RecordingState]:
        raise RuntimeError("secret internals")

    service.list_room = broken  # type: ignore[method-assign]
    response = await client.get("/api/webrtc/rooms/room-1/recordings", headers=bearer())
    problem = await problem_of(response, 500)
    assert "secret" not in problem["detail"]
