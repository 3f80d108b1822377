"""A recording's pull from an upstream, kept alive across broken connections.

The first session must succeed (``start`` raises SourceFailed otherwise: the start of the
recording fails with 502). After that, a session that breaks (the connection fails, the
upstream ends its tracks, or no frame arrives for ``stall_seconds``) is replaced by a new
one, with backoff between attempts (the upstream's ``Retry-After`` wins when it gives one),
until the pull is closed. aiortc 1.16 has no ICE restart, so every new session is a new
peer: new SSRCs, new RTP clocks, and video that starts at its next keyframe. That is why
each session's tracks become new sources (``{name}/{n}/video``, n counting sessions): the
capture anchors every source's clock at its first frame, and a source that replaces
another (same kind and position) is reported with the id it replaces, so the capture can
swap them.

The sink hears ``lost`` when a session breaks and ``restored`` just before the first frame
of the next one, which is what lets the room cut the gap out of the recording's timeline.

A pull made with ``encoded`` (its recording is ``source``) has every session deliver the
upstream's encoded frames; :meth:`Pull.request_keyframe` reaches the session that delivers
the source asked about, so the capture's keyframe requests (start, resume, loss, a new
session) go to the peer that can answer them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import aiohttp
from aiortc import RTCIceServer

from recorder.background import BackgroundTasks
from recorder.core.errors import SourceFailed
from recorder.core.models import WhepSource
from recorder.core.pulls import CloudflarePull, PullSource
from recorder.outbound import Outbound
from recorder.rtc.cloudflare import CloudflareApi, CloudflareUpstream
from recorder.rtc.publisher import Source
from recorder.rtc.receiver import Frame, ReceivedTrack, ReceiverPeer
from recorder.rtc.upstream import Upstream, UpstreamRefused, UpstreamSession
from recorder.rtc.whep import WhepUpstream

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PullTiming:
    connect_timeout: float = 15.0  # ICE + DTLS after the answer
    stall_seconds: float = 10.0  # connected but silent this long: treated as broken
    backoff_first: float = 0.5
    backoff_max: float = 5.0


class PullSink(Protocol):
    def source(self, source: Source, replaces: str | None) -> None:
        """A track's first frame is about to arrive; it takes over from ``replaces``."""

    def frame(self, source: Source, frame: Frame) -> None: ...

    def lost(self, at: float) -> None:
        """The session broke at monotonic time ``at``; nothing arrives until ``restored``."""

    def restored(self, at: float) -> None:
        """A new session delivers again from monotonic time ``at``."""

    def message(self, publisher_id: str, label: str, message: str | bytes) -> None:
        """A message on one of the upstream's data channels."""


def make_upstream(source: PullSource, http: aiohttp.ClientSession, outbound: Outbound,
                  recording_id: str) -> Upstream:
    """`outbound` checks the user's WHEP URLs; `http` serves the operator's Cloudflare API."""
    match source:
        case WhepSource():
            return WhepUpstream(source.url, source.token, outbound, recording_id)
        case CloudflarePull():
            api = CloudflareApi(http, source.api_base, source.app_id, source.app_secret,
                                recording_id)
            return CloudflareUpstream(api, source.app_id, source.session_id,
                                      source.track_names, source.data_channels)
    raise TypeError(f"unknown pull source {type(source).__name__}")


class Pull:
    def __init__(self, name: str, upstream: Upstream, ice_servers: list[RTCIceServer],
                 sink: PullSink, timing: PullTiming = PullTiming(),
                 clock: Callable[[], float] = time.monotonic, encoded: bool = False) -> None:
        self.name = name  # the recording id: every log line and source id carries it
        self.encoded = encoded  # sessions deliver encoded frames (a `source` recording)
        self.upstream = upstream
        self.sessions_opened = 0
        self._ice_servers = list(ice_servers)
        self._sink = sink
        self._timing = timing
        self._clock = clock
        self._session: UpstreamSession | None = None
        # the newest attempt's peer: it delivers before its session is returned to us
        self._peer: ReceiverPeer | None = None
        self._generation = 0  # attempts: frames of an abandoned attempt are dropped
        self._numbers: dict[int, int] = {}  # attempt -> session number, for source ids
        self._current: dict[tuple[str, int], str] = {}  # (kind, index) -> current source id
        self._sources: dict[tuple[int, str, int], Source] = {}
        self._gap = False
        self._closed = False
        self._watch: asyncio.Task[None] | None = None
        self._endings = BackgroundTasks()

    @property
    def connected(self) -> bool:
        return self._session is not None and not self._session.peer.lost.is_set()

    async def start(self) -> None:
        """Open the first session and wait for its media connection; raises SourceFailed."""
        self._session = await self._open()
        self._watch = asyncio.create_task(self._keep_alive())

    async def close(self) -> None:
        """End the current session upstream and stop reconnecting; safe to call twice."""
        self._closed = True
        self._peer = None
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        await self._endings.wait()

    def request_keyframe(self, source_id: str) -> None:
        """Ask the upstream for a keyframe of this source (a video one of the live session);
        a source of a session already given up has nobody to ask."""
        peer = self._peer
        for (generation, kind, index), source in self._sources.items():
            if source.source_id == source_id:
                if peer is not None and generation == self._generation and kind == "video":
                    peer.request_keyframe(index)
                return

    # ---- sessions -----------------------------------------------------------------------

    async def _open(self) -> UpstreamSession:
        self._generation += 1
        generation = self._generation
        self._numbers = {generation: self.sessions_opened + 1}

        def make_peer(learned: list[RTCIceServer]) -> ReceiverPeer:
            peer = ReceiverPeer(f"recording {self.name}: {self.upstream.label} #{generation}",
                                [*self._ice_servers, *learned],
                                lambda track, frame: self._on_frame(generation, track, frame),
                                encoded=self.encoded)
            peer.on_message = lambda label, message: self._on_message(generation, label,
                                                                      message)
            if generation == self._generation:
                self._peer = peer
            return peer

        session = await self.upstream.open(make_peer)
        try:
            async with asyncio.timeout(self._timing.connect_timeout):
                connected = await session.peer.wait_connected()
        except TimeoutError:
            connected = False
        except BaseException:
            await asyncio.shield(session.close())
            raise
        if not connected:
            await session.close()
            raise SourceFailed(f"{self.upstream.label}: media did not connect within "
                               f"{self._timing.connect_timeout:g} s")
        self.sessions_opened += 1
        logger.info("recording %s: %s connected (session %d)", self.name, self.upstream.label,
                    self.sessions_opened)
        return session

    async def _keep_alive(self) -> None:
        while not self._closed:
            session = self._session
            assert session is not None
            await self._until_broken(session.peer)
            at = self._clock()
            logger.warning("recording %s: %s broke (session %d); reconnecting", self.name,
                           self.upstream.label, self.sessions_opened)
            self._session = None
            self._end(session)
            if not self._gap:
                self._gap = True
                self._sink.lost(at)
            self._session = await self._reconnect()

    async def _until_broken(self, peer: ReceiverPeer) -> None:
        connected_at = self._clock()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(peer.lost.wait(), timeout=1.0)
            if peer.lost.is_set():
                return
            last = peer.last_frame_at if peer.last_frame_at is not None else connected_at
            if self._clock() - max(last, connected_at) >= self._timing.stall_seconds:
                logger.warning("recording %s: no media from %s for %.0f s", self.name,
                               self.upstream.label, self._timing.stall_seconds)
                return

    async def _reconnect(self) -> UpstreamSession:
        delay = self._timing.backoff_first
        attempt = 0
        while True:
            attempt += 1
            wait = delay
            try:
                return await self._open()
            except UpstreamRefused as exc:
                if exc.retry_after is not None:
                    wait = max(exc.retry_after, self._timing.backoff_first)
                logger.info("recording %s: reconnect %d refused: %s", self.name, attempt,
                            exc.detail)
            except SourceFailed as exc:
                logger.info("recording %s: reconnect %d failed: %s", self.name, attempt,
                            exc.detail)
            except Exception:  # keep trying: the recording outlives any one bad attempt
                logger.exception("recording %s: reconnect %d failed", self.name, attempt)
            await asyncio.sleep(wait)
            delay = min(delay * 2, self._timing.backoff_max)

    def _end(self, session: UpstreamSession) -> None:
        """End a broken session upstream in the background: reconnecting must not wait."""
        self._endings.spawn(session.close())

    # ---- frames -------------------------------------------------------------------------

    def _on_message(self, generation: int, label: str, message: str | bytes) -> None:
        if generation == self._generation and not self._closed:
            self._sink.message(self.upstream.publisher_id, label, message)

    def _on_frame(self, generation: int, track: ReceivedTrack, frame: Frame) -> None:
        if self._closed or generation != self._generation:
            return  # a late frame of a session already given up
        source = self._sources.get((generation, track.kind, track.index))
        if source is None:
            if self._gap:
                self._gap = False
                self._sink.restored(self._clock())
            peer = self._peer
            if self.encoded and peer is not None and not any(
                    key[0] == generation for key in self._sources):
                # A passthrough file is made at the first keyframe with the streams its
                # sources announce by then: the session's audio, whose first frame aiortc's
                # jitter buffer holds back, must not come too late to have one.
                for other in peer.tracks:
                    if (other.kind, other.index) != (track.kind, track.index):
                        self._announce(generation, other)
            source = self._announce(generation, track)
        self._sink.frame(source, frame)

    def _announce(self, generation: int, track: ReceivedTrack) -> Source:
        key = (generation, track.kind, track.index)
        source = self._sources.get(key)
        if source is not None:
            return source
        suffix = "" if track.index == 1 else f"-{track.index}"
        number = self._numbers.get(generation, generation)
        source = Source(f"{self.name}/{number}/{track.kind}{suffix}", self.name,
                        self.upstream.publisher_id, "camera", track.kind, track.codec)
        self._sources[key] = source
        replaces = self._current.get((track.kind, track.index))
        self._current[(track.kind, track.index)] = source.source_id
        self._sink.source(source, replaces)
        return source
