"""The control routes as a client sees them: statuses, bodies and headers of each action."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np

from recorder.api.metrics import Metrics
from recorder.core.presets import Quality
from tests.api.conftest import Client, bearer, problem_of
from tests.api.fakes import FakeService

ROOM = "/api/webrtc/rooms/room-1"


async def _start(client: Client, room: str = ROOM, *, params: dict[str, str] | None = None,
                 json: object = None, headers: dict[str, str] | None = None
                 ) -> dict[str, object]:
    response = await client.post(f"{room}/recording/start", params=params, json=json,
                                 headers=headers or bearer())
    assert response.status == 201, await response.text()
    body: dict[str, object] = await response.json()
    return body


async def test_a_recording_goes_through_its_lifecycle(client: Client) -> None:
    response = await client.post(
        f"{ROOM}/recording/start?recording_format=mp4", headers=bearer(),
        json={"quality": "high", "metadata": {"course": "c-1"}})
    assert response.status == 201
    started = await response.json()
    rid = started["recording_id"]
    assert (started["room_id"], started["user_id"]) == ("room-1", "alice")
    assert (started["format"], started["quality"]) == ("mp4", "high")
    assert started["metadata"] == {"course": "c-1"}
    assert response.headers["Location"] == f"{ROOM}/recording/{rid}/status"

    status = await client.get(response.headers["Location"], headers=bearer())
    assert (await status.json())["status"] == "recording"

    for action, expected in (("pause", "paused"), ("resume", "recording"),
                             ("stop", "processing")):
        step = await client.post(f"{ROOM}/recording/{rid}/{action}", headers=bearer())
        assert step.status == 200
        assert (await step.json())["status"] == expected
    final = await (await client.get(f"{ROOM}/recording/{rid}/status", headers=bearer())).json()
    assert final["stop_reason"] == "requested"

    listed = await (await client.get(f"{ROOM}/recordings", headers=bearer())).json()
    assert listed["count"] == 1
    assert listed["recordings"][0]["recording_id"] == rid
    mine = await client.get("/api/webrtc/recordings?status=processing", headers=bearer())
    assert (await mine.json())["count"] == 1
    none = await client.get("/api/webrtc/recordings?status=recording", headers=bearer())
    assert await none.json() == {"recordings": [], "count": 0, "next_cursor": None}


async def test_delete_cancels(client: Client) -> None:
    rid = (await _start(client))["recording_id"]
    response = await client.delete(f"{ROOM}/recording/{rid}", headers=bearer())
    assert response.status == 200
    assert (await response.json())["status"] == "cancelled"


async def test_a_refused_transition_is_409_naming_both_and_changes_nothing(
    client: Client,
) -> None:
    rid = (await _start(client))["recording_id"]
    await client.post(f"{ROOM}/recording/{rid}/stop", headers=bearer())
    problem = await problem_of(
        await client.post(f"{ROOM}/recording/{rid}/pause", headers=bearer()), 409)
    assert (problem["current_status"], problem["action"]) == ("processing", "pause")
    state = await (await client.get(f"{ROOM}/recording/{rid}/status", headers=bearer())).json()
    assert state["status"] == "processing"


async def test_query_fills_an_empty_body_and_may_agree_with_a_body(
    client: Client, service: FakeService
) -> None:
    await _start(client, params={"quality": "low"})
    assert service.start_requests[-1].quality is Quality.LOW
    await _start(client, "/api/webrtc/rooms/room-2", params={"recording_format": "mkv"},
                 json={"format": "mkv", "layout": "tracks"})
    wanted = service.start_requests[-1]
    assert (wanted.format, wanted.layout) == ("mkv", "tracks")


async def test_a_reached_limit_is_429_with_its_name_and_retry_after(
    client: Client, metrics: Metrics
) -> None:
    await _start(client)
    response = await client.post(f"{ROOM}/recording/start", headers=bearer(sub="bob"))
    problem = await problem_of(response, 429)
    assert problem["limit"] == "max_per_room"
    assert response.headers["Retry-After"] == "11"
    assert metrics.admissions_refused.labels("max_per_room")._value.get() == 1


async def test_an_unavailable_node_is_503_with_retry_after(
    client: Client, service: FakeService
) -> None:
    service.unavailable = "draining"
    response = await client.post(f"{ROOM}/recording/start", headers=bearer())
    problem = await problem_of(response, 503)
    assert problem["detail"] == "draining"
    assert response.headers["Retry-After"] == "7"


async def test_a_room_outside_the_token_is_403(client: Client, service: FakeService) -> None:
    headers = bearer(rooms=["room-9"])
    await problem_of(await client.post(f"{ROOM}/recording/start", headers=headers), 403)
    await problem_of(await client.get(f"{ROOM}/recordings", headers=headers), 403)
    assert service.states == {}
    await _start(client, "/api/webrtc/rooms/room-9", headers=headers)


async def test_other_users_recordings_are_403_except_for_admins(client: Client) -> None:
    rid = (await _start(client))["recording_id"]
    bob = bearer(sub="bob")
    await problem_of(await client.get(f"{ROOM}/recording/{rid}/status", headers=bob), 403)
    await problem_of(await client.post(f"{ROOM}/recording/{rid}/stop", headers=bob), 403)
    await problem_of(await client.get("/api/webrtc/recordings?user_id=alice", headers=bob), 403)
    own = await client.get("/api/webrtc/recordings?user_id=bob", headers=bob)
    assert (await own.json())["count"] == 0
    admin = bearer(sub="root", role="admin")
    listed = await client.get("/api/webrtc/recordings?user_id=alice", headers=admin)
    assert (await listed.json())["count"] == 1
    stopped = await client.post(f"{ROOM}/recording/{rid}/stop", headers=admin)
    assert stopped.status == 200


async def test_an_unknown_or_misplaced_recording_is_404(client: Client) -> None:
    await problem_of(await client.get(f"{ROOM}/recording/nope/status", headers=bearer()), 404)
    rid = (await _start(client))["recording_id"]
    other_room = f"/api/webrtc/rooms/room-2/recording/{rid}/status"
    await problem_of(await client.get(other_room, headers=bearer()), 404)


def _write_webm(path: Path, frames: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="webm") as container:
        stream = container.add_stream("libvpx", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            image = np.full((48, 64, 3), i * 20, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _decoded_frames(data: bytes) -> int:
    with av.open(io.BytesIO(data), "r") as container:
        return len(list(container.decode(video=0)))


async def test_the_file_downloads_whole_or_by_range(client: Client, tmp_path: Path) -> None:
    state = await _start(client)
    rid = str(state["recording_id"])
    await client.post(f"{ROOM}/recording/{rid}/stop", headers=bearer())
    path = tmp_path / rid / str(state["file_name"])
    _write_webm(path, frames=12)
    data = path.read_bytes()
    url = f"/api/webrtc/recordings/{rid}/file"

    whole = await client.get(url, headers=bearer())
    assert whole.status == 200
    assert whole.content_type == "video/webm"
    assert await whole.read() == data
    assert _decoded_frames(data) == 12

    part = await client.get(url, headers={**bearer(), "Range": "bytes=100-299"})
    assert part.status == 206
    assert part.headers["Content-Range"] == f"bytes 100-299/{len(data)}"
    assert await part.read() == data[100:300]

    named = await client.get(url, params={"name": path.name}, headers=bearer())
    assert named.status == 200
    await problem_of(await client.get(url), 401)
    await problem_of(await client.get(url, headers=bearer(sub="bob")), 403)
    await problem_of(await client.get(url, params={"name": "../x"}, headers=bearer()), 400)
    await problem_of(await client.get(url, params={"name": "other.webm"}, headers=bearer()),
                     404)
