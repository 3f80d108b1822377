"""One WHIP publisher: an aiortc peer that only receives, and the tasks that drain its tracks.

WHIP has no trickle from the server, so the answer is returned only after aiortc has gathered
its candidates (``setLocalDescription`` waits for that). Every received track is read for as
long as it lives: aiortc queues decoded frames without bound when nobody calls ``recv()``, so
a publisher nobody records would otherwise grow until the process dies.

DTLS roles (RFC 5763): aiortc answers `active` to `actpass` and `passive` offers and `passive`
to `active` ones, and pins its own transport to the role its answer announces when the answer
is set locally; tests/rtc keep that true for each kind of offer, with and without candidates.

The peer reports through three callbacks instead of knowing about rooms or captures, which
keeps the room's bookkeeping in one place (:mod:`recorder.room.session`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

import av
from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.exceptions import InvalidStateError, OperationError
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from recorder.background import BackgroundTasks
from recorder.core.errors import InvalidInput, Unavailable, Unprocessable
from recorder.media.encoded import EncodedFrame
from recorder.rtc import taps
from recorder.rtc.sdp import Offer, check_offer

logger = logging.getLogger(__name__)

Frame = av.AudioFrame | av.VideoFrame | EncodedFrame  # encoded: see set_demand

CONNECT_TIMEOUT_SECONDS = 15.0
"""A publisher that got its answer but never connects is dropped after this (the default of
RECORDER_WHIP_CONNECT_TIMEOUT_SECONDS). aiortc would wait for it forever: a non-trickle offer
rarely ends with a=end-of-candidates; and until it closes it holds its user's publisher slot
and keeps its room open."""


@dataclass(frozen=True)
class Source:
    """One received track, named for the room's captures."""

    source_id: str  # "{session_id}/{kind}", with "-2", "-3"... for further tracks of a kind
    session_id: str
    publisher_id: str
    role: str
    kind: str
    codec: str


MAX_DATA_CHANNELS = 16
"""Data channels one publisher may open; further ones are closed at once."""


@dataclass(frozen=True)
class PeerCallbacks:
    on_source: Callable[[Source], None]  # first frame of a track arrived
    on_frame: Callable[[Source, Frame], None]
    on_closed: Callable[[PublisherPeer], None]  # once, whoever closed it
    # a data channel opened (message None) or one of its messages came: (peer, label, message)
    on_message: Callable[[PublisherPeer, str, str | bytes | None], None] | None = None


class PublisherPeer:
    def __init__(
        self,
        session_id: str,
        publisher_id: str,
        role: str,
        ice_servers: list[RTCIceServer],
        callbacks: PeerCallbacks,
        connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
    ) -> None:
        self.session_id = session_id
        self.publisher_id = publisher_id
        self.role = role
        self.sources: list[Source] = []  # in the order their first frame came
        self.channels: list[str] = []  # labels of its open data channels
        self._callbacks = callbacks
        self._connect_timeout = connect_timeout
        self._pc = RTCPeerConnection(RTCConfiguration(iceServers=list(ice_servers)))
        self._offer: Offer | None = None
        self._kinds_seen: dict[str, int] = {}
        self._tasks = BackgroundTasks()
        self._connected = asyncio.Event()
        self._closing: asyncio.Task[None] | None = None
        self._log = f"publisher {session_id} ({publisher_id})"
        self._demand = (True, False)  # (decoded, encoded) frames wanted of every track
        self._taps: dict[str, taps.ReceiverTap] = {}  # track id, then source id -> its tap
        taps.install()

    async def answer(self, offer_sdp: str) -> str:
        """Negotiate and return the SDP answer with our candidates in it."""
        offer = check_offer(offer_sdp)
        self._offer = offer
        pc = self._pc
        pc.on("track", self._on_track)
        pc.on("datachannel", self._on_datachannel)
        pc.on("connectionstatechange", self._on_state)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
        except (ValueError, OperationError) as exc:  # what aiortc says of an offer it refuses
            await self.close()
            if isinstance(exc, OperationError):  # no codec in common
                raise Unprocessable(f"offer refused: {exc}") from exc
            raise InvalidInput(f"offer refused: {exc}") from exc
        except InvalidStateError as exc:  # closed under our feet: the room is closing
            await self.close()
            raise Unavailable("the publisher closed while its offer was answered") from exc
        except BaseException:  # a bug, or cancelled: the peer must not outlive the request
            self._begin_close()
            raise
        self._tasks.spawn(self._watch_connect())
        logger.info("%s: answered a %s offer with %d media%s", self._log, offer.setup,
                    len(offer.media), " and a data channel" if offer.data_channel else "")
        return str(pc.localDescription.sdp)

    async def close(self) -> None:
        """Close the peer and wait for its tasks; safe to call twice."""
        await asyncio.shield(self._begin_close())

    def _begin_close(self) -> asyncio.Task[None]:
        if self._closing is None:
            self._closing = asyncio.create_task(self._close())
        return self._closing

    async def _close(self) -> None:
        await self._pc.close()
        await self._tasks.cancel()
        logger.info("%s: closed", self._log)
        try:
            self._callbacks.on_closed(self)
        except Exception:
            logger.exception("%s: the room failed to note the close", self._log)

    def _on_track(self, track: MediaStreamTrack) -> None:
        mid = next(
            (t.mid for t in self._pc.getTransceivers() if t.receiver.track is track), None
        )
        codec = self._offer.codec_of(mid) if self._offer else "unknown"
        receiver = next((t.receiver for t in self._pc.getTransceivers()
                         if t.receiver.track is track), None)
        if receiver is not None:
            tap = taps.tap_of(receiver)
            tap.set_demand(*self._demand)
            self._taps[track.id] = tap
        self._tasks.spawn(self._drain(track, codec))

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        """Record every message of the channel under its label (docs/media.md, "Events")."""
        label = str(channel.label)
        if len(self.channels) >= MAX_DATA_CHANNELS:
            logger.warning("%s: data channel %r refused: %d open", self._log, label[:64],
                           MAX_DATA_CHANNELS)
            channel.close()
            return
        self.channels.append(label)
        logger.info("%s: data channel %r open", self._log, label[:64])

        def on_message(message: object) -> None:
            if isinstance(message, str | bytes):
                self._hand_message(label, message)

        channel.on("message", on_message)
        self._hand_message(label, None)

    def _hand_message(self, label: str, message: str | bytes | None) -> None:
        if self._callbacks.on_message is None:
            return
        try:
            self._callbacks.on_message(self, label, message)
        except Exception:  # a message must never take the peer down
            logger.exception("%s: a data channel message could not be handed on", self._log)

    def set_demand(self, decoded: bool, encoded: bool) -> None:
        """Whether the room's captures want decoded frames, encoded ones, or both: a room
        recording only ``source`` decodes nothing."""
        if self._demand != (decoded, encoded):
            self._demand = (decoded, encoded)
            for tap in {id(t): t for t in self._taps.values()}.values():
                tap.set_demand(decoded, encoded)

    def request_keyframe(self, source_id: str) -> None:
        tap = self._taps.get(source_id)
        if tap is not None:
            tap.request_keyframe()

    def _on_state(self) -> None:
        state = self._pc.connectionState
        logger.info("%s: connection %s", self._log, state)
        if state == "connected":
            self._connected.set()
        elif state in ("failed", "closed"):
            self._begin_close()

    async def _watch_connect(self) -> None:
        try:
            await asyncio.wait_for(self._connected.wait(), self._connect_timeout)
        except TimeoutError:
            logger.warning("%s: not connected after %.0f s, dropping it", self._log,
                           self._connect_timeout)
            self._begin_close()

    async def _drain(self, track: MediaStreamTrack, codec: str) -> None:
        """Read the track until it ends, handing every frame to the room."""
        source: Source | None = None
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if not isinstance(frame, av.AudioFrame | av.VideoFrame | EncodedFrame):
                continue
            try:
                if source is None:
                    source = self._new_source(track.kind, codec)
                    if track.id in self._taps:
                        self._taps[source.source_id] = self._taps[track.id]
                    self._callbacks.on_source(source)
                self._callbacks.on_frame(source, frame)
            except Exception:  # keep draining whatever the room did with it
                logger.exception("%s: a %s frame could not be handed on", self._log,
                                  track.kind)

    def _new_source(self, kind: str, codec: str) -> Source:
        n = self._kinds_seen.get(kind, 0) + 1
        self._kinds_seen[kind] = n
        suffix = "" if n == 1 else f"-{n}"
        source = Source(f"{self.session_id}/{kind}{suffix}", self.session_id,
                        self.publisher_id, self.role, kind, codec)
        self.sources.append(source)
        logger.info("%s: receiving %s (%s)", self._log, source.source_id, codec)
        return source

