"""WHIP ingest routes (RFC 9725, docs/usage.md): a publisher POSTs an SDP offer and gets
an answer, a session URL to DELETE when done, and the ICE servers as Link headers.

Trickle ICE and ICE restarts are not supported (aiortc gathers before answering and has no
restart), so PATCH answers 405 as the RFC asks of such servers.
"""

from __future__ import annotations

import logging
from typing import Literal
from urllib.parse import quote

from aiohttp import hdrs, web
from multidict import CIMultiDict
from pydantic import BaseModel, ConfigDict

from recorder.api.context import METRICS, SERVICE, SETTINGS
from recorder.api.forwarding import by_room, by_session
from recorder.api.routing import Route, caller_of, query_of, text_of
from recorder.config.settings import IceServer
from recorder.core.errors import LimitReached
from recorder.rtc.sdp import check_offer

logger = logging.getLogger(__name__)

SDP = "application/sdp"
ROOM = "/whip/{room_id}"
SESSION = ROOM + "/{session_id}"
OFFER_EXAMPLE = (
    "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n"
    "a=ice-ufrag:Ex4m\r\na=ice-pwd:example0example0example0\r\n"
    "a=fingerprint:sha-256 " + ":".join(["5A"] * 32) + "\r\na=setup:actpass\r\n"
    "a=rtcp-mux\r\na=rtpmap:96 VP8/90000\r\na=sendonly\r\n"
)


class WhipQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["camera", "screen"] = "camera"


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def ice_links(servers: list[IceServer]) -> list[str]:
    """RFC 9725 section 4.6: one Link per server URL, TURN credentials as link params."""
    links: list[str] = []
    for server in servers:
        urls = [server.urls] if isinstance(server.urls, str) else server.urls
        for url in urls:
            link = f'<{url}>; rel="ice-server"'
            if server.username is not None:
                link += f"; username={_quoted(server.username)}"
            if server.credential is not None:
                link += f'; credential={_quoted(server.credential)}; credential-type="password"'
            links.append(link)
    return links


async def publish(request: web.Request) -> web.StreamResponse:
    caller = caller_of(request)
    room_id = request.match_info["room_id"]
    caller.check_room(room_id)
    role = query_of(request, WhipQuery).role
    try:
        session_id, answer = await request.app[SERVICE].publish(
            caller, room_id, role, text_of(request))
    except LimitReached as exc:  # docs/security.md, "Caps"
        request.app[METRICS].admission_refused(exc.limit)
        logger.info("room %s: WHIP publisher of %s refused: %s", room_id, caller.user_id,
                    exc.detail)
        raise
    request.app[METRICS].whip_sessions_started.inc()
    logger.info("room %s: WHIP session %s (%s) for %s", room_id, session_id, role,
                caller.user_id)
    headers: CIMultiDict[str] = CIMultiDict()
    headers[hdrs.CONTENT_TYPE] = SDP
    headers[hdrs.LOCATION] = f"/whip/{quote(room_id, safe='')}/{session_id}"
    headers[hdrs.ETAG] = f'"{session_id}"'
    for link in ice_links(request.app[SETTINGS].ice_servers):
        headers.add(hdrs.LINK, link)
    return web.Response(status=201, body=answer.encode(), headers=headers)


async def unpublish(request: web.Request) -> web.StreamResponse:
    caller = caller_of(request)
    room_id = request.match_info["room_id"]
    caller.check_room(room_id)
    session_id = request.match_info["session_id"]
    await request.app[SERVICE].unpublish(caller, room_id, session_id)
    logger.info("room %s: WHIP session %s ended by %s", room_id, session_id, caller.user_id)
    return web.Response(status=200)


async def patch(request: web.Request) -> web.StreamResponse:
    raise web.HTTPMethodNotAllowed(request.method, [hdrs.METH_DELETE])


async def options(request: web.Request) -> web.StreamResponse:
    return web.Response(status=204, headers={
        "Accept-Post": SDP, hdrs.ALLOW: "POST, OPTIONS"})


ROUTES: tuple[Route, ...] = (
    Route("POST", ROOM, publish, "whipPublish", "Publish media to a room (WHIP)", "whip",
          query=WhipQuery, text_body=SDP, text_example=OFFER_EXAMPLE, text_check=check_offer,
          response_media=(SDP,),
          success=201,
          success_headers=("Location", "ETag", "Link"), errors=(403, 404, 422, 429, 503),
          locate=by_room, redirect=True,
          description="Body: an SDP offer. `?role=screen` marks a screen share. An offer "
          "that cannot be parsed or negotiated is 400; one with neither audio or video in a "
          "codec this node takes nor a data channel is 422. A room "
          "another node owns: 307 to that node, or, with an `Origin` header (browsers), "
          "the request is forwarded there and its answer returned."),
    Route("DELETE", SESSION, unpublish, "whipUnpublish", "End a WHIP session", "whip",
          response_media=(), errors=(403, 404, 503), locate=by_session),
    Route("PATCH", SESSION, patch, "whipPatch", "Trickle ICE and ICE restart (unsupported)",
          "whip", auth=False, response_media=(), success=405, errors=(),
          locate=by_session),
    Route("OPTIONS", ROOM, options, "whipOptions", "WHIP capabilities (and CORS preflight)",
          "whip", auth=False, response_media=(), success=204, success_headers=("Accept-Post",)),
)
