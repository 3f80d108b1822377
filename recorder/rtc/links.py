"""ICE servers from the `Link` headers of a WHIP or WHEP response (RFC 9725 section 4.6).

A server announces each STUN or TURN server as a link with ``rel="ice-server"`` and, for
TURN, ``username``, ``credential`` and ``credential-type="password"`` parameters. One header
may carry several links separated by commas (RFC 8288 section 3), and a comma may also sit
inside a quoted credential or a URI, so the header is split with a small tokenizer rather
than ``str.split``. Links of any other relation are ignored, as the drafts require.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiortc import RTCIceServer

from recorder.core.urls import UrlRefused, parse_ice_uri
from recorder.outbound import Outbound

ICE_SERVER_REL = "ice-server"


def ice_servers_from_links(values: Iterable[str]) -> list[RTCIceServer]:
    """Every ``rel="ice-server"`` link in the given header values, in order."""
    servers: list[RTCIceServer] = []
    for value in values:
        for link in _split_links(value):
            parsed = _parse_link(link)
            if parsed is None:
                continue
            url, params = parsed
            if ICE_SERVER_REL not in params.get("rel", "").split():
                continue
            if not url.startswith(("stun:", "stuns:", "turn:", "turns:")):
                continue
            servers.append(RTCIceServer(urls=url, username=params.get("username"),
                                        credential=params.get("credential")))
    return servers


def _split_links(value: str) -> list[str]:
    links: list[str] = []
    current: list[str] = []
    in_uri = in_quote = escaped = False
    for char in value:
        if escaped:
            escaped = False
        elif in_quote and char == "\\":
            escaped = True
        elif char == '"' and not in_uri:
            in_quote = not in_quote
        elif char == "<" and not in_quote:
            in_uri = True
        elif char == ">" and not in_quote:
            in_uri = False
        elif char == "," and not in_uri and not in_quote:
            links.append("".join(current))
            current = []
            continue
        current.append(char)
    links.append("".join(current))
    return [link.strip() for link in links if link.strip()]


def _parse_link(link: str) -> tuple[str, dict[str, str]] | None:
    if not link.startswith("<") or ">" not in link:
        return None
    end = link.index(">")
    url = link[1:end].strip()
    params: dict[str, str] = {}
    for part in _split_params(link[end + 1:]):
        name, _, raw = part.partition("=")
        name = name.strip().lower()
        if not name or name in params:  # RFC 8288: the first occurrence wins
            continue
        params[name] = _unquote(raw.strip())
    return url, params


def _split_params(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    in_quote = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif in_quote and char == "\\":
            escaped = True
        elif char == '"':
            in_quote = not in_quote
        elif char == ";" and not in_quote:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        out: list[str] = []
        escaped = False
        for char in value[1:-1]:
            if escaped or char != "\\":
                out.append(char)
                escaped = False
            else:
                escaped = True
        return "".join(out)
    return value


async def allowed_ice_servers(servers: list[RTCIceServer],
                              outbound: Outbound) -> list[RTCIceServer]:
    """The servers an upstream announced whose hosts pass `outbound`'s address check, each
    name replaced by the address that was checked (aioice would resolve it again).

    Dropped: internal addresses no entry names (with their port), names that do not
    resolve, IPv6 (aiortc cannot parse it in a URI), and ``turns:``/``stuns:`` names,
    whose TLS needs the name and so cannot be pinned to an address.
    """
    kept: list[RTCIceServer] = []
    for server in servers:
        uris = [server.urls] if isinstance(server.urls, str) else list(server.urls)
        pinned = [uri for uri in [await _pinned(u, outbound) for u in uris] if uri]
        if pinned:
            kept.append(RTCIceServer(urls=pinned[0] if len(pinned) == 1 else pinned,
                                     username=server.username, credential=server.credential,
                                     credentialType=server.credentialType))
    return kept


async def _pinned(uri: str, outbound: Outbound) -> str | None:
    try:
        target = parse_ice_uri(uri)
        if target.address is not None:
            candidates = [target.address]
        elif target.scheme in ("stuns", "turns"):
            return None
        else:
            candidates = await outbound.addresses(target.host, target.port)
    except (UrlRefused, OSError):
        return None
    for address in candidates:
        if address.version == 4 and outbound.allowed.address_allowed(address, target.port):
            return target.with_address(address)
    return None
