"""Playback routes (docs/api.md, docs/operations.md): signed playback URLs, Stream's webhook, and
the admin route that registers that webhook with Stream.

Stream's webhook carries no token: its ``Webhook-Signature`` over the raw body is the
credential, so the body is read as bytes and verified before anything is parsed.
"""

from __future__ import annotations

import logging

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from recorder.api.context import PLAYBACK, served
from recorder.api.inputs import JSON_LIMIT
from recorder.api.routing import Route, body_of, caller_of, query_of
from recorder.api.service import PlaybackService
from recorder.core.errors import Forbidden, InvalidInput
from recorder.core.playback import MAX_EXPIRY_HOURS

logger = logging.getLogger(__name__)

STREAM_WEBHOOK = "/api/webhooks/cloudflare/stream"


class PlaybackQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expiry_hours: float = Field(MAX_EXPIRY_HOURS, gt=0, le=MAX_EXPIRY_HOURS,
                                description="How long the URL works (at most 24 h)")
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$",
                             description="One of the recording's `files` (default: the main)")


class PlaybackUrlBody(BaseModel):
    recording_id: str
    signed_url: str
    expires_at: str


class StreamWebhookResult(BaseModel):
    result: str = Field(description="updated, duplicate or ignored")
    recording_id: str | None = None
    detail: str | None = None


class RegisterWebhook(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(pattern=r"^https?://[^\s/?#]+[^\s]*$", max_length=2048,
                     description="Where Stream sends its notifications (this route, public)")


class Registered(BaseModel):
    notificationUrl: str  # Stream's field name
    modified: str | None = None


def _playback(request: web.Request) -> PlaybackService:
    return served(request, PLAYBACK, "playback")


async def playback_url(request: web.Request) -> web.StreamResponse:
    caller = caller_of(request)
    query = query_of(request, PlaybackQuery)
    result = await _playback(request).playback_url(
        caller, request.match_info["recording_id"], query.expiry_hours, query.name)
    return web.json_response(PlaybackUrlBody.model_validate(result, from_attributes=True)
                             .model_dump())


async def stream_webhook(request: web.Request) -> web.StreamResponse:
    if (request.content_length or 0) > JSON_LIMIT:
        raise InvalidInput("body too large")
    body = await request.read()
    outcome = await _playback(request).stream_notification(
        body, request.headers.get("Webhook-Signature"))
    return web.json_response(StreamWebhookResult.model_validate(outcome, from_attributes=True)
                             .model_dump())


async def register_stream_webhook(request: web.Request) -> web.StreamResponse:
    caller = caller_of(request)
    if not caller.is_admin:
        raise Forbidden("only admins may register Stream's webhook")
    body = body_of(request, RegisterWebhook)
    if body is None:
        raise InvalidInput("a JSON body {\"url\": ...} is required")
    result = await _playback(request).register_stream_webhook(body.url)
    logger.info("Stream webhook registered by %s: %s", caller.user_id, body.url)
    return web.json_response(Registered.model_validate(result).model_dump())


ROUTES: tuple[Route, ...] = (
    Route("GET", "/api/webrtc/recordings/{recording_id}/playback-url", playback_url,
          "getPlaybackUrl", "A signed, expiring URL that plays the recording", "recordings",
          query=PlaybackQuery, response=PlaybackUrlBody, errors=(403, 404, 409, 503),
          description="Stream: a token URL signed with RECORDER_CF_STREAM_KEY_*; S3: a "
          "presigned GET; local files: the file route with `exp` and `sig` (no token "
          "needed). Only the owner or an admin gets one."),
    Route("POST", STREAM_WEBHOOK, stream_webhook, "streamWebhook",
          "Cloudflare Stream's notification about a video", "webhooks", auth=False,
          response=StreamWebhookResult, errors=(400, 401, 404, 503),
          description="Verified with `Webhook-Signature: time=..,sig1=..` (HMAC-SHA256 of "
          "`time.body`, at most 5 minutes old) against RECORDER_CF_WEBHOOK_SECRET or the "
          "registered secret. Sets the file's `playback` and fires `recording.ready` or "
          "`recording.failed`; `status` never changes."),
    Route("POST", "/api/webrtc/admin/cloudflare/webhook", register_stream_webhook,
          "registerStreamWebhook", "Register Stream's webhook URL (admin)", "admin", admin=True,
          body=RegisterWebhook, response=Registered, errors=(403, 404, 502, 503),
          description="PUT /accounts/{id}/stream/webhook with `notificationUrl`; the secret "
          "Stream answers with is kept in Redis to verify its notifications."),
)
