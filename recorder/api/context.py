"""Typed keys for what the application and each request carry.

The app holds the collaborators handed to :func:`~recorder.api.app.build_app`; a request
holds what the route guard established before the handler runs (the verified caller and the
validated inputs), so handlers never re-parse or re-check them.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel

from recorder.api.auth import Authenticator
from recorder.api.metrics import Metrics
from recorder.api.service import (
    FleetAdmin,
    PlaybackService,
    RecordingsService,
    StatusFeed,
    UploadsService,
    WebhookAdmin,
)
from recorder.config.settings import Settings
from recorder.core.access import Caller
from recorder.core.errors import NotFound

SERVICE: web.AppKey[RecordingsService] = web.AppKey("recorder.service")
UPLOADS: web.AppKey[UploadsService] = web.AppKey("recorder.uploads")
PLAYBACK: web.AppKey[PlaybackService] = web.AppKey("recorder.playback")
WEBHOOKS: web.AppKey[WebhookAdmin] = web.AppKey("recorder.webhooks")
EVENTS: web.AppKey[StatusFeed] = web.AppKey("recorder.events")
FLEET: web.AppKey[FleetAdmin] = web.AppKey("recorder.fleet")
CLOSING: web.AppKey[asyncio.Event] = web.AppKey("recorder.closing")
AUTH = web.AppKey("recorder.auth", Authenticator)
SETTINGS = web.AppKey("recorder.settings", Settings)
METRICS = web.AppKey("recorder.metrics", Metrics)
OPENAPI: web.AppKey[dict[str, Any]] = web.AppKey("recorder.openapi")

T = TypeVar("T")


def served(request: web.Request, key: web.AppKey[T], what: str) -> T:
    """A part only some nodes serve (uploads, playback, the admin view), or 404 saying so."""
    part = request.app.get(key)
    if part is None:
        raise NotFound(f"{what} is not served by this node")
    return part


CALLER = web.RequestKey("recorder.caller", Caller)
QUERY = web.RequestKey("recorder.query", BaseModel)
BODY: web.RequestKey[BaseModel | None] = web.RequestKey("recorder.body")
TEXT = web.RequestKey("recorder.text", str)
STARTED = web.RequestKey("recorder.started", float)
