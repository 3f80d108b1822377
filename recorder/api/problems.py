"""RFC 9457 problem documents, and the middleware that turns every failure into one.

One place, because every route, the router (404, 405), the body limits (413, 415) and the
token check (401) must answer in the same shape, and nothing a client sends may surface as
a 500. Only a bug reaches the last branch, and it is logged with its traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Mapping
from typing import Any

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from recorder.core.errors import (
    InvalidInput,
    InvalidTransition,
    LimitReached,
    RecorderError,
    SourceFailed,
    Unauthorized,
    Unavailable,
)

logger = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:recorder:problem:"

# Statuses the edge itself produces (not the service), with the titles it gives them.
HTTP_TITLES: dict[int, tuple[str, str]] = {
    400: ("bad-request", "Bad request"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    413: ("payload-too-large", "Payload too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    416: ("range-not-satisfiable", "Range not satisfiable"),
    500: ("internal", "Internal error"),
}

# Headers of an aiohttp HTTPException worth keeping on the problem response.
_KEPT_HEADERS = (hdrs.ALLOW, hdrs.RETRY_AFTER, hdrs.WWW_AUTHENTICATE, hdrs.CONTENT_RANGE)


class InvalidRequest(InvalidInput):
    """Input that failed validation; `errors` says where and why, one entry per fault."""

    def __init__(self, detail: str, errors: list[dict[str, str]]) -> None:
        super().__init__(detail)
        self.errors = errors


def _slug(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    slug: str,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> web.Response:
    """One problem+json response; `extensions` become extra members (RFC 9457 section 3.2)."""
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + slug,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance is not None:
        body["instance"] = instance
    body.update({k: v for k, v in extensions.items() if v is not None})
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        headers={hdrs.CONTENT_TYPE: PROBLEM_CONTENT_TYPE, **(headers or {})},
    )


def from_recorder_error(exc: RecorderError, request: web.Request) -> web.Response:
    headers: dict[str, str] = {}
    extensions: dict[str, Any] = {}
    if isinstance(exc, LimitReached):
        headers[hdrs.RETRY_AFTER] = str(exc.retry_after)
        extensions["limit"] = exc.limit
    elif isinstance(exc, Unavailable):
        headers[hdrs.RETRY_AFTER] = str(exc.retry_after)
    elif isinstance(exc, InvalidTransition):
        extensions["current_status"] = exc.current
        extensions["action"] = exc.action
    elif isinstance(exc, Unauthorized):
        headers[hdrs.WWW_AUTHENTICATE] = bearer_challenge(request)
    elif isinstance(exc, InvalidRequest):
        extensions["errors"] = exc.errors
    elif isinstance(exc, SourceFailed):  # the failed recording and the upstream's status
        extensions["recording_id"] = exc.recording_id
        extensions["upstream_status"] = exc.upstream_status
    return problem(
        exc.status, exc.title, exc.detail, slug=_slug(type(exc).__name__),
        instance=request.path, headers=headers, **extensions,
    )


def bearer_challenge(request: web.Request) -> str:
    """RFC 6750 section 3: name the error only when a token was actually presented."""
    if hdrs.AUTHORIZATION in request.headers:
        return 'Bearer realm="recorder", error="invalid_token"'
    return 'Bearer realm="recorder"'


def from_http_exception(exc: web.HTTPException, request: web.Request) -> web.Response:
    slug, title = HTTP_TITLES.get(exc.status, (str(exc.status), exc.reason))
    if exc.status == 404:
        detail = f"no route {request.method} {request.path}"
    elif exc.status == 405:
        allowed = exc.headers.get(hdrs.ALLOW, "")
        detail = f"{request.method} is not allowed on {request.path} (allowed: {allowed})"
    else:
        detail = exc.text or exc.reason
        detail = detail.removeprefix(f"{exc.status}: ")
    headers = {str(name): exc.headers[name] for name in _KEPT_HEADERS if name in exc.headers}
    return problem(exc.status, title, detail, slug=slug, instance=request.path, headers=headers)


@web.middleware
async def problems_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except RecorderError as exc:
        if exc.status >= 500 and not isinstance(exc, Unavailable):
            logger.error("%s %s failed: %s", request.method, request.path, exc.detail)
        return from_recorder_error(exc, request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return from_http_exception(exc, request)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        logger.exception("%s %s: unexpected error", request.method, request.path)
        return problem(500, "Internal error", "the server failed; the error is logged",
                       slug="internal", instance=request.path)
