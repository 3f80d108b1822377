"""A Cloudflare Stream test double, written from Cloudflare's API documentation.

It has never been run against the real service; it follows what the docs say:

- ``POST /client/v4/accounts/{account_id}/stream`` starts a tus upload: a bearer token is
  required (else 401 and Cloudflare's error envelope, code 10000), ``Tus-Resumable: 1.0.0``
  (else 412), ``Upload-Length`` (else 400); ``Upload-Metadata`` keys ``name``,
  ``requiresignedurls`` (its presence), ``maxdurationseconds``. The answer is 201 with the
  upload URL in ``Location`` and the video id (32 hex digits) in ``stream-media-id``.
- ``GET /client/v4/accounts/{account_id}/stream/{uid}`` answers ``{"success", "errors",
  "messages", "result"}`` with the video object: ``uid``, ``size``, ``readyToStream``,
  ``status.state`` (``pendingupload`` until every byte arrived, then ``queued``), ``meta``,
  ``requireSignedURLs``, ``maxDurationSeconds``, ``created``, ``modified``; 404 unknown.
- The upload URL passes HEAD and PATCH through to a real tus server (@tus/server), so the
  tus protocol itself is the official implementation's.
- ``PUT /client/v4/accounts/{account_id}/stream/webhook`` with ``{"notificationUrl"}``
  (http:// or https:// only, else 400) answers ``result: {notificationUrl, modified,
  secret}``; the secret is a new 32-hex-digit string on every subscription.

Test controls (not Cloudflare's): :attr:`faults` make the next matching request answer a
status or lose its connection after some bytes of its body; :meth:`expire` makes an upload
gone (404); :attr:`log` records every request.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import aiohttp
from aiohttp import web

from tests.support.serve import start_app

ACCOUNT = "0123456789abcdef0123456789abcdef"
TOKEN = "test-stream-token"
PASSED_HEADERS = ("Tus-Resumable", "Upload-Offset", "Upload-Length", "Content-Type",
                  "Content-Length", "Cache-Control")


@dataclass
class Fault:
    method: str  # HEAD, PATCH or POST
    status: int | None = None  # answer this instead
    cut_after: int | None = None  # PATCH: pass this many body bytes on, then drop the line
    skip: int = 0  # let this many matching requests through first


@dataclass
class Logged:
    method: str
    path: str
    upload_offset: int | None
    status: int
    authorized: bool


@dataclass
class Video:
    uid: str
    tus_url: str
    length: int
    meta: dict[str, str]
    require_signed: bool
    max_duration: int | None
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    gone: bool = False


class _Cut(Exception):
    pass


def _envelope(status: int, code: int, message: str) -> web.Response:
    return web.json_response({"success": False, "errors": [{"code": code, "message": message}],
                              "messages": [], "result": None}, status=status)


def parse_metadata(header: str) -> dict[str, str | None]:
    items: dict[str, str | None] = {}
    for pair in filter(None, (p.strip() for p in header.split(","))):
        key, _, value = pair.partition(" ")
        items[key] = base64.b64decode(value).decode() if value else None
    return items


class CloudflareDouble:
    def __init__(self, tus_url: str) -> None:
        self.tus_url = tus_url
        self.videos: dict[str, Video] = {}
        self.faults: list[Fault] = []
        self.log: list[Logged] = []
        self._in_flight = 0  # upload requests being answered (logged when answered)
        self._idle = asyncio.Event()
        self._idle.set()
        self.url = ""
        self.webhook_url: str | None = None
        self.webhook_secret: str | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def api_base(self) -> str:
        return f"{self.url}/client/v4"

    def expire(self, uid: str) -> None:
        self.videos[uid].gone = True

    def requests(self, method: str) -> list[Logged]:
        return [entry for entry in self.log if entry.method == method]

    async def settled(self) -> None:
        """Wait until every upload request received so far is answered and logged."""
        await self._idle.wait()

    # ---- the API --------------------------------------------------------------------------

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {TOKEN}"

    def _fault(self, method: str) -> Fault | None:
        for fault in self.faults:
            if fault.method == method:
                if fault.skip:
                    fault.skip -= 1
                    return None
                self.faults.remove(fault)
                return fault
        return None

    def _record(self, request: web.Request, status: int) -> None:
        offset = request.headers.get("Upload-Offset")
        self.log.append(Logged(request.method, request.path,
                               int(offset) if offset is not None else None, status,
                               self._authorized(request)))

    async def create(self, request: web.Request) -> web.StreamResponse:
        response = await self._create(request)
        self._record(request, response.status)
        return response

    async def _create(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        if not self._authorized(request):
            return _envelope(401, 10000, "Authentication error")
        if request.match_info["account_id"] != ACCOUNT:
            return _envelope(403, 10000, "Authentication error")
        fault = self._fault("POST")
        if fault is not None and fault.status is not None:
            return web.Response(status=fault.status)
        if request.headers.get("Tus-Resumable") != "1.0.0":
            return web.Response(status=412, headers={"Tus-Version": "1.0.0"})
        length = request.headers.get("Upload-Length", "")
        if not length.isdigit():
            return _envelope(400, 10005, "Upload-Length is required")
        metadata = parse_metadata(request.headers.get("Upload-Metadata", ""))
        async with self._session.post(self.tus_url, headers={
                "Tus-Resumable": "1.0.0", "Upload-Length": length}) as upstream:
            assert upstream.status == 201, await upstream.text()
            tus_location = upstream.headers["Location"]
        uid = uuid.uuid4().hex
        max_duration = metadata.get("maxdurationseconds")
        self.videos[uid] = Video(
            uid=uid, tus_url=tus_location, length=int(length),
            meta={"name": metadata.get("name") or ""},
            require_signed="requiresignedurls" in metadata,
            max_duration=int(max_duration) if max_duration else None)
        return web.Response(status=201, headers={
            "Location": f"{self.url}/tus/{uid}?tusv2=true", "stream-media-id": uid,
            "Tus-Resumable": "1.0.0",
            "Access-Control-Expose-Headers": "Location, stream-media-id"})

    async def video(self, request: web.Request) -> web.StreamResponse:
        response = await self._video(request)
        self._record(request, response.status)
        return response

    async def _video(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return _envelope(401, 10000, "Authentication error")
        video = self.videos.get(request.match_info["uid"])
        if video is None:
            return _envelope(404, 10003, "Not Found")
        offset = await self._offset(video)
        complete = offset == video.length
        return web.json_response({"success": True, "errors": [], "messages": [], "result": {
            "uid": video.uid, "size": offset, "readyToStream": False,
            "status": {"state": "queued" if complete else "pendingupload"},
            "meta": video.meta, "requireSignedURLs": video.require_signed,
            "maxDurationSeconds": video.max_duration, "created": video.created,
            "modified": datetime.now(UTC).isoformat(), "duration": -1,
        }})

    async def _offset(self, video: Video) -> int:
        assert self._session is not None
        async with self._session.head(video.tus_url,
                                      headers={"Tus-Resumable": "1.0.0"}) as upstream:
            return int(upstream.headers.get("Upload-Offset", "0"))

    async def webhook(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return _envelope(401, 10000, "Authentication error")
        body = await request.json()
        url = body.get("notificationUrl") if isinstance(body, dict) else None
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return _envelope(400, 10005, "notificationUrl must include http:// or https://")
        self.webhook_url = url
        self.webhook_secret = uuid.uuid4().hex
        return web.json_response({"success": True, "errors": [], "messages": [], "result": {
            "notificationUrl": url, "modified": datetime.now(UTC).isoformat(),
            "secret": self.webhook_secret}})

    # ---- the upload URL: passed through to the tus server ---------------------------------

    async def tus(self, request: web.Request) -> web.StreamResponse:
        self._in_flight += 1
        self._idle.clear()
        try:
            response = await self._tus(request)
        except _Cut:
            self._record(request, 0)
            assert request.transport is not None
            request.transport.close()  # the client sees its connection drop mid-body
            raise web.HTTPServiceUnavailable() from None
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()
        self._record(request, response.status)
        return response

    async def _tus(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        video = self.videos.get(request.match_info["uid"])
        if video is None or video.gone:
            await request.read()
            return web.Response(status=404)
        fault = self._fault(request.method)
        if fault is not None and fault.status is not None:
            await request.read()
            return web.Response(status=fault.status, headers={"Tus-Resumable": "1.0.0"})
        headers = {k: request.headers[k] for k in PASSED_HEADERS if k in request.headers}
        data: Any = None
        if request.method == "PATCH":
            cut = fault.cut_after if fault is not None else None
            data = self._body(request, cut)
        try:
            async with self._session.request(request.method, video.tus_url, headers=headers,
                                             data=data) as upstream:
                await upstream.read()
                out = {k: upstream.headers[k] for k in PASSED_HEADERS
                       if k in upstream.headers and k not in ("Content-Length",)}
                return web.Response(status=upstream.status, headers=out)
        except (aiohttp.ClientError, _Cut) as exc:
            if isinstance(exc, _Cut) or isinstance(exc.__cause__, _Cut):
                raise _Cut() from exc
            raise

    @staticmethod
    async def _body(request: web.Request, cut_after: int | None) -> Any:
        sent = 0
        async for chunk in request.content.iter_chunked(1 << 16):
            if cut_after is not None and sent + len(chunk) >= cut_after:
                if cut_after > sent:
                    yield chunk[: cut_after - sent]
                await asyncio.sleep(0.2)  # let the tus server take the bytes in
                raise _Cut()
            sent += len(chunk)
            yield chunk

    # ---- running ----------------------------------------------------------------------------

    async def __aenter__(self) -> CloudflareDouble:
        app = web.Application(client_max_size=1 << 30)
        app.router.add_post("/client/v4/accounts/{account_id}/stream", self.create)
        app.router.add_put("/client/v4/accounts/{account_id}/stream/webhook", self.webhook)
        app.router.add_get("/client/v4/accounts/{account_id}/stream/{uid}", self.video)
        app.router.add_route("HEAD", "/tus/{uid}", self.tus)
        app.router.add_route("PATCH", "/tus/{uid}", self.tus)
        self._session = aiohttp.ClientSession()
        self._runner, self.url = await start_app(app)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()
