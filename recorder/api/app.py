"""Assembles the HTTP edge: route tables, middlewares, metrics, the OpenAPI document.

Middleware order, outermost first: timing (so every answer is measured), CORS (so error
answers carry CORS headers too and browsers can read them), problems (every failure becomes
problem+json). Authentication and validation run per route in the route guard.
"""

from __future__ import annotations

import time

from aiohttp import web
from aiohttp.typedefs import Handler

from recorder.api import (
    admin,
    events,
    fleet,
    health,
    openapi,
    page,
    playback,
    recordings,
    webhooks,
    whip,
)
from recorder.api.auth import Authenticator
from recorder.api.context import (
    AUTH,
    EVENTS,
    FLEET,
    METRICS,
    OPENAPI,
    PLAYBACK,
    SERVICE,
    SETTINGS,
    STARTED,
    UPLOADS,
    WEBHOOKS,
)
from recorder.api.cors import cors_middleware
from recorder.api.forwarding import Locator
from recorder.api.forwarding import install as install_forwarding
from recorder.api.inputs import JSON_LIMIT
from recorder.api.metrics import Metrics
from recorder.api.problems import problems_middleware
from recorder.api.routing import Route, register
from recorder.api.service import (
    FleetAdmin,
    PlaybackService,
    RecordingsService,
    StatusFeed,
    UploadsService,
    WebhookAdmin,
)
from recorder.config.settings import Settings

UNMATCHED_ROUTE = "unmatched"  # one label for every unknown path: bounded cardinality


def all_routes() -> tuple[Route, ...]:
    return (*recordings.ROUTES, *events.ROUTES, *admin.ROUTES, *fleet.ROUTES,
            *playback.ROUTES,
            *webhooks.ROUTES, *whip.ROUTES, *health.ROUTES, openapi.ROUTE,
            *page.ROUTES)


@web.middleware
async def timing_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request[STARTED] = time.perf_counter()
    return await handler(request)


async def _count_response(request: web.Request, response: web.StreamResponse) -> None:
    """On prepare, not in a middleware: FileResponse decides 200/206/304/416 only here."""
    started = request.get(STARTED)
    if started is None:
        return
    route = request.match_info.route.resource
    template = route.canonical if route is not None else UNMATCHED_ROUTE
    request.app[METRICS].observe_request(
        request.method, template, response.status, time.perf_counter() - started)


def build_app(
    service: RecordingsService, auth: Authenticator, settings: Settings, metrics: Metrics,
    uploads: UploadsService | None = None, playback: PlaybackService | None = None,
    webhook_admin: WebhookAdmin | None = None, status_feed: StatusFeed | None = None,
    locator: Locator | None = None, fleet_admin: FleetAdmin | None = None,
) -> web.Application:
    """`locator` (several nodes on one store) sends requests for another node's rooms and
    recordings there; without it every request acts on this node."""
    app = web.Application(
        middlewares=[timing_middleware, cors_middleware(settings.cors_origins),
                     problems_middleware],
        client_max_size=JSON_LIMIT,
    )
    app[SERVICE] = service
    app[AUTH] = auth
    app[SETTINGS] = settings
    app[METRICS] = metrics
    if uploads is not None:
        app[UPLOADS] = uploads
    if playback is not None:
        app[PLAYBACK] = playback
    if webhook_admin is not None:
        app[WEBHOOKS] = webhook_admin
    if status_feed is not None:
        app[EVENTS] = status_feed
    if fleet_admin is not None:
        app[FLEET] = fleet_admin
    if locator is not None:
        install_forwarding(app, locator)
    events.install(app)
    routes = all_routes()
    register(app, routes)
    app[OPENAPI] = openapi.build_document(routes)
    app.on_response_prepare.append(_count_response)
    return app
