"""``quality: source`` through a room: real aiortc publishers on loopback, files decoded.

The publishers send a flash and a beep at known times, so the A/V offset of a file is
measured, not assumed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from recorder.core.presets import Format, Layout, Quality
from recorder.media.repair import recover_file
from recorder.room.messages import (
    CaptureFinished,
    PauseCapture,
    ResumeCapture,
    StartCapture,
    StopCapture,
    TrackAdded,
)
from recorder.rtc.taps import ReceiverTap
from tests.rtc.conftest import Room
from tests.support.file_analysis import probe
from tests.support.publisher import SyntheticPublisher

MakeRoom = Callable[..., Room]
FLASHES = (2.0, 4.0)


def start(tmp_path: Path, rid: str, fmt: Format, quality: Quality = Quality.SOURCE,
          layout: Layout = Layout.COMPOSITE) -> StartCapture:
    return StartCapture(rid, str(tmp_path / rid), f"recording_{rid}.{fmt.value}", fmt,
                        quality, layout)


def taps_of(room: Room) -> list[ReceiverTap]:
    peers = list(room.session._peers.values())
    return list({id(t): t for p in peers for t in p._taps.values()}.values())


async def publish(room: Room, codec: str = "VP8", size: tuple[int, int] = (640, 360),
                  fps: int = 15) -> SyntheticPublisher:
    publisher = SyntheticPublisher(size, fps, video_codec=codec, markers=FLASHES)
    await room.publish("s1", publisher)
    await room.log.wait_for(TrackAdded, count=2)
    return publisher


async def finish(room: Room, rid: str) -> CaptureFinished:
    await room.session.handle(StopCapture(rid))
    found = await room.log.wait_for(CaptureFinished, lambda e: e.recording_id == rid)
    return found[0]


async def test_vp8_into_webm_is_written_as_received_without_decoding(
        make_room: MakeRoom, tmp_path: Path) -> None:
    room = make_room()
    publisher = await publish(room)
    await room.session.handle(start(tmp_path, "r1", Format.WEBM))
    await asyncio.sleep(0.5)
    decoded_before = sum(t.decoded_frames for t in taps_of(room))
    assert publisher.video is not None
    sent_before = publisher.video.frames_sent
    await asyncio.sleep(5.5)
    sent = publisher.video.frames_sent - sent_before
    decoded = sum(t.decoded_frames for t in taps_of(room)) - decoded_before
    done = await finish(room, "r1")

    path = Path(done.files[0].path)
    p = probe(path)
    assert (p.video_codec, p.audio_codec) == ("vp8", "opus")
    assert (p.width, p.height) == (640, 360)
    assert decoded == 0  # nothing was decoded while only `source` recorded
    assert p.keyframes
    assert p.keyframes[0] == pytest.approx(p.frame_times[0], abs=0.001)
    assert abs(len(p.frame_times) - sent) <= 15  # start/stop edges, not lost pictures
    assert p.duration == pytest.approx(done.duration_seconds, abs=0.3)
    flash = p.first_bright(150, after=3.0)  # sender reports of both tracks are in by then
    beep = p.onset(flash - 0.5, flash + 0.5)
    assert abs(flash - beep) <= 0.04
    assert done.frames.dropped == 0
    assert done.frames.written == done.frames.received > 0


async def test_pause_cuts_the_span_and_the_file_resumes_on_a_keyframe(
        make_room: MakeRoom, tmp_path: Path) -> None:
    room = make_room()
    await publish(room)
    await room.session.handle(start(tmp_path, "r2", Format.WEBM))
    await asyncio.sleep(2.5)
    await room.session.handle(PauseCapture("r2"))
    await asyncio.sleep(2.0)  # the flash at 4.0 s falls in the pause
    await room.session.handle(ResumeCapture("r2"))
    await asyncio.sleep(2.0)
    done = await finish(room, "r2")

    p = probe(Path(done.files[0].path), cuts=1)  # the sound is cut where the pause was
    assert p.duration == pytest.approx(done.duration_seconds, abs=0.3)
    assert done.duration_seconds == pytest.approx(4.5, abs=0.6)  # 6.5 s less the 2 s cut
    gaps = [b - a for a, b in zip(p.frame_times, p.frame_times[1:], strict=False)]
    assert max(gaps) < 0.5  # the timeline goes on where the pause began
    resumed = [t for t in p.keyframes if t > 1.5]
    assert resumed, "the span after the resume starts on a keyframe"
    assert max(p.lumas) < 150 or p.first_bright(150) < 2.6  # only the first flash is in


@pytest.mark.parametrize(("fmt", "video", "audio"), [(Format.MP4, "h264", "aac"),
                                                     (Format.MKV, "h264", "opus")])
async def test_h264_is_muxed_as_received_with_the_formats_audio(
        make_room: MakeRoom, tmp_path: Path, fmt: Format, video: str, audio: str) -> None:
    room = make_room()
    await publish(room, codec="H264", size=(480, 270))
    await room.session.handle(start(tmp_path, "r3", fmt))
    await asyncio.sleep(5.0)
    done = await finish(room, "r3")

    path = Path(done.files[0].path)
    p = probe(path)
    assert (p.video_codec, p.audio_codec) == (video, audio)
    assert (p.width, p.height) == (480, 270)
    assert p.keyframes[0] == pytest.approx(p.frame_times[0], abs=0.001)
    flash = p.first_bright(150, after=3.0)  # sender reports of both tracks are in by then
    assert abs(flash - p.onset(flash - 0.5, flash + 0.5)) <= 0.04
    assert p.duration == pytest.approx(done.duration_seconds, abs=0.3)
    assert done.frames.dropped == 0


async def test_h264_into_webm_is_transcoded_to_vp8_at_its_own_size(
        make_room: MakeRoom, tmp_path: Path) -> None:
    room = make_room()
    await publish(room, codec="H264", size=(480, 270))
    await room.session.handle(start(tmp_path, "r4", Format.WEBM))
    await asyncio.sleep(5.0)
    done = await finish(room, "r4")

    p = probe(Path(done.files[0].path))
    assert (p.video_codec, p.audio_codec) == ("vp8", "opus")
    assert (p.width, p.height) == (480, 270)
    assert p.duration == pytest.approx(done.duration_seconds, abs=0.3)
    flash = p.first_bright(150, after=3.0)
    assert abs(flash - p.onset(flash - 0.5, flash + 0.5)) <= 0.04


async def test_tracks_layout_writes_one_file_per_publisher_named_like_transcoded_ones(
        make_room: MakeRoom, tmp_path: Path) -> None:
    room = make_room()
    await publish(room)
    await room.session.handle(start(tmp_path, "r5", Format.WEBM, layout=Layout.TRACKS))
    await asyncio.sleep(3.0)
    done = await finish(room, "r5")
    assert [Path(f.path).name for f in done.files] == ["user-1.webm"]
    p = probe(Path(done.files[0].path))
    assert (p.width, p.height) == (640, 360)


async def test_a_medium_and_a_source_recording_run_together(
        make_room: MakeRoom, tmp_path: Path) -> None:
    room = make_room()
    await publish(room)
    await room.session.handle(start(tmp_path, "src", Format.WEBM))
    await room.session.handle(start(tmp_path, "low", Format.WEBM, Quality.LOW))
    await asyncio.sleep(3.0)
    decoded = sum(t.decoded_frames for t in taps_of(room))
    source, low = await finish(room, "src"), await finish(room, "low")
    assert decoded > 0  # the `low` recording needs pictures
    assert (probe(Path(source.files[0].path)).width,
            probe(Path(low.files[0].path)).width) == (640, 854)


async def test_a_file_cut_short_by_a_kill_is_recovered_losing_at_most_2_s(
        make_room: MakeRoom, tmp_path: Path) -> None:
    room = make_room()
    await publish(room)
    await room.session.handle(start(tmp_path, "r6", Format.WEBM))
    await asyncio.sleep(4.0)
    run = room.session._runs["r6"]
    path = tmp_path / "r6" / "recording_r6.webm"
    media = run.capture.media_seconds
    # what a SIGKILL leaves: the bytes written so far, without trailer
    killed = tmp_path / "killed.webm"
    killed.write_bytes(path.read_bytes())
    await finish(room, "r6")
    recovered = recover_file(killed)
    assert recovered.duration_seconds >= media - 2.0
    assert recovered.video_seconds > 0
    assert recovered.audio_seconds > 0
