"""A receive-only aiortc peer for pulling media from an upstream (WHEP server, SFU).

Unlike a WHIP publisher, the upstream may be either side of the offer/answer: a WHEP client
offers (``offer`` then ``accept``), while a WHEP counter-offer or a Cloudflare Realtime
renegotiation makes us answer (``answer``). Either way the tracks are drained for as long as
they live (aiortc queues decoded frames without bound otherwise) and every frame is handed to
``on_frame`` with the track it came from.

A pull feeds exactly one recording, so what it must deliver is known when the peer is made:
decoded frames for a transcoding capture, or, with ``encoded``, the frames as the upstream
encoded them for a ``source`` capture (:mod:`recorder.rtc.taps`), which then decodes nothing.
The passthrough capture starts video on a keyframe and asks for one through
:meth:`ReceiverPeer.request_keyframe`.

``lost`` is set when the upstream goes away without us closing: the connection fails or
closes, or a track ends (aiortc ends the remote tracks when the far side shuts DTLS down,
while its connection state can stay `connected`). aiortc 1.16 has no ICE restart, so the
only cure is a new peer (:mod:`recorder.rtc.pull` does that).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import av
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc import sdp as aiortc_sdp
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from recorder.background import BackgroundTasks
from recorder.media.encoded import EncodedFrame
from recorder.rtc import taps

logger = logging.getLogger(__name__)

Frame = av.AudioFrame | av.VideoFrame | EncodedFrame  # encoded: see ``encoded`` below

_NOT_MEDIA = {"rtx", "red", "ulpfec", "flexfec-03"}


class UnusableSdp(ValueError):
    """The upstream's SDP could not be applied (malformed, or nothing we can receive)."""


@dataclass(frozen=True)
class ReceivedTrack:
    kind: str  # "audio" | "video"
    codec: str  # "vp8", "h264", "opus"...
    mid: str | None
    index: int  # 1 for the first track of its kind, 2 for the next...


FrameSink = Callable[[ReceivedTrack, Frame], None]


class ReceiverPeer:
    def __init__(self, name: str, ice_servers: list[RTCIceServer], on_frame: FrameSink,
                 encoded: bool = False) -> None:
        """``encoded``: deliver the upstream's encoded frames instead of decoded ones."""
        self.name = name  # for logs: the recording id and the attempt
        self.encoded = encoded
        self.lost = asyncio.Event()
        self.last_frame_at: float | None = None  # monotonic
        self.frames = 0
        self._on_frame = on_frame
        self._pc = RTCPeerConnection(RTCConfiguration(iceServers=list(ice_servers)))
        self._pc.on("track", self._on_track)
        self._pc.on("connectionstatechange", self._on_state)
        self._connected = asyncio.Event()
        self._answer_sdp: str | None = None  # the answer of our exchange, whoever wrote it
        self._kinds_seen: dict[str, int] = {}
        self._tasks = BackgroundTasks()
        self._closing: asyncio.Task[None] | None = None
        self._taps: dict[tuple[str, int], taps.ReceiverTap] = {}  # (kind, index) -> its tap
        self._negotiated: list[tuple[str, str | None, int]] = []  # (kind, mid, index)
        # the upstream's data channels we subscribed to: (label, message)
        self.on_message: Callable[[str, str | bytes], None] | None = None
        self.channels: list[str] = []
        taps.install()

    # ---- negotiation --------------------------------------------------------------------

    async def offer(self) -> str:
        """A recvonly audio + video offer with our candidates in it (no trickle)."""
        self._pc.addTransceiver("audio", direction="recvonly")
        self._pc.addTransceiver("video", direction="recvonly")
        await self._pc.setLocalDescription(await self._pc.createOffer())
        return str(self._pc.localDescription.sdp)

    async def accept(self, answer_sdp: str) -> None:
        """Apply the upstream's answer to our offer; UnusableSdp if it cannot be."""
        _check_sdp(answer_sdp)
        try:
            await self._pc.setRemoteDescription(
                RTCSessionDescription(sdp=answer_sdp, type="answer"))
        except Exception as exc:  # aiortc raises ValueError, KeyError, AssertionError...
            raise UnusableSdp(f"{type(exc).__name__}: {exc}") from exc
        self._answer_sdp = answer_sdp

    async def answer(self, offer_sdp: str) -> str:
        """Answer the upstream's offer (receiving only); UnusableSdp if it cannot be."""
        _check_sdp(offer_sdp)
        try:
            await self._pc.setRemoteDescription(
                RTCSessionDescription(sdp=offer_sdp, type="offer"))
            await self._pc.setLocalDescription(await self._pc.createAnswer())
        except Exception as exc:
            raise UnusableSdp(f"{type(exc).__name__}: {exc}") from exc
        self._answer_sdp = str(self._pc.localDescription.sdp)
        return self._answer_sdp

    def subscribe(self, label: str, channel_id: int) -> None:
        """Receive the upstream's data channel ``label``, negotiated out of band as SCTP
        stream ``channel_id`` (Cloudflare's datachannels/new gives the id)."""
        channel = self._pc.createDataChannel(label, negotiated=True, id=channel_id)
        self.channels.append(label)

        def on_message(message: object) -> None:
            if self.on_message is not None and isinstance(message, str | bytes):
                try:
                    self.on_message(label, message)
                except Exception:  # a message must never take the peer down
                    logger.exception("%s: a message on %s could not be handed on",
                                     self.name, label[:64])

        channel.on("message", on_message)

    async def wait_connected(self) -> bool:
        """True once ICE and DTLS are up, False if the peer was lost first (callers bound
        the wait with ``asyncio.timeout``)."""
        connected = asyncio.ensure_future(self._connected.wait())
        lost = asyncio.ensure_future(self.lost.wait())
        try:
            await asyncio.wait((connected, lost), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (connected, lost):
                task.cancel()
            await asyncio.gather(connected, lost, return_exceptions=True)
        return self._connected.is_set() and not self.lost.is_set()

    @property
    def tracks(self) -> list[ReceivedTrack]:
        """Every track the negotiation gave, delivering yet or not, in the order they came."""
        return [ReceivedTrack(kind, self._codec_of(mid), mid, n)
                for kind, mid, n in self._negotiated]

    @property
    def mids(self) -> list[str]:
        return [t.mid for t in self._pc.getTransceivers() if t.mid is not None]

    # ---- teardown -----------------------------------------------------------------------

    async def close(self) -> None:
        """Close the connection and wait for the drains; safe to call twice."""
        if self._closing is None:
            self._closing = asyncio.create_task(self._close())
        await asyncio.shield(self._closing)

    async def _close(self) -> None:
        await self._pc.close()
        await self._tasks.cancel()
        logger.info("%s: closed after %d frames (%d decoded)", self.name, self.frames,
                    self.decoded_frames)

    # ---- what the taps do ---------------------------------------------------------------

    @property
    def decoded_frames(self) -> int:
        """Frames aiortc decoded for this peer: none when it delivers encoded frames."""
        return sum(tap.decoded_frames for tap in self._taps.values())

    def request_keyframe(self, index: int | None = None) -> None:
        """Ask the upstream for a keyframe of video track ``index`` (all video: None)."""
        for (kind, n), tap in self._taps.items():
            if kind == "video" and index in (None, n):
                try:
                    tap.request_keyframe()
                except Exception:  # a receiver not started yet, or already gone
                    logger.warning("%s: no keyframe request for video track %d", self.name,
                                   n, exc_info=True)

    # ---- media --------------------------------------------------------------------------

    def _on_state(self) -> None:
        state = self._pc.connectionState
        logger.info("%s: connection %s", self.name, state)
        if state == "connected":
            self._connected.set()
        elif state in ("failed", "closed") and self._closing is None:
            self.lost.set()

    def _on_track(self, track: MediaStreamTrack) -> None:
        transceiver = next((t for t in self._pc.getTransceivers()
                            if t.receiver.track is track), None)
        mid = transceiver.mid if transceiver is not None else None
        n = self._kinds_seen.get(track.kind, 0) + 1
        self._kinds_seen[track.kind] = n
        self._negotiated.append((track.kind, mid, n))
        if transceiver is not None:  # before any RTP: the first frame is already as wanted
            tap = taps.tap_of(transceiver.receiver)
            tap.set_demand(not self.encoded, self.encoded)
            self._taps[(track.kind, n)] = tap
        self._tasks.spawn(self._drain(track, mid, n))

    def _codec_of(self, mid: str | None) -> str:
        """The first media codec the answer lists for the section: what will be sent."""
        if self._answer_sdp is None or mid is None:
            return "unknown"
        with contextlib.suppress(Exception):
            for media in aiortc_sdp.SessionDescription.parse(self._answer_sdp).media:
                if media.rtp.muxId == mid:
                    for codec in media.rtp.codecs:
                        if codec.payloadType in media.fmt and codec.name.lower() not in _NOT_MEDIA:
                            return codec.name.lower()
        return "unknown"

    async def _drain(self, track: MediaStreamTrack, mid: str | None, index: int) -> None:
        received: ReceivedTrack | None = None
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                if self._closing is None:
                    logger.info("%s: %s track %d ended", self.name, track.kind, index)
                    self.lost.set()
                return
            if not isinstance(frame, av.AudioFrame | av.VideoFrame | EncodedFrame):
                continue
            if received is None:  # the track event fires before the exchange completes
                codec = frame.codec if isinstance(frame, EncodedFrame) else self._codec_of(mid)
                received = ReceivedTrack(track.kind, codec, mid, index)
                logger.info("%s: receiving %s track %d (mid %s, %s, %s)", self.name,
                            track.kind, index, mid, received.codec,
                            "encoded" if self.encoded else "decoded")
            self.last_frame_at = time.monotonic()
            self.frames += 1
            try:
                self._on_frame(received, frame)
            except Exception:  # keep draining whatever the receiver of frames did
                logger.exception("%s: a %s frame could not be handed on", self.name,
                                 received.kind)


def _check_sdp(text: str) -> None:
    """Refuse what is plainly not an SDP before aiortc reads it (it parses almost anything)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != "v=0":
        raise UnusableSdp("not an SDP description (no v=0 first line)")
    if not any(line.startswith("m=") for line in lines):
        raise UnusableSdp("SDP has no media section")


def is_offer(sdp: str) -> bool:
    """Whether a description an upstream returned is an offer: JSEP offers always say
    ``a=setup:actpass``, answers never do (RFC 8842 section 5)."""
    return any(line.strip() == "a=setup:actpass" for line in sdp.splitlines())
