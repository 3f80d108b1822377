"""Which WHIP offers a room accepts, and the status a refused publisher learns (400 / 422)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from recorder.core.errors import InvalidInput, RecorderError, Unprocessable
from recorder.rtc.sdp import check_offer

DATA = Path(__file__).parent / "data"
CHROMIUM_OFFER = (DATA / "chromium_offer.sdp").read_bytes().decode()

# The shape of FFmpeg's WHIP muxer offer: passive, no candidates, H.264 + Opus.
FFMPEG_LIKE_OFFER = "\r\n".join([
    "v=0",
    "o=FFmpeg 4489045141692799359 2 IN IP4 127.0.0.1",
    "s=FFmpegPublishSession",
    "t=0 0",
    "a=group:BUNDLE 0 1",
    "a=extmap-allow-mixed",
    "a=msid-semantic: WMS",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111",
    "c=IN IP4 0.0.0.0",
    "a=ice-ufrag:a1b2c3d4",
    "a=ice-pwd:0123456789abcdef0123456789abcdef",
    "a=fingerprint:sha-256 " + ":".join(["AB"] * 32),
    "a=setup:passive",
    "a=mid:0",
    "a=sendonly",
    "a=msid:FFmpeg audio",
    "a=rtcp-mux",
    "a=rtpmap:111 opus/48000/2",
    "a=ssrc:1111 cname:FFmpeg",
    "m=video 9 UDP/TLS/RTP/SAVPF 106",
    "c=IN IP4 0.0.0.0",
    "a=ice-ufrag:a1b2c3d4",
    "a=ice-pwd:0123456789abcdef0123456789abcdef",
    "a=fingerprint:sha-256 " + ":".join(["AB"] * 32),
    "a=setup:passive",
    "a=mid:1",
    "a=sendonly",
    "a=msid:FFmpeg video",
    "a=rtcp-mux",
    "a=rtcp-rsize",
    "a=rtpmap:106 H264/90000",
    "a=fmtp:106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
    "a=ssrc:2222 cname:FFmpeg",
    "",
])


def only_payloads(offer: str, kind: str, payloads: list[int]) -> str:
    """Keep only `payloads` on the m= line of `kind` (what a sender limited to them offers)."""
    def keep(match: re.Match[str]) -> str:
        return f"m={kind} {match.group(1)} {match.group(2)} " + " ".join(map(str, payloads))

    return re.sub(rf"m={kind} (\d+) (\S+) [\d ]+", keep, offer, count=1)


def test_chromium_offer_is_accepted_with_the_codecs_it_will_send() -> None:
    offer = check_offer(CHROMIUM_OFFER)
    assert offer.setup == "actpass"
    assert [(m.kind, m.codec) for m in offer.media] == [("audio", "opus"), ("video", "vp8")]


def test_ffmpeg_style_offer_is_accepted() -> None:
    offer = check_offer(FFMPEG_LIKE_OFFER)
    assert offer.setup == "passive"
    assert [(m.kind, m.codec) for m in offer.media] == [("audio", "opus"), ("video", "h264")]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello world",
        "<html><body>not an offer</body></html>",
        '{"type": "offer", "sdp": "v=0"}',
        "v=0\r\ns=-\r\nt=0 0\r\n",  # no origin
        CHROMIUM_OFFER.replace("v=0", "v=1", 1),
        CHROMIUM_OFFER.replace("m=video 59497 UDP/TLS/RTP/SAVPF", "m=video x UDP/TLS/RTP/SAVPF"),
        CHROMIUM_OFFER.replace("a=setup:actpass", "a=setup:holdconn"),
        re.sub(r"a=fingerprint:[^\r\n]*\r\n", "", CHROMIUM_OFFER),
        re.sub(r"a=ice-pwd:[^\r\n]*\r\n", "", CHROMIUM_OFFER),
        re.sub(r"a=setup:[^\r\n]*\r\n", "", CHROMIUM_OFFER),
        re.sub(r"a=rtcp-mux\r\n", "", CHROMIUM_OFFER),
        CHROMIUM_OFFER + "x" * 70_000,
    ],
    ids=["empty", "text", "html", "json", "no-origin", "version", "bad-port", "holdconn",
         "no-fingerprint", "no-ice-pwd", "no-setup", "no-rtcp-mux", "huge"],
)
def test_malformed_offers_are_400(text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_offer(text)
    assert caught.value.status == 400


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (only_payloads(CHROMIUM_OFFER, "video", [98, 99, 100, 101]), "video codec"),  # VP9
        (only_payloads(CHROMIUM_OFFER, "video", [45, 46]), "video codec"),  # AV1
        (only_payloads(CHROMIUM_OFFER, "audio", [13, 110]), "audio codec"),  # CN, DTMF
        (CHROMIUM_OFFER.replace("a=sendrecv", "a=recvonly").replace("a=sendonly",
                                                                     "a=recvonly"),
         "sends no audio or video"),
        (FFMPEG_LIKE_OFFER.replace("packetization-mode=1", "packetization-mode=0")
         .replace("m=audio 9 UDP/TLS/RTP/SAVPF 111", "m=audio 9 UDP/TLS/RTP/SAVPF 0")
         .replace("a=rtpmap:111 opus/48000/2", "a=rtpmap:0 PCMU/8000"), "video codec"),
    ],
    ids=["vp9-only", "av1-only", "no-audio-codec", "nothing-sent", "h264-mode-0"],
)
def test_offers_without_usable_media_are_422(text: str, says: str) -> None:
    with pytest.raises(Unprocessable) as caught:
        check_offer(text)
    assert caught.value.status == 422
    assert says in caught.value.detail


DATA_CHANNEL_OFFER = (DATA / "datachannel_offer.sdp").read_bytes().decode()  # aiortc's


def test_data_channel_only_offer_is_accepted() -> None:
    offer = check_offer(DATA_CHANNEL_OFFER)
    assert offer.data_channel
    assert offer.media == ()


@pytest.mark.parametrize(
    ("text", "status", "says"),
    [
        # aiortc skips an unknown kind, then fails on it in createAnswer (was a 500)
        (CHROMIUM_OFFER.replace("m=audio", "m=text", 1), 422, "'text' media"),
        # a BUNDLE group naming no section leaves aiortc's sections without a transport
        (CHROMIUM_OFFER.replace("BUNDLE 0 1", "BUNDLE 5 1"), 400, "BUNDLE"),
        (CHROMIUM_OFFER.replace("a=mid:1", "a=mid:0"), 400, "share one a=mid"),
        (CHROMIUM_OFFER.replace("a=sendonly\r\n", ""), 400, "a=sendonly"),
        (CHROMIUM_OFFER.replace("sha-256", "md5"), 400, "DTLS fingerprint"),
        (CHROMIUM_OFFER.replace("level-asymmetry-allowed=1;packetization-mode=1",
                                "packetization-mode"), 400, "a=fmtp"),
        (DATA_CHANNEL_OFFER.replace("a=sctp-port:5000\r\n", ""), 400, "sctp-port"),
        (DATA_CHANNEL_OFFER.replace("a=sctp-port:5000", "a=sctp-port:70000"), 400, "sctp-port"),
        (DATA_CHANNEL_OFFER.replace("UDP/DTLS/SCTP webrtc-datachannel", "RTP/AVP 0"), 422,
         "not a data channel"),
        (DATA_CHANNEL_OFFER + DATA_CHANNEL_OFFER[DATA_CHANNEL_OFFER.index("m="):]
         .replace("a=mid:0", "a=mid:1"), 422, "more than one data channel"),
        (CHROMIUM_OFFER.replace("s=-", "s=\x00"), 400, "malformed line"),
        (DATA_CHANNEL_OFFER.replace("a=group:BUNDLE 0\r\n", "") + "".join(
            DATA_CHANNEL_OFFER[DATA_CHANNEL_OFFER.index("m="):].replace("a=mid:0", f"a=mid:{i}")
            for i in range(1, 17)), 400, "more than 16 media sections"),
    ],
    ids=["text-section", "bundle-unknown-mid", "duplicate-mid", "no-direction",
         "unknown-fingerprint-algorithm", "fmtp-without-value", "no-sctp-port",
         "sctp-port-out-of-range", "application-not-data-channel", "two-data-channels",
         "control-character", "seventeen-sections"],
)
def test_offers_aiortc_would_fail_on_are_refused_first(text: str, status: int,
                                                         says: str) -> None:
    with pytest.raises(RecorderError) as caught:
        check_offer(text)
    assert caught.value.status == status, caught.value.detail
    assert says in caught.value.detail


def test_refusals_are_recorder_errors_never_crashes() -> None:
    """Whatever a client sends, the answer is a 4xx, not a 500 (docs/security.md)."""
    lines = CHROMIUM_OFFER.splitlines()
    statuses = []
    for cut in range(1, len(lines), 7):
        try:
            check_offer("\r\n".join(lines[:cut]))
        except RecorderError as exc:
            statuses.append(exc.status)
    assert statuses
    assert set(statuses) <= {400, 422}
