"""The HTTP calls end-to-end tests make of a real recorderd, and the settings node tests share."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from typing import Any

import aiohttp

from tests.support.daemon import Daemon

PREFIX = "webrtc:recording:"  # RECORDER_KEY_PREFIX's default
WAIT_SECONDS = 90.0  # a safety net against a hung test on a busy machine, not a measurement


def node_settings(**extra: Any) -> dict[str, Any]:
    """Settings the nodes of a multi-node test share: a key prefix of their own (so no other
    test's node takes part) and a short heartbeat."""
    return {"key_prefix": f"nodes-{uuid.uuid4().hex[:8]}:", "heartbeat_seconds": 1, **extra}


def room_url(daemon: Daemon, room: str) -> str:
    return f"{daemon.url}/api/webrtc/rooms/{room}"


def recording_url(daemon: Daemon, room: str, recording_id: str) -> str:
    return f"{room_url(daemon, room)}/recording/{recording_id}"


async def call(http: aiohttp.ClientSession, method: str, url: str, headers: dict[str, str],
               expect: int = 200, **kw: Any) -> dict[str, Any]:
    """One request that must answer `expect`; its JSON body (or {}). Redirects are answers
    here, not followed: node tests look at them."""
    kw.setdefault("allow_redirects", False)
    async with http.request(method, url, headers=headers, **kw) as resp:
        body = await resp.text()
        assert resp.status == expect, f"{method} {url}: {resp.status} {body}"
        answer: dict[str, Any] = json.loads(body) if body else {}
        return answer


async def wait_status(http: aiohttp.ClientSession, base: str, headers: dict[str, str],
                      wanted: set[str], within: float = WAIT_SECONDS) -> dict[str, Any]:
    """The state of the recording at `base` (its URL) once its status is one of `wanted`."""
    deadline = time.monotonic() + within
    while True:
        state = await call(http, "GET", f"{base}/status", headers)
        if state["status"] in wanted:
            return state
        assert time.monotonic() < deadline, f"still {state['status']}, wanted {wanted}"
        await asyncio.sleep(0.1)


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


async def workers_ready(http: aiohttp.ClientSession, daemon: Daemon,
                        count: int | None = None) -> None:
    """Wait until the node's room workers are all ready (each shows its PSS on /metrics,
    refreshed with the heartbeat); `count` defaults to the pool's default size."""
    wanted = count if count is not None else len(os.sched_getaffinity(0))
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        values = await metrics(http, daemon)
        ready = sum(1 for name in values if name.startswith("recorder_room_worker_pss_bytes{"))
        if ready >= wanted:
            return
        assert time.monotonic() < deadline, f"{ready} of {wanted} room workers ready"
        await asyncio.sleep(0.2)
