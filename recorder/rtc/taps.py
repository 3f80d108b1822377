"""Hooks into aiortc's private receiver: encoded frames, keyframe requests, sender reports.

aiortc has no public way to read a track's encoded frames, to ask a sender for a keyframe
or to see its RTCP sender reports, and ``source`` recordings need all three. These hooks
are pinned to aiortc ``SUPPORTED_AIORTC`` (checked at :func:`install`, which refuses any
other version loudly) and each is proved by tests/rtc/test_taps.py:

- the decoder lookup: ``rtcrtpreceiver.get_decoder`` is what ``decoder_worker`` calls in a
  receiver's decoder thread. It returns a :class:`_TapDecoder` that hands each reassembled
  frame (as an :class:`EncodedFrame`) into the track's queue, beside or instead of the
  decoded frames, so it reaches ``track.recv()`` in order with them. The wrapped decoder
  is only made while someone wants decoded frames: a room whose recordings are all
  ``source`` decodes nothing. aiortc rebases RTP timestamps to the track's first frame
  before the decoder sees them; the tap adds the origin back to relate a frame to the
  sender reports.
- the decoder queue (``RTCRtpReceiver.__decoder_queue``, what the event loop puts each
  reassembled frame in for that thread): while nobody wants decoded frames and the thread
  holds none, a frame goes straight from the loop into the track's queue instead. Two
  thread hand-overs per frame (loop -> decoder thread -> loop) are what a passthrough
  stream would otherwise pay most for, above all in a room process with one stream whose
  loop sleeps between packets. The thread's own outputs come back through the tap too
  (:meth:`ReceiverTap.delivered`), so the queue sees every frame in arrival order when the
  demand changes.
- ``RTCRtpReceiver._send_rtcp_pli``: :meth:`ReceiverTap.request_keyframe` calls it; the
  hook counts the PLIs aiortc sends on its own (a picture was lost), which frames carry
  as ``losses`` so a passthrough file skips pictures until the keyframe that mends it.
- ``RTCRtpReceiver.__remote_bitrate_estimator`` (a video receiver's REMB estimator) is
  wrapped in a :class:`_ThrottledEstimator`: aiortc sends a REMB for every packet while its
  delay detector says "overusing", which a busy worker's own scheduling jitter makes it say
  (in a profile of two loaded workers at 12 streams, 14 % of their samples were REMB
  sends). REMBs now go at most every 200 ms, as libwebrtc sends them.
- ``RTCRtpReceiver._handle_rtcp_packet``: sender reports (NTP <-> RTP) are noted so each
  frame carries the sender's wall time (``ntp``), which aligns a sender's audio and video.
  The reports also give the RTP clock's true rate (a microphone's clock may run 0.5 %
  off its nominal 48 kHz), which the conversion uses once they span a few seconds.
  Decoded frames carry it too, as a :class:`recorder.media.clock.SenderTime` in PyAV's
  ``frame.opaque`` (their pts are the same rebased RTP time).

``RTCRtpReceiver.receive`` is wrapped too, only to label the decoder thread with its tap.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import queue
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Final

import aiortc
import av
from aiortc import RTCRtpReceiver, rtcrtpreceiver
from aiortc.rtp import RtcpSrPacket

from recorder.media.clock import SenderTime
from recorder.media.encoded import EncodedFrame, is_keyframe

logger = logging.getLogger(__name__)

SUPPORTED_AIORTC: Final = ("1.16.0",)
_TAP: Final = "_recorder_tap"  # attribute on a receiver and on its decoder thread
REMB_INTERVAL_MS: Final = 200  # libwebrtc's REMB throttle
RATE_BASELINE_SECONDS: Final = 2.0  # sender reports this far apart measure the RTP rate
MAX_RATE_ERROR: Final = 0.02
MAX_REPORT_GAP_SECONDS: Final = 60.0
RECENT_REPORTS: Final = 8  # about 8 s of reports: the least late of them maps frames
_HOOKED: Final = "_recorder_hooked"  # marks our wrappers, so install() is idempotent
_SEAM: Final = "get_decoder"  # what decoder_worker calls (not exported by aiortc)
_PRIVATE: Final = ("timestamp_mapper", "decoder_thread", "decoder_queue", "decoder_error",
                   "rtx_ssrc", "remote_bitrate_estimator")


def _private(receiver: RTCRtpReceiver, name: str) -> Any:
    """A name-mangled attribute of aiortc's receiver (checked to exist at its start)."""
    return getattr(receiver, f"_RTCRtpReceiver__{name}")


def _set_private(receiver: RTCRtpReceiver, name: str, value: Any) -> None:
    setattr(receiver, f"_RTCRtpReceiver__{name}", value)


class UnsupportedAiortc(RuntimeError):
    """The installed aiortc is not one these hooks were written and tested against."""


class ReceiverTap:
    """What one receiver's consumers want of it, and what it saw of its sender."""

    def __init__(self, receiver: RTCRtpReceiver) -> None:
        self._receiver = receiver
        self.decode = True  # aiortc's own behaviour until told otherwise
        self.encoded = False
        self.losses = 0  # PLIs aiortc sent on its own: pictures it lost
        self.sender_reports = 0
        self.decoders_made = 0
        self.decoded_frames = 0
        self.thread_frames = 0  # frames handed to aiortc's decoder thread
        self._in_thread = 0  # handed to it, their outputs not in the track's queue yet
        self._loop: asyncio.AbstractEventLoop | None = None
        self._output: asyncio.Queue[Any] | None = None  # the track's queue
        self._report: tuple[int, float] | None = None  # (RTP timestamp, NTP seconds)
        # RTP ticks and NTP seconds from the first report of this timeline to the latest:
        # the sender's RTP clock rate by its own wall clock (a microphone may be 0.5 % off)
        self._span: tuple[int, float] = (0, 0.0)
        # the latest reports as (ticks since the first, RTP time, NTP seconds); the one
        # sent least late maps frames (see _reference)
        self._reports: deque[tuple[int, int, float]] = deque(maxlen=RECENT_REPORTS)
        self._reference_of: tuple[int, tuple[int, float]] | None = None  # (rate, report)
        self._requests: set[asyncio.Future[None]] = set()

    def attach(self, loop: asyncio.AbstractEventLoop, output: asyncio.Queue[Any]) -> None:
        """The receiver started: its loop, and the queue its track reads."""
        self._loop, self._output = loop, output

    def route(self, thread_queue: queue.Queue[Any], codec: Any, jitter_frame: Any) -> None:
        """One reassembled frame, on the event loop: straight into the track's queue as an
        EncodedFrame when nothing is to be decoded and the thread holds no earlier frame
        (order), else to the decoder thread as aiortc does."""
        if self.decode or self._in_thread or self._output is None:
            self.to_thread(thread_queue, codec, jitter_frame)
        elif self.encoded:
            self._output.put_nowait(self.frame(*_describe(codec), jitter_frame))

    def to_thread(self, thread_queue: queue.Queue[Any], codec: Any, jitter_frame: Any) -> None:
        """aiortc's own way: the frame goes to its decoder thread."""
        self._in_thread += 1
        self.thread_frames += 1
        thread_queue.put((codec, jitter_frame))

    def hand_back(self, frames: list[Any]) -> None:
        """What the decoder thread made of one frame (maybe nothing); in that thread."""
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self.delivered, frames)

    def delivered(self, frames: list[Any]) -> None:
        """On the loop, in the order the thread finished them."""
        self._in_thread -= 1
        assert self._output is not None
        for frame in frames:
            self._output.put_nowait(frame)

    def set_demand(self, decoded: bool, encoded: bool) -> None:
        """Which frames the track's reader wants; on the event loop."""
        resumed = decoded and not self.decode
        self.decode, self.encoded = decoded, encoded
        if resumed:  # a fresh decoder starts on a keyframe
            self.request_keyframe()

    def request_keyframe(self) -> None:
        """Send a PLI for each media SSRC the receiver hears; on the event loop."""
        rtx: dict[int, int] = _private(self._receiver, "rtx_ssrc")
        for source in self._receiver.getSynchronizationSources():
            if source.source not in rtx:
                request = asyncio.ensure_future(_original_pli(self._receiver, source.source))
                self._requests.add(request)
                request.add_done_callback(self._requests.discard)

    def note_sender_report(self, packet: RtcpSrPacket) -> None:
        stamp = packet.sender_info.ntp_timestamp
        if stamp == 0:  # aiortc reports before its first packet: it maps nothing
            return
        rtp, ntp = packet.sender_info.rtp_timestamp, (stamp >> 32) + (stamp & 0xFFFFFFFF) / 2**32
        previous = self._report
        if previous is not None:
            ticks = (rtp - previous[0]) & 0xFFFFFFFF
            if ticks >= 1 << 31:
                ticks -= 1 << 32
            span = (self._span[0] + ticks, self._span[1] + ntp - previous[1])
            seconds = ntp - previous[1]
            if seconds <= 0 or ticks < 0 or seconds > MAX_REPORT_GAP_SECONDS:
                span = (0, 0.0)  # a new timeline, or one we cannot follow: start over
                self._reports.clear()
            self._span = span
        self._report = (rtp, ntp)
        self._reports.append((self._span[0], rtp, ntp))
        self._reference_of = None
        self.sender_reports += 1

    def _reference(self, clock_rate: int) -> tuple[int, float] | None:
        """The recent report sent least late for its RTP time. A sender stamps a report
        with the time it went out, which a busy sender makes late; by the RTP clock's
        rate the least late of the last few is the truest, and it maps every frame."""
        cached = self._reference_of
        if cached is not None and cached[0] == clock_rate:
            return cached[1]
        if not self._reports:
            return None
        rate = self.rate(clock_rate)
        _, rtp, ntp = min(self._reports, key=lambda r: r[2] - r[0] / rate)
        self._reference_of = (clock_rate, (rtp, ntp))
        return rtp, ntp

    def rate(self, clock_rate: int) -> float:
        """RTP ticks per second of the sender's wall clock, by its reports (the nominal
        rate until they span a few seconds, or when they disagree with it by over 2 %)."""
        ticks, seconds = self._span
        if seconds < RATE_BASELINE_SECONDS:
            return float(clock_rate)
        measured = ticks / seconds
        return measured if abs(measured / clock_rate - 1) <= MAX_RATE_ERROR else float(clock_rate)

    def frame(self, codec: str, clock_rate: int, kind: str, jitter_frame: Any) -> EncodedFrame:
        """The reassembled frame as an EncodedFrame (on the loop or in the decoder thread)."""
        data: bytes = jitter_frame.data
        rebased: int = jitter_frame.timestamp
        return EncodedFrame(kind, codec, data, rebased, clock_rate, is_keyframe(codec, data),
                            self._ntp(rebased, clock_rate), self.losses)

    def stamp(self, frame: Any, clock_rate: int) -> None:
        """Put the sender's wall time of a decoded frame in its ``opaque``; in the decoder
        thread. Its pts are the rebased RTP time its packet had."""
        pts, time_base = frame.pts, frame.time_base
        if pts is None or time_base is None:
            return
        ntp = self._ntp(round(pts * time_base * clock_rate), clock_rate)
        if ntp is not None:
            frame.opaque = SenderTime(ntp)

    def _ntp(self, rebased: int, clock_rate: int) -> float | None:
        report = self._reference(clock_rate)
        origin: int | None = _private(self._receiver, "timestamp_mapper")._origin
        if report is None or origin is None:
            return None
        rtp, ntp = report
        # the report's RTP time, rebased like the frame's and unfolded next to it
        delta = (rtp - origin - rebased) & 0xFFFFFFFF
        if delta >= 1 << 31:
            delta -= 1 << 32
        return float(ntp - delta / self.rate(clock_rate))

    def decode_failed(self) -> None:
        """Tell aiortc, as its own decoder loop would: it sends a PLI for video."""
        _private(self._receiver, "decoder_error").set()


class _TapDecoder:
    """A receiver's decoder as aiortc sees it: encoded frames out, decoded ones on demand."""

    def __init__(self, tap: ReceiverTap, codec: Any) -> None:
        self._tap = tap
        self._codec = codec
        self._name, self._clock_rate, self._kind = _describe(codec)
        self._inner: Any = None

    def decode(self, jitter_frame: Any) -> list[Any]:
        """Hands its frames back through the tap; aiortc gets nothing to deliver itself."""
        out: list[Any] = []
        try:
            self._decode(jitter_frame, out)
        finally:
            self._tap.hand_back(out)
        return []

    def _decode(self, jitter_frame: Any, out: list[Any]) -> None:
        tap = self._tap
        if tap.encoded:
            out.append(tap.frame(self._name, self._clock_rate, self._kind, jitter_frame))
        if not tap.decode:
            self._inner = None  # free it; a new one starts at the next keyframe
            return
        if self._inner is None:
            self._inner = _original_get_decoder(self._codec)
            tap.decoders_made += 1
        try:
            frames = self._inner.decode(jitter_frame)
        except av.FFmpegError as exc:
            logger.warning("%s: a %s frame did not decode: %s", self._kind, self._name, exc)
            tap.decode_failed()
            return
        tap.decoded_frames += len(frames)
        for frame in frames:
            tap.stamp(frame, self._clock_rate)
        out.extend(frames)


def _describe(codec: Any) -> tuple[str, int, str]:
    """(codec name, clock rate, kind) of aiortc's RTCRtpCodecParameters."""
    return str(codec.name).lower(), int(codec.clockRate), str(codec.mimeType).split("/")[0].lower()


class _TapQueue:
    """Stands in for a receiver's decoder queue: frames go through :meth:`ReceiverTap.route`,
    the end-of-stream None straight to the thread."""

    def __init__(self, tap: ReceiverTap, thread_queue: queue.Queue[Any]) -> None:
        self._tap = tap
        self._thread_queue = thread_queue

    def put(self, item: Any) -> None:
        if item is None:
            self._thread_queue.put(None)
        else:
            self._tap.route(self._thread_queue, *item)


def tap_of(receiver: RTCRtpReceiver) -> ReceiverTap:
    """The receiver's tap, made on first use (before or after the receiver starts)."""
    tap: ReceiverTap | None = getattr(receiver, _TAP, None)
    if tap is None:
        tap = ReceiverTap(receiver)
        setattr(receiver, _TAP, tap)
    return tap


def install() -> None:
    """Put the hooks in place (once per process); UnsupportedAiortc on another aiortc."""
    if getattr(getattr(rtcrtpreceiver, _SEAM), _HOOKED, False):
        return
    version = getattr(aiortc, "__version__", "unknown")
    if version not in SUPPORTED_AIORTC:
        raise UnsupportedAiortc(
            f"aiortc {version} is installed; recorder.rtc.taps hooks private code of aiortc "
            f"{', '.join(SUPPORTED_AIORTC)} only: check the hooks and pin the new version")
    for name in (_SEAM, "decoder_worker"):
        if not callable(getattr(rtcrtpreceiver, name, None)):
            raise UnsupportedAiortc(f"aiortc.rtcrtpreceiver.{name} is missing")
    for name in ("receive", "_handle_rtcp_packet", "_send_rtcp_pli"):
        if not callable(getattr(RTCRtpReceiver, name, None)):
            raise UnsupportedAiortc(f"aiortc RTCRtpReceiver.{name} is missing")
    setattr(rtcrtpreceiver, _SEAM, _hooked(_get_decoder))
    RTCRtpReceiver.receive = _hooked(_receive)  # type: ignore[method-assign]
    RTCRtpReceiver._handle_rtcp_packet = _hooked(_handle_rtcp_packet)  # type: ignore[method-assign]
    RTCRtpReceiver._send_rtcp_pli = _hooked(_send_rtcp_pli)  # type: ignore[method-assign]
    logger.info("aiortc %s receiver hooks installed", version)


def _hooked(function: Callable[..., Any]) -> Any:
    setattr(function, _HOOKED, True)
    return function


# The originals, bound when this module is imported (before install() replaces them).
_original_get_decoder: Callable[[Any], Any] = getattr(rtcrtpreceiver, _SEAM)
_original_receive = RTCRtpReceiver.receive
_original_rtcp = RTCRtpReceiver._handle_rtcp_packet
_original_pli: Callable[[RTCRtpReceiver, int], Awaitable[None]] = RTCRtpReceiver._send_rtcp_pli


def _get_decoder(codec: Any) -> Any:
    tap: ReceiverTap | None = getattr(threading.current_thread(), _TAP, None)
    if tap is None:  # a receiver nobody tapped (no decoder thread label): aiortc's own
        return _original_get_decoder(codec)
    return _TapDecoder(tap, codec)


@functools.wraps(_original_receive)
async def _receive(self: RTCRtpReceiver, parameters: Any) -> None:
    await _original_receive(self, parameters)
    for name in _PRIVATE:
        if not hasattr(self, f"_RTCRtpReceiver__{name}"):
            raise UnsupportedAiortc(f"aiortc RTCRtpReceiver has no {name} any more")
    thread = _private(self, "decoder_thread")
    if thread is not None and self._track is not None:
        tap = tap_of(self)
        setattr(thread, _TAP, tap)
        tap.attach(asyncio.get_running_loop(), self._track._queue)
        thread_queue = _private(self, "decoder_queue")
        if not isinstance(thread_queue, _TapQueue):  # receive() may be called again
            _set_private(self, "decoder_queue", _TapQueue(tap, thread_queue))
    estimator = _private(self, "remote_bitrate_estimator")
    if estimator is not None and not isinstance(estimator, _ThrottledEstimator):
        _set_private(self, "remote_bitrate_estimator", _ThrottledEstimator(estimator))


class _ThrottledEstimator:
    """aiortc's REMB estimator whose answers (a REMB to send) come at most every
    ``REMB_INTERVAL_MS`` of arrival time; it still sees every packet."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._sent_at: int | None = None

    def add(self, arrival_time_ms: int, abs_send_time: int, payload_size: int, ssrc: int
            ) -> tuple[int, list[int]] | None:
        remb: tuple[int, list[int]] | None = self._inner.add(
            arrival_time_ms=arrival_time_ms, abs_send_time=abs_send_time,
            payload_size=payload_size, ssrc=ssrc)
        if remb is None or (self._sent_at is not None
                            and arrival_time_ms - self._sent_at < REMB_INTERVAL_MS):
            return None
        self._sent_at = arrival_time_ms
        return remb


@functools.wraps(_original_rtcp)
async def _handle_rtcp_packet(self: RTCRtpReceiver, packet: Any) -> None:
    if isinstance(packet, RtcpSrPacket):
        tap_of(self).note_sender_report(packet)
    await _original_rtcp(self, packet)


@functools.wraps(_original_pli)
async def _send_rtcp_pli(self: RTCRtpReceiver, media_ssrc: int) -> None:
    tap_of(self).losses += 1  # aiortc's own request: a picture was lost
    await _original_pli(self, media_ssrc)
