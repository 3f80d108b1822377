"""What a pull source is, seen from the reconnecting pull (:mod:`recorder.rtc.pull`).

An :class:`Upstream` knows one signalling protocol (WHEP, Cloudflare Realtime) and nothing
about reconnecting or recordings: ``open`` negotiates one new session and returns it with
its peer; the session's ``close`` ends it upstream (DELETE, tracks/close). Every failure
leaves as :class:`SourceFailed` carrying the upstream's HTTP status and a fixed reason,
which is what the API reports (502) when the first attempt fails: never the upstream's body.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import aiohttp
from aiortc import RTCIceServer

from recorder.core.errors import SourceFailed
from recorder.rtc.receiver import ReceiverPeer

HTTP_TIMEOUT = aiohttp.ClientTimeout(total=15, connect=5)
"""One signalling request; an upstream slower than this is treated as unreachable."""

MAX_BODY_BYTES = 256 * 1024
MAX_RETRY_AFTER_SECONDS = 60.0

PeerFactory = Callable[[list[RTCIceServer]], ReceiverPeer]
"""Makes a fresh receiving peer with these extra ICE servers (learned from the upstream)."""


class UpstreamRefused(SourceFailed):
    """A refusal that says when to try again (409 or 503 with ``Retry-After``)."""

    def __init__(self, detail: str, upstream_status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(detail, upstream_status)
        self.retry_after = retry_after


class UpstreamSession(Protocol):
    @property
    def peer(self) -> ReceiverPeer: ...

    async def close(self) -> None:
        """Close the peer and end the session upstream; never raises."""


class Upstream(Protocol):
    @property
    def label(self) -> str:
        """What to call the upstream in errors and logs ("whep https://...")."""

    @property
    def publisher_id(self) -> str:
        """Whose media this is, for the recording's `tracks`."""

    async def open(self, make_peer: PeerFactory) -> UpstreamSession:
        """Negotiate a new session; raises SourceFailed (or UpstreamRefused)."""


async def read_body(response: aiohttp.ClientResponse) -> str:
    """The response body, bounded: an upstream cannot make us buffer without limit."""
    data = await response.content.read(MAX_BODY_BYTES + 1)
    if len(data) > MAX_BODY_BYTES:
        raise SourceFailed(f"answer larger than {MAX_BODY_BYTES} bytes", response.status)
    return data.decode("utf-8", "replace")


def retry_after(response: aiohttp.ClientResponse) -> float | None:
    """Retry-After in seconds (the date form is ignored), capped."""
    value = response.headers.get("Retry-After", "").strip()
    if not value.isdigit():
        return None
    return min(float(value), MAX_RETRY_AFTER_SECONDS)

