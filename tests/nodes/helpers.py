"""Two recorderd processes on one real Redis, and the HTTP calls the node tests repeat."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import aiohttp

from tests.support.daemon import Daemon

WAIT_SECONDS = 90.0  # a safety net against a hung test on a busy machine, not a measurement


def node_settings(**extra: Any) -> dict[str, Any]:
    """Settings both nodes of a test share: a key prefix of their own (so no other test's
    node takes part) and a short heartbeat."""
    return {"key_prefix": f"nodes-{uuid.uuid4().hex[:8]}:", "heartbeat_seconds": 1, **extra}


def room_url(daemon: Daemon, room: str) -> str:
    return f"{daemon.url}/api/webrtc/rooms/{room}"


async def call(http: aiohttp.ClientSession, method: str, url: str, headers: dict[str, str],
               expect: int = 200, **kw: Any) -> dict[str, Any]:
    async with http.request(method, url, headers=headers, allow_redirects=False,
                            **kw) as resp:
        body = await resp.text()
        assert resp.status == expect, f"{method} {url}: {resp.status} {body}"
        answer: dict[str, Any] = json.loads(body) if body else {}
        return answer


async def wait_status(http: aiohttp.ClientSession, daemon: Daemon, room: str,
                      recording_id: str, headers: dict[str, str],
                      wanted: set[str]) -> dict[str, Any]:
    url = f"{room_url(daemon, room)}/recording/{recording_id}/status"
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        state = await call(http, "GET", url, headers)
        if state["status"] in wanted:
            return state
        assert time.monotonic() < deadline, f"still {state['status']}: {state}"
        await asyncio.sleep(0.2)


async def metrics(http: aiohttp.ClientSession, daemon: Daemon) -> dict[str, float]:
    """/metrics as {series with labels: value}."""
    async with http.get(f"{daemon.url}/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values
