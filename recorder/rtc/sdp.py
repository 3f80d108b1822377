"""Checking a WHIP offer before a peer connection is spent on it.

aiortc parses almost anything without complaint (plain text becomes an empty session),
refuses a whole offer when one audio or video section has no codec it can receive, and
fails with its own internal errors on offers it half understands: a section of a kind it
does not know (`m=text`), a BUNDLE group naming a section that is not there, two sections
with one mid. Checking here first turns all of those into the status a publisher can act
on: 400 for an offer that is not a usable WebRTC description (RFC 9725 section 4.2), 422
for one that is well formed but carries nothing we could record, neither audio or video in
a codec we take nor a data channel. docs/security.md ("Bad input") lists the checks.

The codec check reuses aiortc's own negotiation (its codec table and its matching of H.264
profiles and packetization modes), so what passes here is exactly what the peer accepts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from aiortc import sdp as aiortc_sdp
from aiortc.codecs import CODECS
from aiortc.rtcdtlstransport import X509_DIGEST_ALGORITHMS
from aiortc.rtcpeerconnection import find_common_codecs

from recorder.core.errors import InvalidInput, Unprocessable

MAX_OFFER_BYTES = 64 * 1024
"""An SDP offer with a handful of sections is a few kilobytes; far beyond that is abuse."""
MAX_SECTIONS = 16
"""A camera, a microphone and a screen are three; every section not bundled costs the peer
its own ICE transport and sockets."""

_LINE = re.compile(r"^[a-z]=[^\x00-\x08\x0a-\x1f\x7f]*$")
_SENDING = ("sendrecv", "sendonly")
_DIRECTIONS = (*_SENDING, "recvonly", "inactive")
_NOT_MEDIA = {"rtx", "red", "ulpfec", "flexfec-03"}
_SETUPS = ("actpass", "active", "passive")
DATA_CHANNEL = ("UDP/DTLS/SCTP", "webrtc-datachannel")  # RFC 8841; DTLS/SCTP is the old form


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
    data_channel: bool = False  # it opens a data channel (its messages are recorded as events)

    def codec_of(self, mid: str | None) -> str:
        for m in self.media:
            if m.mid == mid:
                return m.codec
        return "unknown"


def check_offer(text: str) -> Offer:
    """Parse and judge a WHIP offer; raises InvalidInput (400) or Unprocessable (422)."""
    lines = _checked_lines(text)
    try:
        session = aiortc_sdp.SessionDescription.parse(text)
    except (ValueError, KeyError, IndexError, AssertionError, AttributeError, TypeError,
            StopIteration) as exc:  # what aiortc's parser raises on a malformed line
        raise InvalidInput(f"SDP offer cannot be parsed: {type(exc).__name__}") from exc
    if not session.media:
        raise Unprocessable("SDP offer has no media section")
    if len(session.media) > MAX_SECTIONS:
        raise InvalidInput(f"SDP offer has more than {MAX_SECTIONS} media sections")
    _check_mids(session)
    section_setups = _section_setups(lines)
    setups: set[str] = set()
    usable: list[OfferedMedia] = []
    data_channels = 0
    for index, media in enumerate(session.media):
        _check_transport(index, media)
        setup = section_setups[index] if index < len(section_setups) else None
        if setup not in _SETUPS:
            raise InvalidInput(f"section {index} needs a=setup actpass, active or passive")
        setups.add(setup)
        if media.kind == "application":
            _check_data_channel(index, media)
            data_channels += 1
            continue
        if media.kind not in ("audio", "video"):
            raise Unprocessable(f"section {index} is {media.kind[:20]!r} media: only audio, "
                                "video and a data channel can be answered")
        codec = _codec(index, media)
        if media.port != 0 and media.direction in _SENDING:
            usable.append(OfferedMedia(media.rtp.muxId, media.kind, codec))
    if data_channels > 1:
        raise Unprocessable("SDP offer has more than one data channel section")
    if not usable and not data_channels:
        raise Unprocessable("SDP offer sends no audio or video and opens no data channel")
    if len(setups) != 1:
        raise InvalidInput("SDP offer mixes DTLS setup roles across sections")
    return Offer(setups.pop(), tuple(usable), data_channel=data_channels > 0)


def _checked_lines(text: str) -> list[str]:
    """The offer's lines once its size and the shape of each line are right (RFC 8866
    section 5: `<type>=<value>`, printable text)."""
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
    return lines


def _check_mids(session: Any) -> None:
    """Each section has its own mid, and a BUNDLE group names only sections that exist
    (RFC 8843 section 7.2): aiortc would bundle the sections onto no transport at all."""
    mids = [media.rtp.muxId for media in session.media]
    if len(set(mids)) != len(mids):
        raise InvalidInput("two sections of the SDP offer share one a=mid")
    for group in session.group:
        unknown = [item for item in group.items if item not in mids]
        if group.semantic == "BUNDLE" and (unknown or not group.items):
            raise InvalidInput("the SDP offer's BUNDLE group names a section it does not have")


def _check_transport(index: int, media: Any) -> None:
    """The parts of a section WebRTC cannot do without (RFC 8829, 8842, 8843)."""
    if not media.ice.usernameFragment or not media.ice.password:
        raise InvalidInput(f"section {index} has no ICE credentials")
    if media.dtls is None or not any(f.algorithm.lower() in X509_DIGEST_ALGORITHMS
                                     for f in media.dtls.fingerprints):
        raise InvalidInput(f"section {index} has no DTLS fingerprint "
                           f"({', '.join(X509_DIGEST_ALGORITHMS)})")
    if not media.rtp.muxId:
        raise InvalidInput(f"section {index} has no a=mid")
    if media.kind in ("audio", "video") and not media.rtcp_mux:
        raise InvalidInput(f"section {index} does not use rtcp-mux")
    if media.kind in ("audio", "video") and media.direction not in _DIRECTIONS:
        # RFC 8866 reads a missing one as sendrecv, but aiortc cannot answer that
        raise InvalidInput(f"section {index} has no a=sendonly (or another direction)")


def _check_data_channel(index: int, media: Any) -> None:
    """An application section is a data channel over SCTP (RFC 8841), with its port."""
    if (media.profile, *media.fmt[:1]) == DATA_CHANNEL:
        port = media.sctp_port
    elif media.profile == "DTLS/SCTP" and media.fmt and media.fmt[0].isdecimal():
        port = int(media.fmt[0])
    else:
        raise Unprocessable(f"section {index} is an application section but not a data "
                            "channel (m=application ... UDP/DTLS/SCTP webrtc-datachannel)")
    if port is None or not 0 < port < 65536:
        raise InvalidInput(f"section {index} has no valid a=sctp-port")


def _codec(index: int, media: Any) -> str:
    """The codec the answer will take for this section, or 422."""
    listed = [c for c in media.rtp.codecs if c.payloadType in media.fmt]
    try:
        common = [c for c in find_common_codecs(CODECS[media.kind], listed)
                  if c.name.lower() not in _NOT_MEDIA]
    except (ValueError, KeyError, IndexError, TypeError) as exc:  # a malformed a=fmtp
        raise InvalidInput(f"section {index} has a malformed a=fmtp: "
                           f"{type(exc).__name__}") from exc
    if not common:
        offered = sorted({c.name for c in listed}) or ["none"]
        raise Unprocessable(
            f"no {media.kind} codec we can receive in section {index} "
            f"(offered: {', '.join(offered)[:200]})"
        )
    return str(common[0].name.lower())


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
