"""CORS for the origins in RECORDER_CORS_ORIGINS (WHIP from a browser page needs it).

Preflights are answered here, before authentication (browsers send them without the
token), for allowed origins only and only on paths that exist; a route's own OPTIONS handler
still runs so WHIP's ``Accept-Post`` reaches the browser. Other origins get no CORS headers
at all, which makes the browser refuse the call. Credentials are bearer tokens, never
cookies, so ``Access-Control-Allow-Credentials`` is not sent.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

EXPOSED = "Location, Link, ETag, Retry-After, Accept-Post"
MAX_AGE_SECONDS = 600


def cors_middleware(origins: Iterable[str]) -> Middleware:
    allowed = frozenset(origin.rstrip("/") for origin in origins)
    any_origin = "*" in allowed

    def permitted(origin: str | None) -> bool:
        return origin is not None and (any_origin or origin in allowed)

    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get(hdrs.ORIGIN)
        if (
            request.method == hdrs.METH_OPTIONS
            and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers
            and permitted(origin)
            and not isinstance(request.match_info.http_exception, web.HTTPNotFound)
        ):
            return await _preflight(request, handler, origin or "")
        response = await handler(request)
        if permitted(origin):
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin or ""
            response.headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = EXPOSED
        if origin is not None:
            response.headers.add(hdrs.VARY, hdrs.ORIGIN)
        return response

    return cors


async def _preflight(request: web.Request, handler: Handler, origin: str) -> web.StreamResponse:
    match = request.match_info
    if match.http_exception is None and match.route.method == hdrs.METH_OPTIONS:
        response = await handler(request)
    else:
        response = web.Response(status=204)
    headers = response.headers
    headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
    headers[hdrs.ACCESS_CONTROL_ALLOW_METHODS] = request.headers[
        hdrs.ACCESS_CONTROL_REQUEST_METHOD]
    requested = request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_HEADERS)
    if requested:
        headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = requested
    headers[hdrs.ACCESS_CONTROL_MAX_AGE] = str(MAX_AGE_SECONDS)
    headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = EXPOSED
    headers.add(hdrs.VARY, "Origin, Access-Control-Request-Method, "
                           "Access-Control-Request-Headers")
    return response
