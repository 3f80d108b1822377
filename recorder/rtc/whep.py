"""WHEP client (draft-ietf-wish-whep): the node as a viewer of a WHEP server.

One session is: POST our recvonly audio + video offer (``application/sdp``, Bearer token),
get ``201 Created`` with the SDP answer and a ``Location`` (the session URL, resolved
against the URL we posted to), DELETE that URL at the end.

Every URL is the user's or the upstream's, so each one passes the allow-list
(:class:`recorder.outbound.Outbound`) before it is requested, redirects are never followed
(a 3xx fails the source), and nothing the upstream sends reaches an error, a state or a log
beyond its status code and a fixed reason (docs/security.md, "Outbound requests").

The server may instead send its own offer, which we answer with a PATCH of
``application/sdp`` to the session URL: the current draft does it with ``406 Not
Acceptable`` and a counter-offer, earlier drafts with ``201`` carrying an offer. Both are
recognised (an offer says ``a=setup:actpass``; an answer never does) and answered from a
fresh peer, since aiortc cannot roll back the offer it already made.

ICE servers come from ``Link: <...>; rel="ice-server"`` headers, kept only when their
hosts pass the same address check (:func:`recorder.rtc.links.allowed_ice_servers`). aiortc
gathers candidates when it makes its description and has no trickle, so servers announced
with the answer cannot serve the offer that was already sent: they are used for a
counter-offer's answer and for every later session (reconnects), on top of
RECORDER_ICE_SERVERS.

``409 Conflict`` (nothing published yet) and ``503`` come back as :class:`UpstreamRefused`
with the server's ``Retry-After`` so a reconnecting pull waits as long as asked.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from aiortc import RTCIceServer
from yarl import URL

from recorder.core.errors import SourceFailed
from recorder.core.urls import UrlRefused
from recorder.outbound import Outbound, failure_reason
from recorder.rtc.links import allowed_ice_servers, ice_servers_from_links
from recorder.rtc.receiver import ReceiverPeer, UnusableSdp, is_offer
from recorder.rtc.upstream import (
    HTTP_TIMEOUT,
    PeerFactory,
    UpstreamRefused,
    read_body,
    retry_after,
)

logger = logging.getLogger(__name__)

SDP = "application/sdp"
DELETE_TIMEOUT = aiohttp.ClientTimeout(total=5)


@dataclass(frozen=True)
class _Reply:
    """What a WHEP server answered to the offer."""

    status: int
    body: str
    location: str | None
    links: list[str]
    content_type: str
    retry_after: float | None


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
    def __init__(self, url: str, token: str | None, outbound: Outbound,
                 recording_id: str = "") -> None:
        self.url = url
        self._token = token
        self._outbound = outbound
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
        url, reply = await self._post_offer(await peer.offer())
        learned = await self._learn(reply.links)
        if learned:
            self.learned_ice_servers = learned
        status = reply.status
        if status not in (201, 406) or (status == 406 and reply.content_type != SDP):
            message = f"{self.label} answered {status}"
            if 300 <= status < 400:
                raise SourceFailed(f"{message}: redirects are not followed", status)
            if status in (409, 503):
                raise UpstreamRefused(message, status, reply.retry_after)
            raise SourceFailed(message, status)
        resource = self._session_url(url, reply.location, status)
        if status == 201 and not is_offer(reply.body):
            try:
                await peer.accept(reply.body)
            except UnusableSdp as exc:
                await self.delete(resource)
                raise SourceFailed(f"{self.label} answered unusable SDP", status) from exc
            logger.info("%s: session opened (answer)", self._log)
            return WhepSession(self, peer, resource)
        await peer.close()  # the server offers: answer from a new peer, by PATCH
        return await self._answer_offer(make_peer(self.learned_ice_servers), reply, resource)

    async def _post_offer(self, offer: str) -> tuple[URL, _Reply]:
        """POST the offer to the checked URL: that URL and what came back."""
        try:
            target = self._outbound.check(self.url)
            async with self._outbound.session.post(
                target.url, data=offer.encode(), timeout=HTTP_TIMEOUT, allow_redirects=False,
                headers={**self._headers(SDP), "Accept": SDP},
            ) as response:
                return target.url, _Reply(
                    response.status, await read_body(response),
                    response.headers.get("Location"), response.headers.getall("Link", []),
                    response.content_type, retry_after(response))
        except (aiohttp.ClientError, TimeoutError, OSError, UrlRefused) as exc:
            raise SourceFailed(f"{self.label}: {failure_reason(exc)}") from exc

    async def _answer_offer(self, counter: ReceiverPeer, reply: _Reply,
                            resource: str) -> WhepSession:
        try:
            answer = await counter.answer(reply.body)
        except UnusableSdp as exc:
            await counter.close()
            await self.delete(resource)
            raise SourceFailed(f"{self.label} offered unusable SDP", reply.status) from exc
        except BaseException:
            await counter.close()
            raise
        try:
            await self._patch_answer(resource, answer)
        except BaseException:
            await counter.close()
            raise
        logger.info("%s: session opened (server offer, %d)", self._log, reply.status)
        return WhepSession(self, counter, resource)

    async def _learn(self, links: list[str]) -> list[RTCIceServer]:
        """The announced ICE servers whose hosts are allowed; the rest are dropped."""
        announced = ice_servers_from_links(links)
        allowed = await allowed_ice_servers(announced, self._outbound)
        if len(allowed) < len(announced):
            logger.warning("%s: %d announced ICE server(s) dropped: address not allowed",
                           self._log, len(announced) - len(allowed))
        return allowed

    def _session_url(self, posted: URL, location: str | None, status: int) -> str:
        """The Location resolved against the URL posted to; it must pass the allow-list
        too, or the session is never used (nor deleted: we do not call it)."""
        if not location:
            raise SourceFailed(f"{self.label} answered {status} without a Location", status)
        try:
            resource = str(posted.join(URL(location)))
            self._outbound.check(resource)
        except (ValueError, UrlRefused) as exc:
            raise SourceFailed(f"{self.label} answered {status} with a session URL that is "
                               "not allowed", status) from exc
        return resource

    async def _patch_answer(self, resource: str, answer: str) -> None:
        try:
            async with self._outbound.session.patch(
                    self._outbound.check(resource).url, data=answer.encode(),
                    timeout=HTTP_TIMEOUT, allow_redirects=False,
                    headers=self._headers(SDP)) as response:
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError, UrlRefused) as exc:
            await self.delete(resource)
            raise SourceFailed(f"{self.label}: answer not delivered: "
                               f"{failure_reason(exc)}") from exc
        if not 200 <= status < 300:
            await self.delete(resource)
            raise SourceFailed(f"{self.label} refused our answer with {status}", status)

    async def delete(self, resource: str) -> None:
        """End the session upstream; a failure is logged, never raised (it is over for us)."""
        try:
            async with self._outbound.session.delete(
                    self._outbound.check(resource).url, headers=self._headers(),
                    timeout=DELETE_TIMEOUT, allow_redirects=False) as response:
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError, UrlRefused) as exc:
            logger.warning("%s: session DELETE failed: %s", self._log, failure_reason(exc))
            return
        except asyncio.CancelledError:
            raise
        if status >= 400 and status != 404:
            logger.warning("%s: session DELETE answered %d", self._log, status)
        else:
            logger.info("%s: session deleted (%d)", self._log, status)

