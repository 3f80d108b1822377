"""The smallest WHIP endpoint in front of a RoomSession, for tests of the publishers.

It is not the product's API (that lives in recorder/api): just enough HTTP (RFC 9725 POST,
DELETE, CORS preflights exposing Location) to prove that real clients, a browser among them,
get media into a room through an answer the room produced.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from recorder.core.errors import RecorderError, Unavailable
from recorder.room.messages import Publish, PublishAnswer, Unpublish
from recorder.room.session import RoomSession

TOKEN = "test-token"
CORS_HEADERS = {
    "Access-Control-Allow-Methods": "POST, PATCH, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match",
    "Access-Control-Expose-Headers": "Location, Link, ETag",
    "Access-Control-Max-Age": "600",
}


def _cors(request: web.Request, response: web.StreamResponse) -> None:
    origin = request.headers.get("Origin")
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
        response.headers.update(CORS_HEADERS)


class WhipEndpoint:
    def __init__(self, room: RoomSession) -> None:
        self.room = room
        self.preflights = 0
        self.app = web.Application()
        self.app.router.add_route("OPTIONS", "/whip/{room_id}", self._options)
        self.app.router.add_route("OPTIONS", "/whip/{room_id}/{session_id}", self._options)
        self.app.router.add_post("/whip/{room_id}", self._post)
        self.app.router.add_delete("/whip/{room_id}/{session_id}", self._delete)

    async def _options(self, request: web.Request) -> web.Response:
        if "Access-Control-Request-Method" in request.headers:
            self.preflights += 1
        response = web.Response(status=204, headers={"Accept-Post": "application/sdp"})
        _cors(request, response)
        return response

    def _authorised(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {TOKEN}"

    def _error(self, request: web.Request, status: int, detail: str,
               retry_after: int | None = None) -> web.Response:
        response = web.json_response({"status": status, "detail": detail}, status=status,
                                     content_type="application/problem+json")
        if retry_after is not None:
            response.headers["Retry-After"] = str(retry_after)
        _cors(request, response)
        return response

    async def _post(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return self._error(request, 401, "bad token")
        if request.content_type != "application/sdp":
            return self._error(request, 415, "offer must be application/sdp")
        session_id = uuid.uuid4().hex
        try:
            reply = await self.room.handle(
                Publish(session_id, "browser", "browser", "camera", await request.text()))
        except Unavailable as exc:
            return self._error(request, exc.status, exc.detail, exc.retry_after)
        except RecorderError as exc:
            return self._error(request, exc.status, exc.detail)
        assert isinstance(reply, PublishAnswer)
        room_id = request.match_info["room_id"]
        response = web.Response(status=201, text=reply.answer_sdp,
                                content_type="application/sdp",
                                headers={"Location": f"/whip/{room_id}/{session_id}"})
        _cors(request, response)
        return response

    async def _delete(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return self._error(request, 401, "bad token")
        try:
            await self.room.handle(Unpublish(request.match_info["session_id"]))
        except RecorderError as exc:
            return self._error(request, exc.status, exc.detail)
        response = web.Response(status=200)
        _cors(request, response)
        return response


@asynccontextmanager
async def serve_whip(room: RoomSession, host: str = "127.0.0.1") -> AsyncIterator[
        tuple[str, WhipEndpoint]]:
    """Yields (base URL, endpoint); POST to f"{base}/whip/{room_id}"."""
    endpoint = WhipEndpoint(room)
    runner = web.AppRunner(endpoint.app)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    try:
        yield f"http://{host}:{runner.addresses[0][1]}", endpoint
    finally:
        await runner.cleanup()
