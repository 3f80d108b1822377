"""POST .../recording/{recording_id}/events at the HTTP edge: exact shapes, size, who may
post, and the poster's `sub` kept beside the `user` it names."""

from __future__ import annotations

from typing import Any

import pytest

from recorder.core.events import API_SOURCE, CHAT
from tests.api.conftest import Client, bearer, problem_of
from tests.api.fakes import FakeService

ROOM = "/api/webrtc/rooms/room-1"


async def _recording(client: Client, owner: str = "alice") -> str:
    response = await client.post(f"{ROOM}/recording/start", headers=bearer(owner))
    assert response.status == 201, await response.text()
    recording_id: str = (await response.json())["recording_id"]
    return f"{ROOM}/recording/{recording_id}"


async def test_a_chat_event_is_accepted_with_the_posters_sub(
        client: Client, service: FakeService) -> None:
    base = await _recording(client)
    response = await client.post(f"{base}/events", headers=bearer("alice"),
                                 json={"type": "chat", "user": "Teacher", "text": "hi"})
    assert response.status == 202, await response.text()
    assert (await response.json())["accepted"] is True
    (_, event), = service.events
    assert (event.source, event.channel, event.type) == (API_SOURCE, API_SOURCE, CHAT)
    assert (event.user, event.text, event.sub) == ("Teacher", "hi", "alice")


async def test_an_admin_may_post_and_a_named_event_keeps_its_data(
        client: Client, service: FakeService) -> None:
    base = await _recording(client)
    response = await client.post(f"{base}/events", headers=bearer("root", role="admin"),
                                 json={"type": "slide", "data": {"page": 3}})
    assert response.status == 202, await response.text()
    (_, event), = service.events
    assert (event.type, event.data, event.sub) == ("slide", {"page": 3}, "root")


@pytest.mark.parametrize("body", [
    {"type": "chat", "user": "a"},  # no text
    {"type": "chat", "user": "a", "text": "b", "data": {}},  # both shapes
    {"type": "chat", "data": {"x": 1}},  # chat needs user and text
    {"type": "note", "text": "b"},  # other types carry data
    {"type": "note", "data": [1, 2]},  # data is an object
    {"type": "", "data": {}},
    {"type": "bad type!", "data": {}},
    {"data": {}},
    [],
])
async def test_anything_but_the_two_shapes_is_400(client: Client, body: Any,
                                                  service: FakeService) -> None:
    base = await _recording(client)
    response = await client.post(f"{base}/events", headers=bearer("alice"), json=body)
    await problem_of(response, 400)
    assert service.events == []


async def test_an_empty_body_is_400(client: Client) -> None:
    base = await _recording(client)
    response = await client.post(f"{base}/events", headers=bearer("alice"))
    await problem_of(response, 400)


async def test_over_16_kib_is_413(client: Client, service: FakeService) -> None:
    base = await _recording(client)
    text = "x" * (16 * 1024)
    response = await client.post(f"{base}/events", headers=bearer("alice"),
                                 json={"type": "chat", "user": "a", "text": text})
    assert response.status == 413
    assert service.events == []


async def test_another_user_is_403_and_a_room_outside_the_token_too(client: Client) -> None:
    base = await _recording(client)
    body = {"type": "chat", "user": "x", "text": "y"}
    await problem_of(await client.post(f"{base}/events", headers=bearer("mallory"), json=body),
                     403)
    await problem_of(await client.post(f"{base}/events",
                                       headers=bearer("alice", rooms=["other"]), json=body), 403)


async def test_unknown_recording_is_404_and_not_recording_is_409(client: Client) -> None:
    body = {"type": "chat", "user": "x", "text": "y"}
    await problem_of(await client.post(f"{ROOM}/recording/nope/events",
                                       headers=bearer("alice"), json=body), 404)
    base = await _recording(client)
    assert (await client.post(f"{base}/pause", headers=bearer("alice"))).status == 200
    problem = await problem_of(await client.post(f"{base}/events", headers=bearer("alice"),
                                                 json=body), 409)
    assert "paused" in problem["detail"]


async def test_the_route_is_documented_with_its_answers(client: Client) -> None:
    document = await (await client.get("/api/openapi.json")).json()
    operation = document["paths"][
        "/api/webrtc/rooms/{room_id}/recording/{recording_id}/events"]["post"]
    assert {"202", "400", "403", "404", "409", "413", "429"} <= set(operation["responses"])
    assert "get" in document["paths"][
        "/api/webrtc/rooms/{room_id}/recording/{recording_id}/events"]  # the live status
