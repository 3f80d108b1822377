"""Outbound URLs that users supply, and the operator's allow-lists they must match.

A user can make this node call a URL (a ``whep`` pull source, a start's ``webhook_url``) and
an upstream can point it at more (a WHEP session URL, ICE servers in ``Link`` headers). Each
such URL is parsed here once, with the parser aiohttp itself uses (yarl), and matched field
by field against the allow-list entries: scheme, host, port, and path prefix on whole
segments. Nothing is compared as a string, so ``http://127.0.0.1:8443@10.0.0.5/`` or
``http://127.0.0.1:8443.evil.example/`` cannot pass for ``http://127.0.0.1:8443``.

Addresses are classified here too: loopback, private, link-local, unique-local, shared,
multicast, reserved and cloud metadata addresses are *internal*, reached only through an
entry that names the address itself (an IP literal). A DNS name never opens one, whatever it
resolves to. Pure: no I/O; the resolving half is :mod:`recorder.outbound`. The operator's
view is docs/security.md, "Outbound requests".
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote

from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_PORTS = {"http": 80, "https": 443}
ICE_DEFAULT_PORTS = {"stun": 3478, "turn": 3478, "stuns": 5349, "turns": 5349}
MAX_URL_LENGTH = 2048

METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254",  # AWS, GCP, Azure, OpenStack...
    "169.254.170.2",  # AWS ECS task credentials
    "fd00:ec2::254",  # AWS over IPv6
    "100.100.100.200",  # Alibaba Cloud
    "192.0.0.192",  # Oracle Cloud
))
NAT64 = ipaddress.ip_network("64:ff9b::/96")

_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")  # what inet_aton would read as a number
_UNSAFE = re.compile(r"[\x00-\x20\x7f\\]")


class UrlRefused(ValueError):
    """Why a URL is not used: a fixed sentence about the URL, safe to show its sender."""


@dataclass(frozen=True)
class Target:
    """A parsed outbound URL: what is requested, and the parts it is matched on."""

    url: URL
    scheme: str
    host: str  # a lower-case ASCII name, or the address's canonical text
    address: IPAddress | None  # when the host is an IP literal
    port: int
    segments: tuple[str, ...]  # the path, percent-decoded, split on "/"


def normalize(address: IPAddress) -> IPAddress:
    """``::ffff:127.0.0.1`` is 127.0.0.1: the same socket address, compared as one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_internal(address: IPAddress) -> bool:
    """Anything but a public unicast address, including public-looking IPv6 forms that
    carry an internal IPv4 address (6to4, NAT64) and Teredo."""
    address = normalize(address)
    if isinstance(address, ipaddress.IPv6Address):
        if address.teredo is not None:
            return True
        embedded = address.sixtofour
        if embedded is None and address in NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and is_internal(embedded):
            return True
    return (address in METADATA_ADDRESSES or not address.is_global or address.is_multicast
            or address.is_unspecified or address.is_reserved)


def parse_host(raw: str) -> tuple[str, IPAddress | None]:
    """The canonical host and, for an IP literal, its address; UrlRefused otherwise.

    Numeric forms that only the C resolver reads as addresses (``0``, ``127.1``,
    ``0x7f000001``, ``2130706433``) are refused: they are neither a name nor an address.
    """
    host = raw.strip("[]").lower()
    if "%" in host:
        raise UrlRefused("has a zone index in its host")
    try:
        address = normalize(ipaddress.ip_address(host))
    except ValueError:
        address = None
    if address is not None:
        return str(address), address
    name = host[:-1] if host.endswith(".") else host
    labels = name.split(".")
    if (not name or len(name) > 253 or not all(_LABEL.match(label) for label in labels)
            or _NUMERIC_LABEL.match(labels[-1])):
        raise UrlRefused("has no valid host")
    return name, None


def _segments(raw_path: str) -> tuple[str, ...]:
    parts = [unquote(part) for part in raw_path.split("/") if part]
    if any(part in (".", "..") or "/" in part or "\\" in part for part in parts):
        raise UrlRefused("has an encoded slash or dot segment in its path")
    return tuple(parts)


def parse_url(text: str) -> Target:
    """An ``http``/``https`` URL without userinfo, with a valid host and port."""
    if len(text) > MAX_URL_LENGTH or _UNSAFE.search(text):
        raise UrlRefused("is not a valid URL")
    scheme, sep, rest = text.partition("://")
    if not sep or scheme.lower() not in DEFAULT_PORTS:
        raise UrlRefused("must be an http:// or https:// URL")
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if "@" in authority:
        raise UrlRefused("must not carry userinfo (user:password@)")
    try:
        url = URL(text)
        port = url.port
        raw_host = url.raw_host
    except ValueError as exc:
        raise UrlRefused("is not a valid URL") from exc
    if not url.is_absolute() or not raw_host:
        raise UrlRefused("has no valid host")
    if port is None or not 0 < port < 65536:
        raise UrlRefused("has no valid port")
    host, address = parse_host(raw_host)
    return Target(url, url.scheme, host, address, port, _segments(url.raw_path))


@dataclass(frozen=True)
class AllowEntry:
    """One ``scheme://host[:port][/path-prefix]`` entry; no port means the scheme's."""

    text: str
    scheme: str
    host: str
    address: IPAddress | None
    port: int
    segments: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> AllowEntry:
        try:
            target = parse_url(text)
        except UrlRefused as exc:
            raise ValueError(f"entry {text!r} {exc}") from None
        if target.url.raw_query_string or target.url.raw_fragment:
            raise ValueError(f"entry {text!r} must not have a query or fragment")
        return cls(text, target.scheme, target.host, target.address, target.port,
                   target.segments)

    def matches(self, target: Target) -> bool:
        n = len(self.segments)
        return (target.scheme == self.scheme and target.host == self.host
                and target.port == self.port and target.segments[:n] == self.segments)

    def names(self, address: IPAddress, port: int | None) -> bool:
        """This entry is that address (and port, when one is given) written out."""
        return self.address == normalize(address) and port in (None, self.port)


@dataclass(frozen=True)
class AllowList:
    """An operator's allow-list; empty allows nothing."""

    entries: tuple[AllowEntry, ...] = ()

    @classmethod
    def parse(cls, texts: Iterable[str]) -> AllowList:
        """ValueError naming the first entry that does not parse."""
        return cls(tuple(AllowEntry.parse(text) for text in texts))

    def __bool__(self) -> bool:
        return bool(self.entries)

    def check(self, text: str, name: str = "the allow-list") -> Target:
        """The parsed URL when an entry allows it; UrlRefused saying why not."""
        target = parse_url(text)
        if not any(entry.matches(target) for entry in self.entries):
            raise UrlRefused(f"matches no entry of {name}")
        if target.address is not None and not self.address_allowed(target.address,
                                                                    target.port):
            raise UrlRefused("is an internal address")
        return target

    def allows(self, text: str) -> bool:
        try:
            self.check(text)
        except UrlRefused:
            return False
        return True

    def address_allowed(self, address: IPAddress, port: int | None = None) -> bool:
        """A public address, or an internal one an entry names (port None: any port)."""
        return not is_internal(address) or any(e.names(address, port) for e in self.entries)


@dataclass(frozen=True)
class IceTarget:
    """A ``stun:``/``turn:`` URI's parts (RFC 7064, 7065): only its host is checked."""

    scheme: str
    host: str
    address: IPAddress | None
    port: int
    query: str  # "" or "?transport=udp"

    def with_address(self, address: IPAddress) -> str:
        return f"{self.scheme}:{address}:{self.port}{self.query}"


def parse_ice_uri(uri: str) -> IceTarget:
    scheme, sep, rest = uri.partition(":")
    scheme = scheme.lower()
    if not sep or scheme not in ICE_DEFAULT_PORTS or _UNSAFE.search(uri):
        raise UrlRefused("is not a stun: or turn: URI")
    hostport, mark, query = rest.partition("?")
    host, colon, port_text = hostport.rpartition(":") if not hostport.endswith("]") else (
        hostport, "", "")
    if not colon:
        host, port_text = hostport, ""
    if port_text and not port_text.isdigit():
        raise UrlRefused("has no valid port")
    port = int(port_text) if port_text else ICE_DEFAULT_PORTS[scheme]
    if not 0 < port < 65536:
        raise UrlRefused("has no valid port")
    name, address = parse_host(host)
    return IceTarget(scheme, name, address, port, mark + query)
