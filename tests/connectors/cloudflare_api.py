"""A Cloudflare Realtime SFU double, built from Cloudflare's published OpenAPI schema for the
Connection API (``realtime-api-2024-05-21.yaml``) and its documented behaviour.

What it follows:

- every call needs ``Authorization: Bearer <app secret>`` for the app in the path;
- ``POST /v1/apps/{appId}/sessions/new`` without a body: 201 ``{"sessionId"}``;
- ``POST .../sessions/{id}/tracks/new`` with remote tracks (``location``, ``sessionId``,
  ``trackName``): 200 with ``requiresImmediateRenegotiation: true``, the SFU's SDP offer in
  ``sessionDescription`` and one entry per track with its ``mid``; a track the publisher's
  session does not have gets its own ``errorCode``/``errorDescription`` inside the 200;
- ``PUT .../renegotiate`` with ``{"sessionDescription": {"type": "answer", ...}}``: 200 ``{}``;
- ``PUT .../tracks/close`` with ``{"tracks": [{"mid"}], "force": true}``: 200 with one entry
  per mid, ``close_track_error`` for one already closed or unknown (the schema's examples);
- mutations of one session are serialized: one that overlaps another, or that arrives while
  an SFU offer waits for its answer, gets 406 (with ``errorCode``);
- ``POST .../datachannels/establish`` with ``{"dataChannel": {"location": "remote",
  "dataChannelName": "server-events"}}`` (the only channel it takes): 200 with
  ``requiresImmediateRenegotiation: true``, ``dataChannel`` (its name and ``id`` 0) and the
  SFU's offer, now with an SCTP section, answered through ``renegotiate``;
- ``POST .../datachannels/new`` with ``{"dataChannels": [{"location": "remote", "sessionId",
  "dataChannelName"}]}`` once the transport is established: 200 with each channel and its
  ``id`` (the SCTP stream both sides open as a negotiated channel); one the publisher's
  session does not have gets its own ``errorCode``. SFU data channels are one-way: what the
  publisher sends (:meth:`CloudflareDouble.send`) reaches every subscriber.

The SFU's side of each subscriber session is an aiortc peer sending the publisher's tracks
(synthetic media); a publisher's session is seeded with :meth:`CloudflareDouble.publish`
rather than negotiated, since only pulling is under test. Error code names other than the
schema's are this double's own.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiortc import RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from tests.support.serve import start_app

APP_ID = "app-0123456789abcdef"
APP_SECRET = "sfu-app-secret"

TrackFactory = Callable[[], MediaStreamTrack]


@dataclass
class Track:
    mid: str
    location: str
    session_id: str | None  # the publisher's, for remote tracks
    track_name: str
    active: bool = True


@dataclass
class SfuSession:
    session_id: str
    published: dict[str, TrackFactory] = field(default_factory=dict)  # name -> media
    pc: RTCPeerConnection | None = None  # the SFU's side, once tracks are pulled
    tracks: list[Track] = field(default_factory=list)
    pending_offer: bool = False
    busy: bool = False
    channels_published: tuple[str, ...] = ()  # a publisher's data channel names
    transport: bool = False  # datachannels/establish done
    next_channel_id: int = 1


class CloudflareDouble:
    def __init__(self, app_id: str = APP_ID, secret: str = APP_SECRET,
                 mutation_delay: float = 0.0) -> None:
        self.app_id = app_id
        self.secret = secret
        self.mutation_delay = mutation_delay  # widens the window in which calls overlap
        self.sessions: dict[str, SfuSession] = {}
        self.calls: list[tuple[str, str, int]] = []  # (method, path after /apps/{id}, status)
        self.app = web.Application(middlewares=[self._record])
        base = "/v1/apps/{app_id}/sessions"
        self.app.router.add_post(base + "/new", self._new_session)
        self.app.router.add_post(base + "/{session_id}/tracks/new", self._new_tracks)
        self.app.router.add_put(base + "/{session_id}/renegotiate", self._renegotiate)
        self.app.router.add_put(base + "/{session_id}/tracks/close", self._close_tracks)
        self.app.router.add_get(base + "/{session_id}", self._get_session)
        self.app.router.add_post(base + "/{session_id}/datachannels/establish",
                                 self._establish)
        self.app.router.add_post(base + "/{session_id}/datachannels/new", self._new_channels)
        # (publisher session, channel name) -> the SFU's side of each subscription
        self.subscriptions: dict[tuple[str, str], list[RTCDataChannel]] = {}
        self.channel_open = asyncio.Event()  # a subscriber's data channel opened

    def publish(self, session_id: str, tracks: dict[str, TrackFactory],
                data_channels: tuple[str, ...] = ()) -> None:
        """A publisher's session with these named tracks and data channels (its own
        negotiation is not modelled)."""
        self.sessions[session_id] = SfuSession(session_id, published=dict(tracks),
                                               channels_published=data_channels)

    def send(self, session_id: str, name: str, message: str | bytes) -> int:
        """The publisher sends on its data channel ``name``: to every subscriber whose
        channel is open; how many got it."""
        sent = 0
        for channel in self.subscriptions.get((session_id, name), []):
            if channel.readyState == "open":
                channel.send(message)
                sent += 1
        return sent

    def subscribed(self, session_id: str, name: str) -> bool:
        return any(c.readyState == "open"
                   for c in self.subscriptions.get((session_id, name), []))

    async def close(self) -> None:
        for session in self.sessions.values():
            if session.pc is not None:
                await session.pc.close()

    # ---- plumbing -----------------------------------------------------------------------

    @web.middleware
    async def _record(self, request: web.Request,
                      handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        response: web.StreamResponse = await handler(request)
        path = request.path.split(f"/apps/{request.match_info.get('app_id', '')}", 1)[-1]
        self.calls.append((request.method, path, response.status))
        return response

    @staticmethod
    def _error(status: int, code: str, description: str) -> web.Response:
        return web.json_response({"errorCode": code, "errorDescription": description},
                                 status=status)

    def _refused(self, request: web.Request) -> web.Response | None:
        if request.match_info["app_id"] != self.app_id:
            return self._error(404, "app_not_found", "unknown app id")
        if request.headers.get("Authorization") != f"Bearer {self.secret}":
            return self._error(401, "unauthorized", "the app secret was not accepted")
        return None

    async def _json(self, request: web.Request) -> dict[str, Any] | web.Response:
        try:
            body = json.loads(await request.text() or "{}")
        except ValueError:
            return self._error(400, "decoding_error", "The request could not be decoded.")
        if not isinstance(body, dict):
            return self._error(400, "decoding_error", "The request could not be decoded.")
        return body

    async def _mutation(self, request: web.Request,
                        apply: Callable[[SfuSession, dict[str, Any]],
                                        Any]) -> web.StreamResponse:
        refused = self._refused(request)
        if refused is not None:
            return refused
        session = self.sessions.get(request.match_info["session_id"])
        if session is None:
            return self._error(404, "session_not_found", "no such session")
        if session.busy:
            return self._error(406, "session_busy",
                               "another operation on this session is in progress")
        body = await self._json(request)
        if isinstance(body, web.Response):
            return body
        session.busy = True
        try:
            if self.mutation_delay:
                await asyncio.sleep(self.mutation_delay)
            response: web.StreamResponse = await apply(session, body)
            return response
        finally:
            session.busy = False

    # ---- operations ---------------------------------------------------------------------

    async def _new_session(self, request: web.Request) -> web.StreamResponse:
        refused = self._refused(request)
        if refused is not None:
            return refused
        if await request.read():
            return self._error(400, "unsupported_by_double",
                               "this double creates sessions without an offer only")
        session_id = uuid.uuid4().hex
        self.sessions[session_id] = SfuSession(session_id)
        return web.json_response({"sessionId": session_id}, status=201)

    async def _new_tracks(self, request: web.Request) -> web.StreamResponse:
        return await self._mutation(request, self._pull)

    async def _pull(self, session: SfuSession, body: dict[str, Any]) -> web.Response:
        if session.pending_offer:
            return self._error(406, "renegotiation_pending",
                               "answer the previous offer before another mutation")
        wanted = body.get("tracks")
        if not isinstance(wanted, list) or not wanted:
            return self._error(400, "invalid_request", "tracks is required")
        results: list[dict[str, Any]] = []
        found: list[tuple[dict[str, Any], MediaStreamTrack]] = []
        for item in wanted:
            name = item.get("trackName")
            publisher = self.sessions.get(str(item.get("sessionId")))
            if item.get("location") != "remote":
                results.append({**item, "errorCode": "invalid_track",
                                "errorDescription": "only remote tracks in this double"})
            elif publisher is None or name not in publisher.published:
                results.append({"location": "remote", "sessionId": item.get("sessionId"),
                                "trackName": name, "errorCode": "track_not_found",
                                "errorDescription": "the session has no such track"})
            else:
                found.append((item, publisher.published[name]()))
        if not found:
            return web.json_response({"requiresImmediateRenegotiation": False,
                                      "tracks": results})
        if session.pc is None:
            session.pc = RTCPeerConnection()
        pc = session.pc
        transceivers = [pc.addTransceiver(track, direction="sendonly") for _, track in found]
        await pc.setLocalDescription(await pc.createOffer())
        for (item, _), transceiver in zip(found, transceivers, strict=True):
            mid = str(transceiver.mid)
            session.tracks.append(Track(mid, "remote", item["sessionId"], item["trackName"]))
            results.append({"location": "remote", "sessionId": item["sessionId"],
                            "trackName": item["trackName"], "mid": mid})
        session.pending_offer = True
        return web.json_response({
            "requiresImmediateRenegotiation": True,
            "sessionDescription": {"type": "offer", "sdp": pc.localDescription.sdp},
            "tracks": results,
        })

    async def _renegotiate(self, request: web.Request) -> web.StreamResponse:
        return await self._mutation(request, self._apply_answer)

    async def _apply_answer(self, session: SfuSession, body: dict[str, Any]) -> web.Response:
        description = body.get("sessionDescription") or {}
        if not session.pending_offer or session.pc is None:
            return self._error(400, "no_pending_offer", "there is no offer to answer")
        if description.get("type") != "answer" or not isinstance(description.get("sdp"), str):
            return self._error(400, "invalid_request", "an answer is required")
        try:
            await session.pc.setRemoteDescription(
                RTCSessionDescription(sdp=description["sdp"], type="answer"))
        except Exception as exc:
            return self._error(400, "invalid_sdp", str(exc))
        session.pending_offer = False
        return web.json_response({})

    async def _close_tracks(self, request: web.Request) -> web.StreamResponse:
        return await self._mutation(request, self._close)

    async def _close(self, session: SfuSession, body: dict[str, Any]) -> web.Response:
        wanted = body.get("tracks")
        if not isinstance(wanted, list) or not wanted or not isinstance(body.get("force"), bool):
            return self._error(400, "invalid_request", "tracks and force are required")
        if not body["force"]:
            return self._error(400, "unsupported_by_double", "only forced closes")
        results: list[dict[str, Any]] = []
        for item in wanted:
            mid = str(item.get("mid"))
            track = next((t for t in session.tracks if t.mid == mid and t.active), None)
            if track is None:
                results.append({"mid": mid, "errorCode": "close_track_error",
                                "errorDescription": "Track doesn't exist or was already closed"})
                continue
            track.active = False
            if session.pc is not None:
                for transceiver in session.pc.getTransceivers():
                    if transceiver.mid == mid and transceiver.sender.track is not None:
                        transceiver.sender.track.stop()
            results.append({"mid": mid})
        return web.json_response({"requiresImmediateRenegotiation": False, "tracks": results})

    async def _establish(self, request: web.Request) -> web.StreamResponse:
        return await self._mutation(request, self._open_transport)

    async def _open_transport(self, session: SfuSession, body: dict[str, Any]
                              ) -> web.Response:
        wanted = body.get("dataChannel")
        if (not isinstance(wanted, dict) or wanted.get("location") != "remote"
                or wanted.get("dataChannelName") != "server-events"):
            return self._error(400, "invalid_request", "only the server-events channel")
        if session.pending_offer:
            return self._error(406, "renegotiation_pending",
                               "answer the previous offer before another mutation")
        if session.pc is None:
            session.pc = RTCPeerConnection()
        session.pc.createDataChannel("server-events", negotiated=True, id=0)
        await session.pc.setLocalDescription(await session.pc.createOffer())
        session.pending_offer = session.transport = True
        return web.json_response({
            "requiresImmediateRenegotiation": True,
            "dataChannel": {"dataChannelName": "server-events", "id": 0},
            "sessionDescription": {"type": "offer", "sdp": session.pc.localDescription.sdp},
        })

    async def _new_channels(self, request: web.Request) -> web.StreamResponse:
        return await self._mutation(request, self._subscribe)

    async def _subscribe(self, session: SfuSession, body: dict[str, Any]) -> web.Response:
        wanted = body.get("dataChannels")
        if not isinstance(wanted, list) or not wanted:
            return self._error(400, "invalid_request", "dataChannels is required")
        if not session.transport or session.pc is None or session.pending_offer:
            return self._error(400, "no_transport", "establish the data channel transport")
        results: list[dict[str, Any]] = []
        for item in wanted:
            name, owner = item.get("dataChannelName"), str(item.get("sessionId"))
            publisher = self.sessions.get(owner)
            if (item.get("location") != "remote" or publisher is None
                    or name not in publisher.channels_published):
                results.append({**item, "errorCode": "datachannel_not_found",
                                "errorDescription": "the session has no such data channel"})
                continue
            channel_id = session.next_channel_id
            session.next_channel_id += 1
            channel = session.pc.createDataChannel(str(name), negotiated=True, id=channel_id)
            self.subscriptions.setdefault((owner, str(name)), []).append(channel)
            channel.on("open", self.channel_open.set)
            if channel.readyState == "open":
                self.channel_open.set()
            results.append({"location": "remote", "sessionId": owner,
                            "dataChannelName": name, "id": channel_id})
        return web.json_response({"dataChannels": results})

    async def _get_session(self, request: web.Request) -> web.StreamResponse:
        refused = self._refused(request)
        if refused is not None:
            return refused
        session = self.sessions.get(request.match_info["session_id"])
        if session is None:
            return self._error(404, "session_not_found", "no such session")
        return web.json_response({"tracks": [
            {"location": t.location, "mid": t.mid, "sessionId": t.session_id,
             "trackName": t.track_name, "status": "active" if t.active else "inactive"}
            for t in session.tracks]})


@asynccontextmanager
async def serve_cloudflare(double: CloudflareDouble, port: int = 0) -> AsyncIterator[str]:
    """Yields the API base (like https://rtc.live.cloudflare.com/v1)."""
    runner, url = await start_app(double.app, port=port)
    try:
        yield f"{url}/v1"
    finally:
        await double.close()
        await runner.cleanup()
