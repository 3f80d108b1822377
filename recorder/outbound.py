"""The HTTP client for URLs that users supply (pull sources, per-start webhooks).

One :class:`Outbound` holds an allow-list (:mod:`recorder.core.urls`), a resolver that
checks every address it returns, and the aiohttp session built on that resolver: a name is
resolved once, every address is checked, and aiohttp connects only to the addresses that
were checked (aiohttp skips resolvers for IP literals, which :meth:`Outbound.check` covers).
Callers check each URL before requesting it and never follow redirects. Operator URLs
(RECORDER_WEBHOOK_URL, the Cloudflare API bases) are trusted and use plain sessions.
See docs/security.md, "Outbound requests".
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from recorder.core.urls import AllowList, IPAddress, Target, UrlRefused

REFUSED = "address not allowed"


class AddressRefused(OSError):
    """A name resolved to an address the allow-list does not open; a fixed message."""

    def __init__(self) -> None:
        super().__init__(REFUSED)


class CheckedResolver(AbstractResolver):
    """Resolves with `inner` and refuses the name if any address is internal and not named
    by an entry (a mixed answer is how DNS rebinding starts)."""

    def __init__(self, allowed: AllowList, inner: AbstractResolver | None = None) -> None:
        self._allowed = allowed
        self._inner = inner if inner is not None else DefaultResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            address = _address(result["host"])
            if address is None or not self._allowed.address_allowed(address, port or None):
                raise AddressRefused()
        if not results:
            raise AddressRefused()
        return results

    async def close(self) -> None:
        await self._inner.close()


class Outbound:
    """Checks URLs against one allow-list and requests them through checked addresses."""

    def __init__(self, allowed: AllowList, resolver: AbstractResolver | None = None,
                 **session_options: Any) -> None:
        self.allowed = allowed
        self._resolver = CheckedResolver(allowed, resolver)
        self._options = session_options
        self._session: aiohttp.ClientSession | None = None

    def check(self, url: str) -> Target:
        """The parsed URL, or UrlRefused (it is then never requested)."""
        return self.allowed.check(url)

    @property
    def session(self) -> aiohttp.ClientSession:
        """Made on first use, inside the running loop. Request only checked URLs with it,
        with ``allow_redirects=False``."""
        if self._session is None:
            connector = aiohttp.TCPConnector(resolver=self._resolver)
            self._session = aiohttp.ClientSession(connector=connector, trust_env=False,
                                                  **self._options)
        return self._session

    async def addresses(self, host: str, port: int) -> list[IPAddress]:
        """The checked addresses of a name (for ICE servers, which aioice would resolve
        again): AddressRefused when any is not allowed."""
        results = await self._resolver.resolve(host, port, socket.AF_UNSPEC)
        return [a for a in (_address(r["host"]) for r in results) if a is not None]

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        await self._resolver.close()


def failure_reason(exc: BaseException) -> str:
    """A fixed reason for a failed request: never the exception's text, which may carry
    what the other side sent."""
    if isinstance(exc, UrlRefused):
        return f"URL {exc}"
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, AddressRefused) or (
                isinstance(cause, aiohttp.ClientConnectorError)
                and isinstance(cause.os_error, AddressRefused)):
            return REFUSED
        cause = cause.__cause__
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"unreachable ({type(exc).__name__})"


def _address(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None
