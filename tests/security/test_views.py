"""Sizes, pages and what is shown, against a real recorderd on real Redis: metadata is capped
at 16 KiB, lists come in pages newest first, users see no `local_path` or source
credentials, /metrics names no webhook URL, and client strings reach the log escaped."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from recorder.api.metrics import endpoint_label
from recorder.core.models import MAX_METADATA_BYTES
from tests.support.daemon import Daemon, run_daemon, token
from tests.support.seed import seed_completed

PREFIX = "views:"
HOOK_SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
HOOK_TOKEN = "hook-query-secret-4711"
WAIT_SECONDS = 60.0  # a safety net against a hung test on a busy machine, not a measurement
WHEP_URL = "https://puller:pull-password@whep.example.net:8443/live/room?token=whep-secret#f"


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def receiver() -> Iterator[str]:
    """A local webhook receiver; its URL carries a token in the query, as operators do."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook?token={HOOK_TOKEN}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def daemon(redis_url: str, receiver: str) -> Iterator[Daemon]:
    with run_daemon(redis_url, key_prefix=PREFIX, webhook_url=receiver,
                    webhook_secret=HOOK_SECRET, heartbeat_seconds=1) as node:
        yield node


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(http: aiohttp.ClientSession, method: str, url: str, headers: dict[str, str],
               **kw: Any) -> tuple[int, Any]:
    async with http.request(method, url, headers=headers, **kw) as response:
        return response.status, await response.json(content_type=None)


# ---- metadata -------------------------------------------------------------------------------

def metadata_of(size: int) -> dict[str, str]:
    """A metadata object whose compact JSON is exactly `size` bytes."""
    value = {"k": "v" * (size - len('{"k":""}'))}
    assert len(json.dumps(value, separators=(",", ":")).encode()) == size
    return value


async def test_metadata_of_16_kib_is_kept_and_one_byte_more_is_refused(
    daemon: Daemon, http: aiohttp.ClientSession, redis_url: str
) -> None:
    user, room = "user-meta", "room-meta"
    headers = daemon.headers(user)
    start = f"{daemon.url}/api/webrtc/rooms/{room}/recording/start"
    status, problem = await call(http, "POST", start, headers,
                                 json={"metadata": metadata_of(MAX_METADATA_BYTES + 1)})
    assert status == 400, problem
    assert "metadata" in problem["detail"]
    assert [e["location"] for e in problem["errors"]] == ["body.metadata"]
    redis = aioredis.from_url(redis_url, decode_responses=True)
    try:  # nothing stored: no state, no index entry
        assert await redis.keys(f"{PREFIX}user:{user}") == []
        assert await redis.keys(f"{PREFIX}room:{room}") == []
    finally:
        await redis.aclose()

    status, state = await call(http, "POST", start, headers,
                               json={"metadata": metadata_of(MAX_METADATA_BYTES)})
    assert status == 201, state
    assert state["metadata"] == metadata_of(MAX_METADATA_BYTES)
    rid = state["recording_id"]
    status, state = await call(
        http, "DELETE", f"{daemon.url}/api/webrtc/rooms/{room}/recording/{rid}", headers)
    assert (status, state["status"]) == (200, "cancelled")


# ---- pages ----------------------------------------------------------------------------------

async def walk(http: aiohttp.ClientSession, url: str, headers: dict[str, str],
               limit: int) -> list[list[dict[str, Any]]]:
    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    while True:
        params = {"limit": str(limit)} | ({"cursor": cursor} if cursor else {})
        status, page = await call(http, "GET", url, headers, params=params)
        assert status == 200, page
        assert page["count"] == len(page["recordings"]) <= limit
        pages.append(page["recordings"])
        cursor = page["next_cursor"]
        if cursor is None:
            return pages


async def test_lists_walk_every_recording_once_newest_first(
    daemon: Daemon, http: aiohttp.ClientSession, redis_url: str
) -> None:
    user, room = "user-pages", "room-pages"
    made = await seed_completed(redis_url, PREFIX, daemon.node_id, daemon.storage, room, user,
                                count=25)
    newest_first = [s.recording_id for s in
                    sorted(made, key=lambda s: (s.created_at, s.recording_id), reverse=True)]
    headers = daemon.headers(user)
    for url in (f"{daemon.url}/api/webrtc/recordings",
                f"{daemon.url}/api/webrtc/rooms/{room}/recordings"):
        pages = await walk(http, url, headers, 10)
        assert [len(p) for p in pages] == [10, 10, 5]
        assert [r["recording_id"] for p in pages for r in p] == newest_first

    status, page = await call(http, "GET", f"{daemon.url}/api/webrtc/recordings", headers)
    assert (status, page["count"], page["next_cursor"]) == (200, 25, None)  # default 100


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=abc", "cursor=nonsense",
                                   "cursor=WyJ4IiwieSJd", "cursor="])
async def test_a_bad_limit_or_unknown_cursor_is_400(
    daemon: Daemon, http: aiohttp.ClientSession, query: str
) -> None:
    for path in ("/api/webrtc/recordings", "/api/webrtc/rooms/r/recordings"):
        status, problem = await call(http, "GET", f"{daemon.url}{path}?{query}",
                                     daemon.headers("user-pages"))
        assert status == 400, (path, query, problem)
        assert problem["errors"][0]["location"] == f"query.{query.split('=')[0]}"


async def test_recorderctl_ls_follows_every_page(
    daemon: Daemon, redis_url: str
) -> None:
    user, room = "user-ctl-pages", "room-ctl-pages"
    made = await seed_completed(redis_url, PREFIX, daemon.node_id, daemon.storage, room, user,
                                count=7)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECORDER_")}
    env.update(RECORDER_URL=daemon.url, RECORDER_TOKEN=token(user))
    for where in ((), ("--room", room)):
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "recorder.ctl", "ls", *where, "--page-size", "3", "--json",
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(process.communicate(), WAIT_SECONDS)
        assert process.returncode == 0, err.decode()
        listed = json.loads(out)
        ids = [r["recording_id"] for r in listed["recordings"]]
        assert sorted(ids) == sorted(s.recording_id for s in made)
        assert len(ids) == listed["count"] == 7


# ---- what users are shown -------------------------------------------------------------------

async def test_users_see_no_local_path_or_source_credentials_admins_do(
    daemon: Daemon, http: aiohttp.ClientSession, redis_url: str
) -> None:
    user, room = "user-views", "room-views"
    (seeded,) = await seed_completed(redis_url, PREFIX, daemon.node_id, daemon.storage, room,
                                     user, source={"type": "whep", "url": WHEP_URL})
    status_url = (f"{daemon.url}/api/webrtc/rooms/{room}/recording/"
                  f"{seeded.recording_id}/status")
    lists = (f"{daemon.url}/api/webrtc/recordings?user_id={user}",
             f"{daemon.url}/api/webrtc/rooms/{room}/recordings")

    headers = daemon.headers(user)
    shown = [(await call(http, "GET", status_url, headers))[1]]
    shown += [(await call(http, "GET", url, headers))[1]["recordings"][0] for url in lists]
    for state in shown:
        assert state["local_path"] is None
        assert state["source"] == {"type": "whep",
                                   "url": "https://whep.example.net:8443/live/room"}
        text = json.dumps(state)
        assert "pull-password" not in text
        assert "whep-secret" not in text
        assert str(daemon.storage) not in text

    admin = daemon.headers("ops", role="admin")
    shown = [(await call(http, "GET", status_url, admin))[1]]
    shown += [(await call(http, "GET", url, admin))[1]["recordings"][0] for url in lists]
    for state in shown:
        assert state["local_path"] == seeded.local_path
        assert state["source"] == {"type": "whep", "url": WHEP_URL}


async def test_metrics_name_the_webhook_endpoint_without_its_url(
    daemon: Daemon, http: aiohttp.ClientSession, receiver: str
) -> None:
    label = f'recorder_webhook_endpoint_disabled{{endpoint="{endpoint_label(receiver)}"}} 0.0'
    async with asyncio.timeout(WAIT_SECONDS):
        while True:  # the webhook gauges follow the heartbeat
            async with http.get(f"{daemon.url}/metrics") as response:
                text = await response.text()
            if label in text:
                break
            await asyncio.sleep(0.2)
    assert HOOK_TOKEN not in text
    assert receiver.split("?")[0] not in text
    assert not re.search(r'="[a-z]+://', text), "a label value is a URL"


# ---- the log --------------------------------------------------------------------------------

async def test_a_forged_log_line_in_a_token_reaches_neither_the_api_nor_the_log(
    daemon: Daemon, http: aiohttp.ClientSession
) -> None:
    """A `sub` carrying an escape sequence and a newline is refused (401, docs/security.md
    "Bad input"); whatever does reach a log line is escaped by the formatter (unit-tested in
    test_views_pure.py), so the log holds neither the escape byte nor the forged line."""
    forged = "user-log\x1b[2J\nWARNING forged: everything is fine"
    headers = {"Authorization": f"Bearer {token(forged)}"}
    status, problem = await call(
        http, "POST", f"{daemon.url}/api/webrtc/rooms/room-log/recording/start", headers)
    assert status == 401, problem
    log = daemon.log()
    assert "\x1b" not in log
    assert not any(line.startswith("WARNING forged") for line in log.splitlines())
