"""Cloudflare Realtime SFU client: pull a publisher's named tracks into our own session.

The calls (Connection API, ``{base}/apps/{appId}/...``, ``Authorization: Bearer <app
secret>``, JSON bodies):

1. ``POST sessions/new`` without a body: a session of ours, no connection yet.
2. ``POST sessions/{ours}/tracks/new`` with ``{"tracks": [{"location": "remote",
   "sessionId": <publisher's>, "trackName": ...}]}``: the SFU answers 200 with
   ``requiresImmediateRenegotiation: true`` and its SDP offer (the SFU offers, we answer).
3. Apply the offer, answer it, ``PUT sessions/{ours}/renegotiate`` with our answer.
4. With ``data_channels`` (recorded as events): ``POST sessions/{ours}/datachannels/establish``
   with ``{"dataChannel": {"location": "remote", "dataChannelName": "server-events"}}`` for
   the data-channel transport (the SFU offers again, now with an SCTP section; answered as in
   3), then ``POST sessions/{ours}/datachannels/new`` with ``{"dataChannels": [{"location":
   "remote", "sessionId": <publisher's>, "dataChannelName": ...}]}``: each comes back with
   the ``id`` of the SCTP stream, opened on our side as a negotiated channel.
5. At the end ``PUT sessions/{ours}/tracks/close`` with our transceivers' mids and
   ``force: true`` (no SDP exchange: the connection is closing anyway).

A 200 is not success on its own: the body may carry a top-level ``errorCode`` and each
track its own ``errorCode``/``errorDescription`` (a track name the publisher does not
have, for instance); any of them fails the pull. The SFU refuses overlapping mutations of
one session with 406, so mutations on a session are serialized here (one lock per session)
and a 406 that still happens (someone else touched the session) is retried briefly.

Errors carry the status code and a fixed reason, never what the SFU sent (its error codes
and descriptions stay out of states and logs: docs/security.md, "Outbound requests").

Written from Cloudflare's published OpenAPI schema and documentation; the tests run it
against a double built from them, not against the real service.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp

from recorder.core.errors import SourceFailed
from recorder.outbound import failure_reason
from recorder.rtc.receiver import ReceiverPeer, UnusableSdp
from recorder.rtc.upstream import (
    HTTP_TIMEOUT,
    PeerFactory,
    UpstreamRefused,
    read_body,
    retry_after,
)

logger = logging.getLogger(__name__)

SERVER_EVENTS = "server-events"  # the channel that establishes a session's SCTP transport
OVERLAP_RETRIES = 4
OVERLAP_BACKOFF_SECONDS = 0.2


class CloudflareApi:
    """The few Connection API calls a pull needs, mutations serialized per session."""

    def __init__(self, http: aiohttp.ClientSession, api_base: str, app_id: str,
                 app_secret: str, recording_id: str = "") -> None:
        self.log = f"recording {recording_id}: cloudflare app {app_id}"
        self._http = http
        self._app = f"{api_base.rstrip('/')}/apps/{app_id}"
        self._secret = app_secret
        self._locks: dict[str, asyncio.Lock] = {}

    async def new_session(self) -> str:
        body = await self._call("POST", "/sessions/new", None, expect=(200, 201))
        session_id = body.get("sessionId")
        if not isinstance(session_id, str) or not session_id:
            raise SourceFailed("cloudflare: sessions/new returned no sessionId", 201)
        return session_id

    async def pull_tracks(self, session_id: str, publisher_session: str,
                          track_names: tuple[str, ...]) -> dict[str, Any]:
        tracks = [{"location": "remote", "sessionId": publisher_session, "trackName": name}
                  for name in track_names]
        body = await self._mutate(session_id, "POST", "/tracks/new", {"tracks": tracks})
        failed = [t for t in body.get("tracks") or []
                  if isinstance(t, dict) and t.get("errorCode")]
        if failed:
            # named from our own request, never from the SFU's words
            names = [n for n in track_names if any(t.get("trackName") == n for t in failed)]
            raise SourceFailed(f"cloudflare: track(s) refused: {', '.join(names) or '?'}",
                               200)
        return body

    async def establish_channels(self, session_id: str) -> dict[str, Any]:
        """The data-channel transport: the SFU's offer with an SCTP section."""
        return await self._mutate(session_id, "POST", "/datachannels/establish", {
            "dataChannel": {"location": "remote", "dataChannelName": SERVER_EVENTS}})

    async def pull_channels(self, session_id: str, publisher_session: str,
                            names: tuple[str, ...]) -> dict[str, int]:
        """Subscribe to the publisher's data channels: name -> SCTP stream id."""
        wanted = [{"location": "remote", "sessionId": publisher_session,
                   "dataChannelName": name} for name in names]
        body = await self._mutate(session_id, "POST", "/datachannels/new",
                                  {"dataChannels": wanted})
        ids: dict[str, int] = {}
        for item in body.get("dataChannels") or []:
            if not isinstance(item, dict) or item.get("errorCode"):
                continue
            name, channel_id = item.get("dataChannelName"), item.get("id")
            if name in names and isinstance(channel_id, int) and 0 <= channel_id < 65535:
                ids[str(name)] = channel_id
        refused = [n for n in names if n not in ids]  # named from our request, not the SFU
        if refused:
            raise SourceFailed(f"cloudflare: data channel(s) refused: {', '.join(refused)}",
                               200)
        return ids

    async def renegotiate(self, session_id: str, answer_sdp: str) -> None:
        await self._mutate(session_id, "PUT", "/renegotiate",
                           {"sessionDescription": {"type": "answer", "sdp": answer_sdp}})

    async def close_tracks(self, session_id: str, mids: list[str]) -> dict[str, Any]:
        return await self._mutate(session_id, "PUT", "/tracks/close",
                                  {"tracks": [{"mid": mid} for mid in mids], "force": True})

    async def _mutate(self, session_id: str, method: str, path: str,
                      payload: dict[str, Any]) -> dict[str, Any]:
        lock = self._locks.setdefault(session_id, asyncio.Lock())
        async with lock:
            for attempt in range(OVERLAP_RETRIES + 1):
                try:
                    return await self._call(method, f"/sessions/{session_id}{path}", payload)
                except UpstreamRefused as exc:
                    if exc.upstream_status != 406 or attempt == OVERLAP_RETRIES:
                        raise
                    logger.info("%s: session %s: %s %s overlapped (406), retrying",
                                self.log, session_id, method, path)
                    await asyncio.sleep(OVERLAP_BACKOFF_SECONDS * 2 ** attempt)
        raise AssertionError("unreachable")

    async def _call(self, method: str, path: str, payload: dict[str, Any] | None,
                    expect: tuple[int, ...] = (200,)) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self._secret}"}
        what = f"cloudflare {method} {path.lstrip('/')}"
        try:
            async with self._http.request(method, self._app + path, json=payload,
                                          headers=headers, timeout=HTTP_TIMEOUT) as response:
                status = response.status
                text = await read_body(response)
                wait = retry_after(response)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise SourceFailed(f"{what}: {failure_reason(exc)}") from exc
        body = _json(text)
        if status not in expect:
            message = f"{what} answered {status}"
            if status in (406, 409, 429, 503):
                raise UpstreamRefused(message, status, wait)
            raise SourceFailed(message, status)
        if body is None:
            raise SourceFailed(f"{what} answered {status} without a JSON body", status)
        if body.get("errorCode"):
            raise SourceFailed(f"{what} answered {status} with an error", status)
        return body


class CloudflareSession:
    def __init__(self, api: CloudflareApi, session_id: str, peer: ReceiverPeer,
                 mids: list[str]) -> None:
        self._api = api
        self.session_id = session_id
        self._peer = peer
        self.mids = mids

    @property
    def peer(self) -> ReceiverPeer:
        return self._peer

    async def close(self) -> None:
        await self._peer.close()
        if not self.mids:
            return
        try:
            body = await self._api.close_tracks(self.session_id, self.mids)
        except SourceFailed as exc:
            logger.warning("%s: session %s: tracks not closed: %s", self._api.log,
                           self.session_id, exc.detail)
            return
        refused = [t for t in body.get("tracks") or []
                   if isinstance(t, dict) and t.get("errorCode")
                   and t.get("errorCode") != "close_track_error"]  # already closed is fine
        if refused:
            logger.warning("%s: session %s: %d track(s) not closed", self._api.log,
                           self.session_id, len(refused))
        else:
            logger.info("%s: session %s: tracks %s closed", self._api.log, self.session_id,
                        self.mids)


class CloudflareUpstream:
    def __init__(self, api: CloudflareApi, app_id: str, publisher_session: str,
                 track_names: tuple[str, ...], data_channels: tuple[str, ...] = ()) -> None:
        self._api = api
        self._app_id = app_id
        self._publisher_session = publisher_session
        self._track_names = track_names
        self._data_channels = data_channels

    @property
    def label(self) -> str:
        return f"cloudflare app {self._app_id} session {self._publisher_session}"

    @property
    def publisher_id(self) -> str:
        return self._publisher_session

    async def open(self, make_peer: PeerFactory) -> CloudflareSession:
        session_id = await self._api.new_session()
        body = await self._api.pull_tracks(session_id, self._publisher_session,
                                           self._track_names)
        description = body.get("sessionDescription") or {}
        offer = description.get("sdp") if isinstance(description, dict) else None
        if not body.get("requiresImmediateRenegotiation") or not isinstance(offer, str) or (
                description.get("type") != "offer"):
            raise SourceFailed(f"{self.label}: tracks/new returned no offer to answer", 200)
        mids = [str(t["mid"]) for t in body.get("tracks") or []
                if isinstance(t, dict) and t.get("mid") is not None]
        peer = make_peer([])
        try:
            answer = await peer.answer(offer)
            await self._api.renegotiate(session_id, answer)
            if self._data_channels:
                await self._open_channels(session_id, peer)
        except UnusableSdp as exc:
            await peer.close()
            await self._close_quietly(session_id, mids)
            raise SourceFailed(f"{self.label}: the SFU offered unusable SDP", 200) from exc
        except BaseException:
            await peer.close()
            await self._close_quietly(session_id, mids)
            raise
        logger.info("%s: pulling %s as session %s (mids %s)", self._api.log,
                    ", ".join(self._track_names), session_id, mids)
        return CloudflareSession(self._api, session_id, peer, mids)

    async def _open_channels(self, session_id: str, peer: ReceiverPeer) -> None:
        body = await self._api.establish_channels(session_id)
        description = body.get("sessionDescription") or {}
        offer = description.get("sdp") if isinstance(description, dict) else None
        if body.get("requiresImmediateRenegotiation"):
            if not isinstance(offer, str) or description.get("type") != "offer":
                raise SourceFailed(f"{self.label}: datachannels/establish returned no offer",
                                   200)
            await self._api.renegotiate(session_id, await peer.answer(offer))
        ids = await self._api.pull_channels(session_id, self._publisher_session,
                                            self._data_channels)
        for name, channel_id in ids.items():
            peer.subscribe(name, channel_id)
        logger.info("%s: data channels %s of session %s subscribed", self._api.log,
                    ", ".join(ids), self._publisher_session)

    async def _close_quietly(self, session_id: str, mids: list[str]) -> None:
        if mids:
            try:
                await self._api.close_tracks(session_id, mids)
            except SourceFailed as exc:
                logger.warning("%s: tracks of session %s not closed: %s", self._api.log,
                               session_id, exc.detail)


def _json(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text) if text.strip() else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
