"""Admin routes of the outgoing webhooks (docs/api.md): look at the outbox, and replay
its dead letters (which also re-enables endpoints a 410 disabled)."""

from __future__ import annotations

import logging

from aiohttp import web

from recorder.api.context import SETTINGS, WEBHOOKS
from recorder.api.routing import Route, caller_of
from recorder.api.service import WebhookAdmin
from recorder.core.access import Caller
from recorder.core.errors import Forbidden, NotFound
from recorder.core.outbox_status import ReplayResult, WebhookStatus

logger = logging.getLogger(__name__)

ADMIN_WEBHOOKS = "/api/webrtc/admin/webhooks"


def _admin(request: web.Request) -> tuple[Caller, WebhookAdmin]:
    caller = caller_of(request)
    if not caller.is_admin:
        raise Forbidden("only admins may manage webhooks")
    outbox = request.app.get(WEBHOOKS)
    if outbox is None:
        raise NotFound("webhooks are not managed by this node")
    return caller, outbox


async def status(request: web.Request) -> web.StreamResponse:
    _, outbox = _admin(request)
    configured = [u for u in [request.app[SETTINGS].webhook_url] if u]
    return web.json_response((await outbox.status(configured)).model_dump())


async def replay(request: web.Request) -> web.StreamResponse:
    caller, outbox = _admin(request)
    result = await outbox.replay()
    logger.info("webhooks: %d dead letter(s) replayed by %s", result.replayed, caller.user_id)
    return web.json_response(result.model_dump())


ROUTES: tuple[Route, ...] = (
    Route("GET", ADMIN_WEBHOOKS, status, "getWebhooks", "Webhook outbox status (admin)",
          "admin", admin=True, response=WebhookStatus, errors=(403, 404, 503),
          description="Endpoints (disabled after a 410), queue depth and the age of the "
          "oldest undelivered event, dead letters (the last 100), delivery counts."),
    Route("POST", ADMIN_WEBHOOKS + "/replay", replay, "replayWebhooks",
          "Replay dead letters and re-enable endpoints (admin)", "admin", admin=True,
          response=ReplayResult, errors=(403, 404, 503),
          description="Every dead letter goes back to the queue with its attempts reset and "
          "the same webhook-id; disabled endpoints are enabled again."),
)
