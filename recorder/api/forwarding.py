"""Requests for a room or recording another node owns act there (docs/operations.md).

The route guard authenticates and validates the path and query here first (a bad request is
refused without a hop), then asks the node's :class:`Locator`. A WHIP POST without
``Origin`` gets a 307 to the owner (WHIP clients follow it and resend the offer); a
browser, which drops ``Authorization`` on a cross-origin redirect, and every control
request are forwarded: same method, headers and body, and the owner's answer is returned
as it came. A forwarded request carries :data:`FORWARDED_HEADER`, and a request that
carries it is never forwarded again: if its target moved meanwhile it is 503, not a loop.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

import aiohttp
from aiohttp import hdrs, web
from multidict import CIMultiDict

from recorder.api.context import METRICS
from recorder.api.inputs import read_body
from recorder.core.errors import Unavailable
from recorder.state.owners import Owner

logger = logging.getLogger(__name__)

FORWARDED_HEADER = "Recorder-Forwarded-By"
FORWARD_TIMEOUT_SECONDS = 60.0  # a forwarded publish waits for the owner's ICE gathering
CONNECT_TIMEOUT_SECONDS = 5.0
UNREACHABLE_RETRY_SECONDS = 5
MOVED_RETRY_SECONDS = 1

# Not passed on in either direction: per connection, recomputed, or added by our own
# middlewares (CORS) on the way back.
_HOP_BY_HOP = frozenset(h.lower() for h in (
    hdrs.CONNECTION, hdrs.KEEP_ALIVE, hdrs.PROXY_AUTHENTICATE, hdrs.PROXY_AUTHORIZATION,
    hdrs.TE, hdrs.TRAILER, hdrs.TRANSFER_ENCODING, hdrs.UPGRADE, hdrs.HOST,
    hdrs.CONTENT_LENGTH, hdrs.ACCEPT_ENCODING, hdrs.DATE, hdrs.SERVER,
    hdrs.VARY))


class Locator(Protocol):
    """Where a request acts: None means this node, else the owning node."""

    @property
    def node_id(self) -> str: ...

    async def room(self, room_id: str) -> Owner | None: ...

    async def recording(self, recording_id: str) -> Owner | None: ...

    async def session(self, room_id: str, session_id: str) -> Owner | None: ...

    async def files(self, recording_id: str) -> Owner | None: ...


Locate = Callable[[Locator, web.Request], Awaitable[Owner | None]]

LOCATOR: web.AppKey[Locator] = web.AppKey("recorder.locator")
CLIENT: web.AppKey[aiohttp.ClientSession] = web.AppKey("recorder.forward_client")


async def by_room(locator: Locator, request: web.Request) -> Owner | None:
    return await locator.room(request.match_info["room_id"])


async def by_recording(locator: Locator, request: web.Request) -> Owner | None:
    return await locator.recording(request.match_info["recording_id"])


async def by_files(locator: Locator, request: web.Request) -> Owner | None:
    return await locator.files(request.match_info["recording_id"])


async def by_session(locator: Locator, request: web.Request) -> Owner | None:
    return await locator.session(request.match_info["room_id"],
                                 request.match_info["session_id"])


def install(app: web.Application, locator: Locator) -> None:
    """Use `locator` for the app's routes, with one HTTP client for all forwarding."""
    app[LOCATOR] = locator

    async def client_ctx(app: web.Application) -> AsyncIterator[None]:
        timeout = aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_SECONDS,
                                        sock_connect=CONNECT_TIMEOUT_SECONDS)
        async with aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as client:
            app[CLIENT] = client
            yield

    app.cleanup_ctx.append(client_ctx)


async def elsewhere(request: web.Request, locate: Locate, redirect: bool,
                    body_limit: int, body: bytes | None = None) -> web.StreamResponse | None:
    """The owner's answer when the request belongs to another node, else None (act here).

    `body` is the request's body when the route has read it already (else it is read here,
    within `body_limit`, only when the request is forwarded)."""
    locator = request.app.get(LOCATOR)
    if locator is None:
        return None
    owner = await locate(locator, request)
    if owner is None:
        return None
    forwarded_by = request.headers.get(FORWARDED_HEADER)
    if forwarded_by is not None:
        raise Unavailable(f"{request.path} moved to node {owner.node_id} while node "
                          f"{forwarded_by} forwarded it here; try again",
                          retry_after=MOVED_RETRY_SECONDS)
    target = owner.public_url.rstrip("/") + request.path_qs
    if redirect and hdrs.ORIGIN not in request.headers:
        logger.info("%s %s: redirected to node %s", request.method, request.path,
                    owner.node_id)
        request.app[METRICS].request_forwarded("redirect")
        raise web.HTTPTemporaryRedirect(target)
    if body is None:
        body = await read_body(request, body_limit) if request.body_exists else b""
    request.app[METRICS].request_forwarded("forward")
    return await forward(request, owner, target, body, locator.node_id)


async def forward(request: web.Request, owner: Owner, target: str, body: bytes,
                  node_id: str) -> web.Response:
    headers: CIMultiDict[str] = CIMultiDict(
        (k, v) for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP)
    headers[FORWARDED_HEADER] = node_id
    if request.remote:
        headers.add("X-Forwarded-For", request.remote)
    client = request.app[CLIENT]
    try:
        async with client.request(request.method, target, headers=headers, data=body,
                                  allow_redirects=False) as upstream:
            content = await upstream.read()
            answer: CIMultiDict[str] = CIMultiDict(
                (k, v) for k, v in upstream.headers.items()
                if k.lower() not in _HOP_BY_HOP and not k.lower().startswith("access-control-"))
            status = upstream.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        logger.warning("%s %s: node %s at %s unreachable: %r", request.method, request.path,
                       owner.node_id, owner.public_url, exc)
        raise Unavailable(f"node {owner.node_id}, which owns this, cannot be reached at "
                          f"{owner.public_url}",
                          retry_after=UNREACHABLE_RETRY_SECONDS) from exc
    logger.info("%s %s: forwarded to node %s: %d", request.method, request.path,
                owner.node_id, status)
    return web.Response(status=status, body=content, headers=answer)
