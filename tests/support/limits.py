"""Helpers for tests of refusals: a 429 checked as a client sees it, the refused counter of
/metrics, WHIP offers posted without ever connecting, and polling Redis for an outcome."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from tests.e2e.test_drain import whip_offer
from tests.support.api import metrics
from tests.support.daemon import Daemon

WAIT_SECONDS = 60.0  # a safety net against a hung test, not a measurement


async def refused(http: aiohttp.ClientSession, daemon: Daemon, limit: str) -> float:
    """recorder_admissions_refused_total for `limit` (0 before the first refusal)."""
    values = await metrics(http, daemon)
    return values.get(f'recorder_admissions_refused_total{{limit="{limit}"}}', 0.0)


async def check_429(resp: aiohttp.ClientResponse, limit: str) -> dict[str, Any]:
    """The response is the 429 of `limit`: named in `detail` and `limit`, with Retry-After."""
    body = await resp.text()
    assert resp.status == 429, f"{resp.status} {body}"
    assert resp.content_type == "application/problem+json"
    problem: dict[str, Any] = json.loads(body)
    assert problem["limit"] == limit, problem
    assert limit in problem["detail"], problem
    assert int(resp.headers["Retry-After"]) >= 1
    return problem


async def post_offer(http: aiohttp.ClientSession, daemon: Daemon, room: str,
                     headers: dict[str, str], offer: str | None = None) -> tuple[int, str]:
    """POST a WHIP offer whose peer is already gone (it never connects): (status, body)."""
    sdp = offer or await whip_offer()
    async with http.post(f"{daemon.url}/whip/{room}", data=sdp, allow_redirects=False,
                         headers={**headers, "Content-Type": "application/sdp"}) as resp:
        return resp.status, await resp.text()


async def eventually(check: Callable[[], Awaitable[bool]], what: str,
                     within: float = WAIT_SECONDS) -> None:
    """Wait for an outcome only the server can announce (a key expiring, a slot given back)."""
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, f"not within {within:g} s: {what}"
        await asyncio.sleep(0.1)
