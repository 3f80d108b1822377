"""A/V sync of a transcoded recording when the receiver holds one track back.

aiortc holds audio in its jitter buffer while it passes video on, so a publisher's two
tracks reach the capture after different delays. The capture must place them by the
sender's clock (RTCP sender reports, stamped on the decoded frames by the receiver tap),
not by when they arrived. Here every audio frame reaches the room a fixed ``HOLD`` later
than aiortc decoded it; the flash and the beep the publisher sends together must still be
within the 40 ms of docs/media.md of each other in the file. The stamp itself is checked against the
encoded frame's sender time, so a change in aiortc under the hook shows here first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import av
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from recorder.core.presets import Format, Layout, Quality
from recorder.media.clock import sender_ntp
from recorder.media.encoded import EncodedFrame
from recorder.room.messages import CaptureFinished, StartCapture, StopCapture, TrackAdded
from recorder.rtc import taps
from recorder.rtc.publisher import Frame, Source
from tests.rtc.conftest import Room
from tests.support.file_analysis import probe
from tests.support.publisher import SyntheticPublisher

MakeRoom = Callable[..., Room]
HOLD = 0.2  # far past the 40 ms allowed: arrival-anchored audio would land this late
FLASHES = (4.0, 6.0)  # publisher time; sender reports of both tracks are in by the first
FPS = 24  # the `low` preset's rate: each flash is an output frame of its own
WAIT = 60.0  # a hang guard, not a measurement


def hold_audio(room: Room, seconds: float) -> None:
    """Deliver the room's audio frames ``seconds`` late, video frames at once."""
    session = room.session
    deliver = session._on_frame
    loop = asyncio.get_running_loop()

    def held(source: Source, frame: Frame) -> None:
        if source.kind == "audio":
            loop.call_later(seconds, deliver, source, frame)
        else:
            deliver(source, frame)

    session._on_frame = held  # type: ignore[method-assign]


async def test_audio_held_back_by_the_receiver_stays_in_sync_with_the_picture(
        make_room: MakeRoom, tmp_path: Path) -> None:
    room = make_room()
    hold_audio(room, HOLD)  # before publishing: the peer binds the callback then
    publisher = SyntheticPublisher((640, 360), FPS, markers=FLASHES)
    await room.publish("s1", publisher)
    await room.log.wait_for(TrackAdded, count=2)
    await room.session.handle(StartCapture("r1", str(tmp_path / "r1"), "recording_r1.webm",
                                           Format.WEBM, Quality.LOW, Layout.COMPOSITE))
    await publisher.clock.sleep_until(FLASHES[-1] + 1.0)
    await room.session.handle(StopCapture("r1"))
    [done] = await room.log.wait_for(CaptureFinished, lambda e: e.recording_id == "r1")

    p = probe(Path(done.files[0].path))
    offsets = []
    after = 0.0
    for _ in FLASHES:
        flash = p.first_bright(150, after=after)
        beep = p.onset(flash - 0.5, flash + 0.5)
        offsets.append(flash - beep)
        after = flash + 1.0
    assert all(abs(o) <= 0.04 for o in offsets), offsets
    assert done.frames.dropped == 0


async def test_decoded_frames_carry_the_sender_time_of_their_encoded_frame() -> None:
    taps.install()
    publisher = SyntheticPublisher((320, 180), 15)
    receiver = RTCPeerConnection()
    encoded: dict[int, float | None] = {}  # RTP time (rebased) -> its sender time
    decoded: list[tuple[int, float | None]] = []
    done = asyncio.Event()

    async def drain(track: MediaStreamTrack) -> None:
        while not done.is_set():
            frame = await track.recv()
            if isinstance(frame, EncodedFrame):
                encoded[frame.timestamp] = frame.ntp
            elif isinstance(frame, av.VideoFrame) and frame.pts is not None:
                decoded.append((frame.pts, sender_ntp(frame)))
                if sum(ntp is not None for _, ntp in decoded) >= 20:
                    done.set()

    tasks: list[asyncio.Task[None]] = []

    @receiver.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        if track.kind == "video":
            transceiver = next(t for t in receiver.getTransceivers()
                               if t.receiver.track is track)
            taps.tap_of(transceiver.receiver).set_demand(decoded=True, encoded=True)
            tasks.append(asyncio.ensure_future(drain(track)))

    try:
        await receiver.setRemoteDescription(
            RTCSessionDescription(await publisher.offer(), "offer"))
        await receiver.setLocalDescription(await receiver.createAnswer())
        await publisher.accept(receiver.localDescription.sdp)
        await asyncio.wait_for(done.wait(), WAIT)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await publisher.close()
        await receiver.close()

    stamped = [(pts, ntp) for pts, ntp in decoded if ntp is not None]
    assert len(stamped) >= 20
    for pts, ntp in stamped:  # the encoded frame with that RTP time has the same stamp
        assert encoded[pts] == ntp
