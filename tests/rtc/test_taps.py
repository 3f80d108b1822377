"""The hooks into aiortc's private receiver, each proved against real aiortc peers.

If aiortc changes under a hook, one of these fails: the version pin, encoded frames (and
no decoding), the keyframe request, the sender reports.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import cast

import aiortc
import pytest
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCSessionDescription, rtcrtpreceiver
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtp import RtcpSenderInfo, RtcpSrPacket

from recorder.media.encoded import EncodedFrame
from recorder.rtc import taps
from recorder.rtc.taps import ReceiverTap
from tests.support.publisher import SyntheticPublisher

WAIT = 60.0  # a hang guard, not a measurement


@dataclass
class Received:
    frames: dict[str, list[EncodedFrame]] = field(default_factory=dict)
    decoded: dict[str, int] = field(default_factory=dict)
    taps: dict[str, taps.ReceiverTap] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def until(self, kind: str, count: int) -> list[EncodedFrame]:
        async def wait() -> list[EncodedFrame]:
            while len(self.frames.get(kind, [])) < count:
                self.changed.clear()
                await self.changed.wait()
            return self.frames[kind]
        return await asyncio.wait_for(wait(), WAIT)


@pytest.fixture
async def received() -> AsyncIterator[Received]:
    """A publisher (VP8 + Opus) and a receiving peer whose tracks deliver encoded frames."""
    taps.install()
    publisher = SyntheticPublisher((320, 180), 15)
    receiver = RTCPeerConnection()
    got = Received()
    tasks: list[asyncio.Task[None]] = []

    async def drain(track: MediaStreamTrack) -> None:
        while True:
            frame = await track.recv()
            if isinstance(frame, EncodedFrame):
                got.frames.setdefault(track.kind, []).append(frame)
            else:
                got.decoded[track.kind] = got.decoded.get(track.kind, 0) + 1
            got.changed.set()

    @receiver.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        transceiver = next(t for t in receiver.getTransceivers() if t.receiver.track is track)
        tap = taps.tap_of(transceiver.receiver)
        tap.set_demand(decoded=False, encoded=True)
        got.taps[track.kind] = tap
        tasks.append(asyncio.ensure_future(drain(track)))

    await receiver.setRemoteDescription(
        RTCSessionDescription(await publisher.offer(), "offer"))
    await receiver.setLocalDescription(await receiver.createAnswer())
    await publisher.accept(receiver.localDescription.sdp)
    await publisher.wait_connected()
    yield got
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await publisher.close()
    await receiver.close()


def test_another_aiortc_version_is_refused_at_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rtcrtpreceiver, "get_decoder", taps._original_get_decoder)
    monkeypatch.setattr(aiortc, "__version__", "1.17.0")
    with pytest.raises(taps.UnsupportedAiortc, match=r"1\.17\.0"):
        taps.install()


async def test_encoded_frames_come_out_and_nothing_is_decoded(received: Received) -> None:
    video = await received.until("video", 30)
    audio = await received.until("audio", 50)
    assert received.decoded == {}
    assert all(t.decoders_made == 0 for t in received.taps.values())
    assert {f.codec for f in video} == {"vp8"}
    assert {f.codec for f in audio} == {"opus"}
    assert video[0].keyframe  # the sender's first picture
    assert not all(f.keyframe for f in video)
    stamps = [f.timestamp for f in video]
    assert stamps == sorted(stamps)
    assert stamps[0] == 0
    # 15 fps on the 90 kHz clock: the sender's spacing survives
    assert (stamps[-1] - stamps[0]) / (len(stamps) - 1) == pytest.approx(6000, rel=0.05)


async def test_decoding_comes_back_when_asked_for(received: Received) -> None:
    await received.until("video", 5)
    received.taps["video"].set_demand(decoded=True, encoded=True)

    async def decoded() -> None:
        while received.decoded.get("video", 0) < 5:
            received.changed.clear()
            await received.changed.wait()

    await asyncio.wait_for(decoded(), WAIT)
    assert received.taps["video"].decoders_made == 1


async def test_a_keyframe_request_brings_a_keyframe(received: Received) -> None:
    video = await received.until("video", 20)
    keys = sum(f.keyframe for f in video)
    received.taps["video"].request_keyframe()
    count = len(video)
    later = await received.until("video", count + 20)
    assert sum(f.keyframe for f in later[count:]) >= 1
    assert keys == sum(f.keyframe for f in later[:count])


async def test_sender_reports_put_audio_and_video_on_the_senders_clock(
        received: Received) -> None:
    await received.until("video", 45)  # 3 s: aiortc sends an SR every 0.5..1.5 s
    video = [f for f in await received.until("video", 60) if f.ntp is not None]
    audio = [f for f in await received.until("audio", 150) if f.ntp is not None]
    assert received.taps["video"].sender_reports > 0
    assert video
    assert audio
    # the publisher stamps both tracks from one clock starting at 0: NTP minus RTP time is
    # one constant per track, and the same for both up to the encoders' delay
    v_offsets = [f.ntp - f.seconds for f in video if f.ntp is not None]
    a_offsets = [f.ntp - f.seconds for f in audio if f.ntp is not None]
    assert max(v_offsets) - min(v_offsets) < 0.02
    assert max(a_offsets) - min(a_offsets) < 0.02
    assert abs(v_offsets[-1] - a_offsets[-1]) < 0.1


async def test_encoded_only_frames_skip_the_decoder_thread(received: Received) -> None:
    await received.until("video", 30)
    await received.until("audio", 50)
    assert {kind: tap.thread_frames for kind, tap in received.taps.items()} == {
        "video": 0, "audio": 0}


async def test_frames_sent_through_aiortcs_decoder_thread_come_out_undecoded(
        received: Received) -> None:
    for tap in received.taps.values():  # as bench.replay's aiortc-path bound does
        tap.route = tap.to_thread  # type: ignore[method-assign]
    before = {kind: len(await received.until(kind, 1)) for kind in ("video", "audio")}
    frames = {kind: len(await received.until(kind, before[kind] + 20)) - before[kind]
              for kind in ("video", "audio")}
    thread = {kind: received.taps[kind].thread_frames for kind in ("video", "audio")}
    assert all(thread[kind] >= frames[kind] for kind in frames), (thread, frames)
    assert received.decoded == {}  # undecoded all the same


async def test_frames_stay_in_order_when_decoding_comes_and_goes(received: Received) -> None:
    video = received.taps["video"]
    for decoded in (True, False, True, False):
        count = len(await received.until("video", 1))
        video.set_demand(decoded=decoded, encoded=True)
        await received.until("video", count + 10)
    assert video.thread_frames > 0  # some went through the thread, some around it
    stamps = [f.timestamp for f in received.frames["video"]]
    assert stamps == sorted(set(stamps))


def test_sender_reports_measure_a_microphone_clock_off_its_nominal_rate() -> None:
    # a microphone 0.5 % fast: its reports pair 48,240 RTP ticks with each NTP second
    # (the RTP time wraps on the way); before they span a few seconds the nominal rate
    tap = ReceiverTap(cast(RTCRtpReceiver, object()))
    for k in range(12):
        ntp = 3_900_000_000 + k * 1.0
        rtp = (4_294_000_000 + k * 48_240) & 0xFFFFFFFF
        stamp = (int(ntp) << 32) | int((ntp % 1) * 2**32)
        tap.note_sender_report(RtcpSrPacket(ssrc=1, sender_info=RtcpSenderInfo(
            ntp_timestamp=stamp, rtp_timestamp=rtp, packet_count=k, octet_count=k)))
        if k == 1:
            assert tap.rate(48_000) == 48_000
    assert tap.rate(48_000) == pytest.approx(48_240)


def test_a_sender_report_sent_late_does_not_move_the_frames() -> None:
    # reports once a second of a clock on time; the latest went out 0.2 s late (a busy
    # sender stamps the time it sent it): frames keep the time the others give them
    class Mapper:
        _origin = 0

    class Receiver:
        _RTCRtpReceiver__timestamp_mapper = Mapper()

    tap = ReceiverTap(cast(RTCRtpReceiver, Receiver()))
    for k in range(8):
        ntp = 3_900_000_000 + k + (0.2 if k == 7 else 0.0)
        stamp = (int(ntp) << 32) | int((ntp % 1) * 2**32)
        tap.note_sender_report(RtcpSrPacket(ssrc=1, sender_info=RtcpSenderInfo(
            ntp_timestamp=stamp, rtp_timestamp=k * 48_000, packet_count=k, octet_count=k)))
    frame = tap.frame("opus", 48_000, "audio", type("J", (), {"data": b"\xf8", "timestamp":
                                                                  48_000 * 6 + 960})())
    assert frame.ntp == pytest.approx(3_900_000_006.02, abs=0.005)


def test_a_sender_report_before_the_first_packet_is_ignored() -> None:
    # aiortc's first report may come before any packet: NTP 0, RTP 0. It must neither
    # map frames nor spoil the rate the later reports measure.
    class Mapper:
        _origin = 0

    class Receiver:
        _RTCRtpReceiver__timestamp_mapper = Mapper()

    tap = ReceiverTap(cast(RTCRtpReceiver, Receiver()))
    tap.note_sender_report(RtcpSrPacket(ssrc=1, sender_info=RtcpSenderInfo(
        ntp_timestamp=0, rtp_timestamp=0, packet_count=0, octet_count=0)))
    for k in range(1, 8):
        ntp = 3_900_000_000 + k
        tap.note_sender_report(RtcpSrPacket(ssrc=1, sender_info=RtcpSenderInfo(
            ntp_timestamp=ntp << 32, rtp_timestamp=k * 48_240, packet_count=k,
            octet_count=k)))
    assert tap.rate(48_000) == pytest.approx(48_240)
    frame = tap.frame("opus", 48_000, "audio", type("J", (), {"data": b"\xf8", "timestamp":
                                                                  48_240 * 7})())
    assert frame.ntp == pytest.approx(3_900_000_007, abs=0.001)


class _EveryPacket:
    """An estimator that asks for a REMB at every packet, as aiortc's does while overusing."""

    def __init__(self) -> None:
        self.seen = 0

    def add(self, arrival_time_ms: int, abs_send_time: int, payload_size: int, ssrc: int
            ) -> tuple[int, list[int]]:
        self.seen += 1
        return 1_000_000, [ssrc]


def test_rembs_go_at_most_every_200_ms_and_the_estimator_sees_every_packet() -> None:
    inner = _EveryPacket()
    throttled = taps._ThrottledEstimator(inner)
    sent = [ms for ms in range(1000)
            if throttled.add(arrival_time_ms=ms, abs_send_time=0, payload_size=1200, ssrc=7)]
    assert sent == [0, 200, 400, 600, 800]
    assert inner.seen == 1000


async def test_a_video_receivers_rembs_are_throttled(received: Received) -> None:
    await received.until("video", 5)
    video = received.taps["video"]._receiver
    estimator = taps._private(video, "remote_bitrate_estimator")
    assert isinstance(estimator, taps._ThrottledEstimator)
