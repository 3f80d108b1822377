"""A webhook receiver on loopback that misbehaves on cue, and helpers that make real
lifecycle events in a real Redis."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web
from standardwebhooks.webhooks import Webhook

from recorder.core import lifecycle
from recorder.core.lifecycle import Action
from recorder.core.limits import Limits
from recorder.core.models import StopReason
from recorder.core.webhooks import WebhookRouting
from recorder.state.keys import KeySpace
from recorder.state.store import StateStore
from tests.support.serve import start_app
from tests.support.states import make_state

SECRET = "whsec_" + base64.b64encode(b"receiver-test-key-0123456789abcd").decode()

# What to answer to the n-th request (0-based) carrying one webhook-id:
# an int status, ("retry-after", seconds), ("sleep", seconds) or None for 200.
Plan = Callable[[int], Any]


@dataclass
class Received:
    webhook_id: str
    timestamp: int
    body: dict[str, Any]
    status: int
    arrived: float  # monotonic
    verified: bool


@dataclass
class Receiver:
    plan: Plan = field(default=lambda n: None)
    requests: list[Received] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None

    def delivered(self) -> list[Received]:
        return [r for r in self.requests if r.status == 200]

    def attempts(self, webhook_id: str) -> list[Received]:
        return [r for r in self.requests if r.webhook_id == webhook_id]

    async def wait_delivered(self, count: int, seconds: float = 60) -> list[Received]:
        deadline = time.monotonic() + seconds
        while len(self.delivered()) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.delivered())} of {count} delivered: "
                                     f"{[(r.webhook_id, r.status) for r in self.requests]}")
            await asyncio.sleep(0.05)
        return self.delivered()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        wid = request.headers.get("webhook-id", "")
        n = len(self.attempts(wid))
        try:
            Webhook(SECRET).verify(raw, dict(request.headers))
            verified = True
        except Exception:
            verified = False
        action = self.plan(n)
        status, headers = 200, {}
        if isinstance(action, int):
            status = action
        elif isinstance(action, tuple) and action[0] == "retry-after":
            status, headers = 429, {"Retry-After": str(action[1])}
        elif isinstance(action, tuple) and action[0] == "sleep":
            self.requests.append(Received(wid, int(request.headers["webhook-timestamp"]),
                                          json.loads(raw), 0, time.monotonic(), verified))
            await asyncio.sleep(action[1])
            return web.Response(status=200)  # too late: the sender gave up on it
        self.requests.append(Received(wid, int(request.headers["webhook-timestamp"]),
                                      json.loads(raw), status, time.monotonic(), verified))
        return web.Response(status=status, headers=headers)

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner, url = await start_app(app, shutdown_timeout=0.1)
        self.url = f"{url}/hook"
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


KEYS = KeySpace("webrtc:recording:")


async def record_events(redis: aioredis.Redis, url: str) -> tuple[str, list[str]]:
    """Admit a recording and take it through started, paused, resumed, stopped: four
    webhooks queued by the store's own writes."""
    store = StateStore(redis, KEYS, 3600, 3600, webhooks=WebhookRouting(url))
    state = await store.admit(make_state(), Limits(100, 100, 100))
    rid = state.recording_id
    for action in (Action.MEDIA_STARTED, Action.PAUSE, Action.RESUME, Action.STOP):
        await store.update(rid, lambda s, a=action: lifecycle.apply(  # type: ignore[misc]
            s, a, datetime.now(UTC), stop_reason=StopReason.REQUESTED))
    return rid, ["recording.started", "recording.paused", "recording.resumed",
                 "recording.stopped"]
