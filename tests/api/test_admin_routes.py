"""The admin routes of real nodes on a real Redis (docs/usage.md, "Operators"): who may call
them, the cluster-wide list, nodes with their last-seen record, queues, storage, a
recording's timeline and picture."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import aiohttp
import av
import pytest

from recorder.api.app import all_routes
from recorder.core.events import EventCounts
from recorder.core.lifecycle import Action
from recorder.state.jobs import UploadQueue
from recorder.state.totals import UPLOADED_BYTES, ClusterTotals
from tests.support.api import WAIT_SECONDS, call, node_settings
from tests.support.daemon import Daemon, run_daemon
from tests.support.fleet import Cluster, admin_paths, applying

ADMIN = "/api/webrtc/admin"


@pytest.fixture(scope="module")
def nodes(redis_url: str) -> Iterator[tuple[Daemon, Daemon, str]]:
    """Two nodes on one Redis under a prefix of their own."""
    settings = node_settings()
    with ExitStack() as stack:
        one = stack.enter_context(run_daemon(redis_url, **settings))
        two = stack.enter_context(run_daemon(redis_url, **settings))
        yield one, two, settings["key_prefix"]


@pytest.fixture
async def cluster(redis_url: str, nodes: tuple[Daemon, Daemon, str]) -> AsyncIterator[Cluster]:
    arranged = Cluster(redis_url, nodes[2])
    yield arranged
    await arranged.close()


def admin(node: Daemon) -> dict[str, str]:
    return node.headers("ops", "admin")


async def test_every_admin_route_refuses_other_tokens_first(
        nodes: tuple[Daemon, Daemon, str]) -> None:
    node = nodes[0]
    paths = admin_paths(all_routes())
    assert len(paths) >= 10, paths  # retry-upload, webhooks, cloudflare and the fleet's
    async with aiohttp.ClientSession() as http:
        for method, path in paths:
            # a bad query too: the role is refused before anything is parsed or read
            url = f"{node.url}{path}?limit=0&unknown=1"
            for headers in (node.headers("user-1"), node.headers("user-1", rooms=["r"])):
                async with http.request(method, url, headers=headers, json={"x": 1}) as resp:
                    body = await resp.json(content_type=None)
                    assert resp.status == 403, (method, path, body)
                    assert resp.content_type == "application/problem+json"
            async with http.request(method, url) as resp:
                assert resp.status == 401, (method, path)


async def test_cluster_list_filters_and_pages(nodes: tuple[Daemon, Daemon, str],
                                              cluster: Cluster, tmp_path: Path) -> None:
    one, two, _ = nodes
    made: dict[str, list[str]] = {"one": [], "two": []}
    for _ in range(3):
        state = await cluster.recording(one.node_id, one.storage, "list-r1", "list-u1",
                                        (Action.MEDIA_STARTED,))
        made["one"].append(state.recording_id)
    for _ in range(2):
        state = await cluster.recording(two.node_id, two.storage, "list-r2", "list-u2")
        made["two"].append(state.recording_id)
    url = f"{two.url}{ADMIN}/recordings"
    async with aiohttp.ClientSession() as http:
        seen: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:  # every page through any node, newest first, nothing twice
            params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
            page = await call(http, "GET", url, admin(two), params=params)
            assert page["count"] == len(page["recordings"]) <= 2
            seen += page["recordings"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        ids = [r["recording_id"] for r in seen if r["room_id"].startswith("list-")]
        assert sorted(ids) == sorted(made["one"] + made["two"])
        assert len(ids) == len(set(ids))
        created = [r["created_at"] for r in seen]
        assert created == sorted(created, reverse=True)
        assert all(r["local_path"] for r in seen)  # admins see the folder

        async def only(**params: str) -> set[str]:
            page = await call(http, "GET", url, admin(two), params=params)
            return {r["recording_id"] for r in page["recordings"]}

        assert await only(node_id=one.node_id) >= set(made["one"])
        assert not await only(node_id=one.node_id) & set(made["two"])
        assert await only(room_id="list-r2") == set(made["two"])
        assert await only(user_id="list-u1") == set(made["one"])
        assert await only(user_id="list-u1", status="pending") == set()
        assert await only(room_id="list-r1", status="recording") == set(made["one"])
        assert await only(status="pending", node_id=two.node_id) >= set(made["two"])
        for bad in ({"limit": "0"}, {"limit": "1001"}, {"cursor": "nope"},
                    {"status": "lost"}, {"node_id": "a b"}, {"room_id": "../x"},
                    {"colour": "red"}):
            problem = await call(http, "GET", url, admin(two), 400, params=bad)
            assert problem["status"] == 400, bad


async def test_timeline_from_the_history(nodes: tuple[Daemon, Daemon, str],
                                         cluster: Cluster) -> None:
    one = nodes[0]
    state = await cluster.recording(one.node_id, one.storage, "time-r", "time-u")
    await cluster.store.history.append([state.recording_id], {
        "type": "publisher_joined", "publisher_id": "pub-1", "track": "video/vp8",
        "at": "2020-01-01T00:00:00Z"})  # older than the recording: sorted first
    for action in (Action.MEDIA_STARTED, Action.PAUSE, Action.RESUME, Action.PAUSE,
                   Action.RESUME, Action.STOP):
        await cluster.store.update(state.recording_id, applying(action))
    counts = {"chat": EventCounts(recorded=3, dropped=1), "api": EventCounts(recorded=2)}
    await cluster.store.update(state.recording_id,
                               lambda s: s.model_copy(update={"events": counts}))
    async with aiohttp.ClientSession() as http:
        timeline = await call(http, "GET",
                              f"{one.url}{ADMIN}/recordings/{state.recording_id}/timeline",
                              admin(one))
        missing = await call(http, "GET", f"{one.url}{ADMIN}/recordings/nope/timeline",
                             admin(one), 404)
    assert missing["status"] == 404
    events = [e["event"] for e in timeline["entries"]]
    assert events == ["publisher_joined", "recording_pending", "recording_started",
                      "recording_paused", "recording_resumed", "recording_paused",
                      "recording_resumed", "recording_stopped"]
    assert timeline["entries"][0]["publisher_id"] == "pub-1"
    assert timeline["status"] == "processing"
    assert timeline["complete"] is True
    assert len(timeline["pauses"]) == 2
    assert all(p["ended_at"] >= p["started_at"] for p in timeline["pauses"])
    assert timeline["events"] == {"chat": {"recorded": 3, "dropped": 1},
                                  "api": {"recorded": 2, "dropped": 0}}


async def test_a_recording_without_history_gets_its_times(
        nodes: tuple[Daemon, Daemon, str], cluster: Cluster) -> None:
    one = nodes[0]
    state = await cluster.recording(one.node_id, one.storage, "time-r", "time-u",
                                    (Action.MEDIA_STARTED, Action.PAUSE))
    await cluster.redis.delete(cluster.keys.history(state.recording_id))
    async with aiohttp.ClientSession() as http:
        timeline = await call(http, "GET",
                              f"{one.url}{ADMIN}/recordings/{state.recording_id}/timeline",
                              admin(one))
    assert timeline["complete"] is False
    assert [e["status"] for e in timeline["entries"]] == ["pending", "recording", "paused"]
    assert timeline["pauses"][0]["ended_at"] is None


async def test_thumbnail_made_on_the_node_that_holds_the_file(
        nodes: tuple[Daemon, Daemon, str], cluster: Cluster) -> None:
    one, two, _ = nodes
    with_video = await cluster.recording(one.node_id, one.storage, "pic-r", "pic-u",
                                         (Action.MEDIA_STARTED,), video=True)
    stored = await cluster.recording(two.node_id, two.storage, "pic-r", "pic-u")
    (Path(stored.local_path) / "thumbnail.jpg").write_bytes(b"\xff\xd8stored\xff\xd9")
    empty = await cluster.recording(one.node_id, one.storage, "pic-r", "pic-u")
    base = f"{ADMIN}/recordings"
    async with aiohttp.ClientSession() as http:
        # asked through node two: forwarded to node one, whose disk holds the file
        async with http.get(f"{two.url}{base}/{with_video.recording_id}/thumbnail.jpg",
                            headers=admin(two)) as resp:
            assert resp.status == 200, await resp.text()
            assert resp.content_type == "image/jpeg"
            picture = await resp.read()
        async with http.get(f"{one.url}{base}/{stored.recording_id}/thumbnail.jpg",
                            headers=admin(one)) as resp:
            assert resp.status == 200
            assert await resp.read() == b"\xff\xd8stored\xff\xd9"
        for rid in (empty.recording_id, "unknown-id"):
            await call(http, "GET", f"{one.url}{base}/{rid}/thumbnail.jpg", admin(one), 404)
    with av.open(io.BytesIO(picture), "r", format="mjpeg") as jpeg:
        frame = next(jpeg.decode(video=0))
    assert (frame.width, frame.height) == (320, 240)
    assert frame.to_ndarray(format="gray").mean() > 100  # the bright ramp, not black


async def test_queues_and_storage(nodes: tuple[Daemon, Daemon, str], cluster: Cluster) -> None:
    one, two, _ = nodes
    failed = await cluster.failed_upload(one.node_id, one.storage, "q-r", "q-u")
    letter = await cluster.dead_letter(failed.recording_id)
    await UploadQueue(cluster.redis, cluster.keys, two.node_id).enqueue("some-recording")
    await ClusterTotals(cluster.redis, cluster.keys).add(UPLOADED_BYTES, "s3", 1234)
    async with aiohttp.ClientSession() as http:
        queues = await call(http, "GET", f"{one.url}{ADMIN}/queues", admin(one))
        by_node = {q["node_id"]: q for q in queues["uploads"]}
        assert by_node[two.node_id]["depth"] == 1
        assert by_node[two.node_id]["oldest_age_seconds"] >= 0
        assert by_node[one.node_id]["depth"] == 0
        letters = queues["webhooks"]["dead_letters"]
        assert [(d["id"], d["last_error"]) for d in letters] == [(letter.id, "HTTP 500")]
        storage = await call(http, "GET", f"{two.url}{ADMIN}/storage", admin(two),
                             params={"days": "3"})
        await call(http, "GET", f"{two.url}{ADMIN}/storage", admin(two), 400,
                   params={"days": "32"})
        replayed = await call(http, "POST", f"{one.url}{ADMIN}/webhooks/replay", admin(one))
        assert replayed["replayed"] == 1
        queues = await call(http, "GET", f"{one.url}{ADMIN}/queues", admin(one))
    assert queues["webhooks"]["dead"] == 0
    assert queues["webhooks"]["queue"]["depth"] >= 1
    assert storage["uploaded_bytes"]["s3"] >= 1234
    assert len(storage["days"]) == 3
    assert storage["days"][0]["uploaded_bytes"]["s3"] >= 1234
    assert storage["days"][1]["uploaded_bytes"] == {}
    assert {n["node_id"] for n in storage["nodes"]} >= {one.node_id, two.node_id}


async def test_nodes_late_then_gone_with_a_last_seen_record(redis_url: str) -> None:
    settings = node_settings()
    with run_daemon(redis_url, **settings) as one:
        with run_daemon(redis_url, **settings) as two:
            async with aiohttp.ClientSession() as http:
                view = await _nodes_until(http, one, lambda n: n.get(two.node_id, {}).get(
                    "disk") is not None)
                row = view[two.node_id]
                assert row["health"] == "ok"
                assert row["version"] == "0.1.0"
                assert row["cpu_capacity"] > 0
                assert row["heartbeat_seconds"] == 1
                assert row["disk"]["total_bytes"] > 0
                assert row["draining"] is False
        cluster = Cluster(redis_url, settings["key_prefix"])
        try:
            ttl = await cluster.redis.ttl(cluster.keys.node_seen(two.node_id))
            assert 86_000 < ttl <= 86_400
        finally:
            await cluster.close()
        async with aiohttp.ClientSession() as http:
            late = await _nodes_until(http, one, lambda n: n[two.node_id]["health"] != "ok")
            assert late[two.node_id]["health"] in ("late", "gone")
            gone = await _nodes_until(http, one, lambda n: n[two.node_id]["health"] == "gone")
    assert gone[two.node_id]["heartbeat_age_seconds"] > 2
    assert gone[two.node_id]["last_seen_at"] is not None
    assert gone[one.node_id]["health"] == "ok"


async def _nodes_until(http: aiohttp.ClientSession, node: Daemon,
                       done: Any) -> dict[str, dict[str, Any]]:
    """The nodes route's rows by node id, asked again until `done(rows)` (a hang guard)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        view = await call(http, "GET", f"{node.url}{ADMIN}/nodes", admin(node))
        rows = {row["node_id"]: row for row in view["nodes"]}
        assert view["count"] == len(rows)
        if done(rows):
            return rows
        assert time.monotonic() < deadline, rows
        await asyncio.sleep(0.2)
