"""WHEP client (draft-ietf-wish-whep): the node as a viewer of a WHEP server.

One session is: POST our recvonly audio + video offer (``application/sdp``, Bearer token),
get ``201 Created`` with the SDP answer and a ``Location`` (the session URL, resolved
against the URL that answered, so redirects are followed), DELETE that URL at the end.

The server may instead send its own offer, which we answer with a PATCH of
``application/sdp`` to the session URL: the current draft does it with ``406 Not
Acceptable`` and a counter-offer, earlier drafts with ``201`` carrying an offer. Both are
recognised (an offer says ``a=setup:actpass``; an answer never does) and answered from a
fresh peer, since aiortc cannot roll back the offer it already made.

ICE servers come from ``Link: <...>; rel="ice-server"`` headers. aiortc gathers candidates
when it makes its description and has no trickle, so servers announced with the answer
cannot serve the offer that was already sent: they are used for a counter-offer's answer
and for every later session (reconnects), on top of RECORDER_ICE_SERVERS.

``409 Conflict`` (nothing published yet) and ``503`` come back as :class:`UpstreamRefused`
with the server's ``Retry-After`` so a reconnecting pull waits as long as asked.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiortc import RTCIceServer

from recorder.core.errors import SourceFailed
from recorder.rtc.links import ice_servers_from_links
from recorder.rtc.receiver import ReceiverPeer, UnusableSdp, is_offer
from recorder.rtc.upstream import (
    HTTP_TIMEOUT,
    PeerFactory,
    UpstreamRefused,
    excerpt,
    read_body,
    retry_after,
)

logger = logging.getLogger(__name__)

SDP = "application/sdp"
DELETE_TIMEOUT = aiohttp.ClientTimeout(total=5)


class WhepSession:
    def __init__(self, upstream: WhepUpstream, peer: ReceiverPeer, resource: str) -> None:
        self._upstream = upstream
        self._peer = peer
        self.resource = resource  # the session URL to PATCH and DELETE

    @property
    def peer(self) -> ReceiverPeer:
        return self._peer

    async def close(self) -> None:
        await self._peer.close()
        await self._upstream.delete(self.resource)


class WhepUpstream:
    def __init__(self, url: str, token: str | None, http: aiohttp.ClientSession,
                 recording_id: str = "") -> None:
        self.url = url
        self._token = token
        self._http = http
        self._rid = recording_id
        self.learned_ice_servers: list[RTCIceServer] = []

    @property
    def label(self) -> str:
        parts = urlsplit(self.url)
        return f"whep {parts.scheme}://{parts.netloc}{parts.path}"  # no query: it may be a key

    @property
    def publisher_id(self) -> str:
        return "whep"

    @property
    def _log(self) -> str:
        return f"recording {self._rid}: {self.label}"

    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        if content_type is not None:
            headers["Content-Type"] = content_type
        return headers

    async def open(self, make_peer: PeerFactory) -> WhepSession:
        peer = make_peer(self.learned_ice_servers)
        try:
            return await self._negotiate(peer, make_peer)
        except BaseException:
            await peer.close()
            raise

    async def _negotiate(self, peer: ReceiverPeer, make_peer: PeerFactory) -> WhepSession:
        offer = await peer.offer()
        try:
            async with self._http.post(
                self.url, data=offer.encode(), timeout=HTTP_TIMEOUT,
                headers={**self._headers(SDP), "Accept": SDP},
            ) as response:
                status = response.status
                body = await read_body(response)
                location = response.headers.get("Location")
                base = str(response.url)
                links = response.headers.getall("Link", [])
                content_type = response.content_type
                wait = retry_after(response)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise SourceFailed(f"{self.label} unreachable: {_describe(exc)}") from exc
        learned = ice_servers_from_links(links)
        if learned:
            self.learned_ice_servers = learned
        if status not in (201, 406) or (status == 406 and content_type != SDP):
            message = f"{self.label} answered {status}"
            if body.strip():
                message += f": {excerpt(body)}"
            if status in (409, 503):
                raise UpstreamRefused(message, status, wait)
            raise SourceFailed(message, status)
        if not location:
            raise SourceFailed(f"{self.label} answered {status} without a Location", status)
        resource = urljoin(base, location)
        if status == 201 and not is_offer(body):
            try:
                await peer.accept(body)
            except UnusableSdp as exc:
                await self.delete(resource)
                raise SourceFailed(f"{self.label} answered unusable SDP: {exc}",
                                   status) from exc
            logger.info("%s: session %s (answer)", self._log, resource)
            return WhepSession(self, peer, resource)
        # The server offers: answer from a new peer, by PATCH.
        await peer.close()
        counter = make_peer(self.learned_ice_servers)
        try:
            answer = await counter.answer(body)
        except UnusableSdp as exc:
            await counter.close()
            await self.delete(resource)
            raise SourceFailed(f"{self.label} offered unusable SDP: {exc}", status) from exc
        except BaseException:
            await counter.close()
            raise
        try:
            await self._patch_answer(resource, answer)
        except BaseException:
            await counter.close()
            raise
        logger.info("%s: session %s (server offer, %d)", self._log, resource, status)
        return WhepSession(self, counter, resource)

    async def _patch_answer(self, resource: str, answer: str) -> None:
        try:
            async with self._http.patch(resource, data=answer.encode(), timeout=HTTP_TIMEOUT,
                                        headers=self._headers(SDP)) as response:
                status = response.status
                body = await read_body(response)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            await self.delete(resource)
            raise SourceFailed(f"{self.label}: answer not delivered: {_describe(exc)}") from exc
        if not 200 <= status < 300:
            await self.delete(resource)
            raise SourceFailed(
                f"{self.label} refused our answer with {status}: {excerpt(body)}", status)

    async def delete(self, resource: str) -> None:
        """End the session upstream; a failure is logged, never raised (it is over for us)."""
        try:
            async with self._http.delete(resource, headers=self._headers(),
                                         timeout=DELETE_TIMEOUT) as response:
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            logger.warning("%s: DELETE %s failed: %s", self._log, resource, _describe(exc))
            return
        except asyncio.CancelledError:
            raise
        if status >= 400 and status != 404:
            logger.warning("%s: DELETE %s answered %d", self._log, resource, status)
        else:
            logger.info("%s: session %s deleted (%d)", self._log, resource, status)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text
