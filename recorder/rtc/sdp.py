"""Checking a WHIP offer before a peer connection is spent on it.

aiortc parses almost anything without complaint (plain text becomes an empty session) and
refuses a whole offer when one audio or video section has no codec it can receive. Checking
here first lets a publisher learn why in the status it gets: 400 for an offer that is not a
usable WebRTC description (RFC 9725 section 4.2), 422 for one that is well formed but carries
nothing we could record.

The codec check reuses aiortc's own negotiation (its codec table and its matching of H.264
profiles and packetization modes), so what passes here is exactly what the peer accepts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from aiortc import sdp as aiortc_sdp
from aiortc.codecs import CODECS
from aiortc.rtcpeerconnection import find_common_codecs

from recorder.core.errors import InvalidInput, Unprocessable

MAX_OFFER_BYTES = 64 * 1024
"""An SDP offer with a handful of sections is a few kilobytes; far beyond that is abuse."""

_LINE = re.compile(r"^[a-z]=")
_SENDING = {None, "sendrecv", "sendonly"}
_NOT_MEDIA = {"rtx", "red", "ulpfec", "flexfec-03"}


@dataclass(frozen=True)
class OfferedMedia:
    """One audio or video section that the publisher will send and we can receive."""

    mid: str
    kind: str  # "audio" | "video"
    codec: str  # lower-case codec name the answer puts first: "vp8", "h264", "opus"...


@dataclass(frozen=True)
class Offer:
    setup: str  # the offer's a=setup: "actpass", "active" or "passive"
    media: tuple[OfferedMedia, ...]

    def codec_of(self, mid: str | None) -> str:
        for m in self.media:
            if m.mid == mid:
                return m.codec
        return "unknown"


def check_offer(text: str) -> Offer:
    """Parse and judge a WHIP offer; raises InvalidInput (400) or Unprocessable (422)."""
    if len(text.encode("utf-8", "replace")) > MAX_OFFER_BYTES:
        raise InvalidInput(f"SDP offer larger than {MAX_OFFER_BYTES} bytes")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != "v=0":
        raise InvalidInput("SDP offer must start with v=0")
    bad = next((line for line in lines if not _LINE.match(line)), None)
    if bad is not None:
        raise InvalidInput(f"SDP offer has a malformed line: {bad[:60]!r}")
    if not any(line.startswith("o=") for line in lines):
        raise InvalidInput("SDP offer has no o= line")
    try:
        session = aiortc_sdp.SessionDescription.parse(text)
    except Exception as exc:  # aiortc raises ValueError, KeyError, AssertionError, ...
        raise InvalidInput(f"SDP offer cannot be parsed: {type(exc).__name__}: {exc}") from exc
    if not session.media:
        raise Unprocessable("SDP offer has no media section")

    section_setups = _section_setups(lines)
    setups: set[str] = set()
    usable: list[OfferedMedia] = []
    for index, media in enumerate(session.media):
        _check_transport(index, media)
        setup = section_setups[index] if index < len(section_setups) else None
        if setup not in ("actpass", "active", "passive"):
            raise InvalidInput(f"section {index} needs a=setup actpass, active or passive")
        setups.add(setup)
        if media.kind not in ("audio", "video"):
            continue
        listed = [c for c in media.rtp.codecs if c.payloadType in media.fmt]
        common = [
            c for c in find_common_codecs(CODECS[media.kind], listed)
            if c.name.lower() not in _NOT_MEDIA
        ]
        if not common:
            offered = sorted({c.name for c in listed}) or ["none"]
            raise Unprocessable(
                f"no {media.kind} codec we can receive in section {index} "
                f"(offered: {', '.join(offered)})"
            )
        if media.port != 0 and media.direction in _SENDING:
            usable.append(OfferedMedia(media.rtp.muxId, media.kind, common[0].name.lower()))
    if not usable:
        raise Unprocessable("SDP offer sends no audio or video")
    if len(setups) != 1:
        raise InvalidInput("SDP offer mixes DTLS setup roles across sections")
    return Offer(setups.pop(), tuple(usable))


def _check_transport(index: int, media: Any) -> None:
    """The parts of a section WebRTC cannot do without (RFC 8829, 8842, 8843)."""
    if not media.ice.usernameFragment or not media.ice.password:
        raise InvalidInput(f"section {index} has no ICE credentials")
    if media.dtls is None or not media.dtls.fingerprints:
        raise InvalidInput(f"section {index} has no DTLS fingerprint")
    if not media.rtp.muxId:
        raise InvalidInput(f"section {index} has no a=mid")
    if media.kind in ("audio", "video") and not media.rtcp_mux:
        raise InvalidInput(f"section {index} does not use rtcp-mux")


def _section_setups(lines: list[str]) -> list[str | None]:
    """Each section's a=setup value (else the session's). aiortc reads a missing one as
    `auto`, which would hide an offer that omits it (RFC 4145 then means `active`)."""
    session_value: str | None = None
    sections: list[str | None] = []
    for line in lines:
        if line.startswith("m="):
            sections.append(session_value)
        elif line.startswith("a=setup:"):
            value = line.removeprefix("a=setup:").strip()
            if sections:
                sections[-1] = value
            else:
                session_value = value
    return sections
