"""A WHEP server double (draft-ietf-wish-whep) that serves real media from aiortc peers.

It follows the draft's behaviour: ``POST`` of an ``application/sdp`` offer with a Bearer
token answers ``201 Created`` with the SDP answer, a ``Location`` (relative, as servers
often send it), an ``ETag`` and ``Link: <...>; rel="ice-server"`` headers when configured;
``DELETE`` of the Location ends the session (200); without a live publisher a ``POST`` gets
``409`` or ``503`` with ``Retry-After``. ``mode`` selects the variants a client must handle:

- ``answer``: 201 with an answer (the common case);
- ``counter``: ``406 Not Acceptable`` with the server's own offer and a Location; the client
  answers with ``PATCH`` of ``application/sdp`` (204) - the current draft's counter-offer;
- ``offer201``: 201 carrying the server's offer, answered by PATCH (the early drafts);
- ``malformed``: 201 whose body is not SDP (a broken server).

Each session sends a synthetic camera (a bar sweeping over a flat grey of ``shade``) and a
tone from tests/support/publisher.py. ``cut(seconds)`` ends every session at once, the way a
restarting server does (DTLS close), and refuses new ones (503, Retry-After: 1) meanwhile;
``stall()`` keeps sessions open but stops their media.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import av
from aiohttp import web
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from tests.support.publisher import SharedClock, SyntheticAudio, SyntheticVideo
from tests.support.serve import start_app

TOKEN = "whep-viewer-token"
SDP = "application/sdp"


class GatedTrack(MediaStreamTrack):
    """A track that stops producing while its gate is closed (a publisher that froze)."""

    def __init__(self, inner: MediaStreamTrack, gate: asyncio.Event) -> None:
        super().__init__()
        self.kind = inner.kind
        self._inner = inner
        self._gate = gate

    async def recv(self) -> av.AudioFrame | av.VideoFrame:
        await self._gate.wait()
        frame = await self._inner.recv()
        assert isinstance(frame, av.AudioFrame | av.VideoFrame)
        return frame

    def stop(self) -> None:
        super().stop()
        self._inner.stop()


@dataclass
class ServerSession:
    session_id: str
    pc: RTCPeerConnection
    shade: int
    created_at: float = field(default_factory=time.monotonic)
    answered: bool = False
    deleted: bool = False
    keyframe_requests: int = 0  # PLI/FIR the session's video sender was sent

    def count_keyframe_requests(self) -> None:
        """Count the keyframe requests (PLI, FIR) that reach the senders."""
        for sender in self.pc.getSenders():
            answer = sender._send_keyframe

            def counted(answer: Any = answer) -> None:
                self.keyframe_requests += 1
                answer()

            sender._send_keyframe = counted  # type: ignore[method-assign]


class WhepServer:
    def __init__(self, mode: str = "answer", token: str | None = TOKEN,
                 video: tuple[int, int] = (640, 360), fps: int = 15, shade: int = 60,
                 ice_links: tuple[str, ...] = ()) -> None:
        self.mode = mode
        self.token = token
        self.video = video
        self.fps = fps
        self.shade = shade  # new sessions' picture; change it to tell sessions apart
        self.ice_links = ice_links
        self.refuse: tuple[int, int | None] | None = None  # (status, Retry-After) for POSTs
        self.sessions: dict[str, ServerSession] = {}
        self.posts: list[dict[str, str]] = []  # headers of every POST
        self.patches: list[str] = []  # session ids answered by PATCH
        self.deletes: list[str] = []
        self._refuse_until = 0.0
        self._new_session = asyncio.Event()
        self._gate = asyncio.Event()
        self._gate.set()
        self.app = web.Application()
        self.app.router.add_post("/whep/{stream}", self._post)
        self.app.router.add_patch("/whep/{stream}/{session_id}", self._patch)
        self.app.router.add_delete("/whep/{stream}/{session_id}", self._delete)

    # ---- controls for tests ---------------------------------------------------------------

    @property
    def live_sessions(self) -> list[ServerSession]:
        return [s for s in self.sessions.values() if not s.deleted]

    async def cut(self, seconds: float) -> None:
        """End every session now and refuse new ones for `seconds` (503, Retry-After: 1)."""
        self._refuse_until = time.monotonic() + seconds
        for session in list(self.sessions.values()):
            await session.pc.close()

    async def wait_sessions(self, count: int) -> None:
        """Until `count` sessions were created (the caller bounds the wait)."""
        while len(self.sessions) < count:
            self._new_session.clear()
            await self._new_session.wait()

    def stall(self) -> None:
        self._gate.clear()

    def unstall(self) -> None:
        self._gate.set()

    async def close(self) -> None:
        self._gate.set()
        for session in self.sessions.values():
            await session.pc.close()

    # ---- protocol -----------------------------------------------------------------------

    def _tracks(self, shade: int) -> list[MediaStreamTrack]:
        clock = SharedClock()
        return [GatedTrack(SyntheticAudio(clock), self._gate),
                GatedTrack(SyntheticVideo(clock, *self.video, self.fps, shade=shade),
                           self._gate)]

    def _headers(self, location: str) -> dict[str, str]:
        return {"Location": location, "ETag": f'"{uuid.uuid4().hex[:12]}"'}

    async def _post(self, request: web.Request) -> web.StreamResponse:
        self.posts.append(dict(request.headers))
        if self.token is not None and request.headers.get("Authorization") != (
                f"Bearer {self.token}"):
            return web.Response(status=401, text="bad token")
        if time.monotonic() < self._refuse_until:
            return web.Response(status=503, text="restarting", headers={"Retry-After": "1"})
        if self.refuse is not None:
            status, retry = self.refuse
            headers = {"Retry-After": str(retry)} if retry is not None else {}
            return web.Response(status=status, text="refused", headers=headers)
        if request.content_type != SDP:
            return web.Response(status=415, text="offer must be application/sdp")
        offer = await request.text()
        session_id = uuid.uuid4().hex
        stream = request.match_info["stream"]
        # A relative reference in the common case, as servers often send it.
        location = f"{stream}/{session_id}" if self.mode == "answer" else (
            f"/whep/{stream}/{session_id}")
        pc = RTCPeerConnection()
        session = ServerSession(session_id, pc, self.shade)
        self.sessions[session_id] = session
        self._new_session.set()
        headers = self._headers(location)
        if self.mode == "malformed":
            return web.Response(status=201, text="<html>this is not an SDP</html>",
                                content_type=SDP, headers=headers)
        if self.mode in ("counter", "offer201"):
            for track in self._tracks(session.shade):
                pc.addTransceiver(track, direction="sendonly")
            await pc.setLocalDescription(await pc.createOffer())
            session.count_keyframe_requests()
            response = web.Response(status=406 if self.mode == "counter" else 201,
                                    text=pc.localDescription.sdp, content_type=SDP,
                                    headers=headers)
        else:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
            for track in self._tracks(session.shade):
                pc.addTrack(track)
            await pc.setLocalDescription(await pc.createAnswer())
            session.count_keyframe_requests()
            session.answered = True
            response = web.Response(status=201, text=pc.localDescription.sdp,
                                    content_type=SDP, headers=headers)
        for link in self.ice_links:
            response.headers.add("Link", link)
        return response

    def _session(self, request: web.Request) -> ServerSession | None:
        session = self.sessions.get(request.match_info["session_id"])
        return None if session is None or session.deleted else session

    async def _patch(self, request: web.Request) -> web.StreamResponse:
        session = self._session(request)
        if session is None:
            return web.Response(status=404)
        if request.content_type != SDP or session.answered:
            return web.Response(status=405 if session.answered else 415)
        try:
            await session.pc.setRemoteDescription(
                RTCSessionDescription(sdp=await request.text(), type="answer"))
        except Exception as exc:  # a malformed answer is the client's fault: 4xx
            return web.Response(status=400, text=str(exc))
        session.answered = True
        self.patches.append(session.session_id)
        return web.Response(status=204)

    async def _delete(self, request: web.Request) -> web.StreamResponse:
        if self.token is not None and request.headers.get("Authorization") != (
                f"Bearer {self.token}"):
            return web.Response(status=401)
        session = self._session(request)
        if session is None:
            return web.Response(status=404)
        session.deleted = True
        self.deletes.append(session.session_id)
        await session.pc.close()
        return web.Response(status=200)


@asynccontextmanager
async def serve_whep(server: WhepServer, port: int = 0) -> AsyncIterator[str]:
    """Yields the endpoint URL of stream "live" (POST there), on `port` when given (a
    recorder's RECORDER_PULL_ALLOWED_URLS names it before the server runs)."""
    runner, url = await start_app(server.app, port=port)
    try:
        yield f"{url}/whep/live"
    finally:
        await server.close()
        await runner.cleanup()
