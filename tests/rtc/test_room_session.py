"""A room driven through its message protocol, with real WebRTC on loopback and real files.

Publishers are aiortc peers sending synthetic 640x360 (or smaller) VP8 + Opus; recordings
use the real capture at `low` so a 2-core machine keeps up; files are decoded with PyAV.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import av
import pytest

from recorder.core.errors import InvalidInput, NotFound, Unavailable, Unprocessable
from recorder.core.presets import Format, Quality
from recorder.room.messages import (
    Ack,
    CancelCapture,
    CaptureFailed,
    CaptureFinished,
    CaptureProgress,
    MediaStarted,
    PauseCapture,
    Publish,
    PublisherLeft,
    ResumeCapture,
    StartCapture,
    StopCapture,
    TrackAdded,
    Unpublish,
)
from tests.rtc.conftest import Room
from tests.support.media import probe
from tests.support.publisher import SyntheticPublisher

MakeRoom = Callable[..., Room]


def start(tmp_path: Path, rid: str) -> StartCapture:
    return StartCapture(rid, str(tmp_path / rid), f"recording_{rid}.webm", Format.WEBM,
                        Quality.LOW)


def strip_candidates(sdp: str) -> str:
    """What FFmpeg's WHIP muxer sends: no candidates, the server learns them from checks."""
    return "".join(line for line in sdp.splitlines(keepends=True)
                   if not line.startswith(("a=candidate:", "a=end-of-candidates")))


def luma_by_second(path: Path) -> list[float]:
    """Mean luma of the first frame of every second of the file's video."""
    shades: dict[int, float] = {}
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            second = int(frame.time)
            if second not in shades:
                shades[second] = float(frame.to_ndarray(format="gray").mean())
    return [shades[k] for k in sorted(shades)]


async def media_reaches(room: Room, rid: str, seconds: float) -> CaptureProgress:
    found = await room.log.wait_for(
        CaptureProgress, lambda p: p.recording_id == rid and p.media_seconds >= seconds)
    return found[0]


async def next_progress(room: Room, rid: str) -> CaptureProgress:
    """The first progress report of `rid` emitted from now on."""
    def mine(p: CaptureProgress) -> bool:
        return p.recording_id == rid

    seen = len([p for p in room.log.of(CaptureProgress) if mine(p)])
    found = await room.log.wait_for(CaptureProgress, mine, count=seen + 1)
    return found[-1]


async def test_publisher_is_recorded_to_a_playable_file(make_room: MakeRoom,
                                                        tmp_path: Path) -> None:
    room = make_room()
    await room.publish("s1", SyntheticPublisher((640, 360), fps=15))
    tracks = await room.log.wait_for(TrackAdded, count=2)
    assert sorted((t.track.kind, t.track.codec) for t in tracks) == [
        ("audio", "opus"), ("video", "vp8")]
    assert all(t.session_id == "s1" and t.track.publisher_id == "user-1" for t in tracks)

    assert await room.session.handle(start(tmp_path, "rec-1")) == Ack()
    [started] = await room.log.wait_for(MediaStarted)
    assert started.recording_id == "rec-1"
    assert started.at.tzinfo is not None
    progress = await media_reaches(room, "rec-1", 3.0)
    assert progress.idle_seconds < 1.0  # media flows
    assert progress.frames.received > 0

    assert await room.session.handle(StopCapture("rec-1")) == Ack()
    assert not room.log.of(CaptureFinished)  # the reply came before the file was final
    [finished] = await room.log.wait_for(CaptureFinished)
    assert not room.log.of(CaptureFailed)
    assert len(room.log.of(MediaStarted)) == 1

    [file] = finished.files
    assert file.kind == "composite"
    assert Path(file.path) == tmp_path / "rec-1" / "recording_rec-1.webm"
    assert finished.duration_seconds >= 3.0
    assert sorted(t.kind for t in finished.tracks) == ["audio", "video"]
    assert finished.frames.written > 0
    seen = probe(Path(file.path))
    assert (seen.video_codec, seen.audio_codec) == ("vp8", "opus")
    assert (seen.width, seen.height) == (854, 480)
    assert seen.video_seconds == pytest.approx(finished.duration_seconds, abs=0.5)
    assert seen.audio_seconds == pytest.approx(finished.duration_seconds, abs=0.5)
    assert room.session.publisher_count == 1
    assert not room.session.idle


@pytest.mark.parametrize(
    ("offered", "answered", "munge"),
    [
        ("actpass", "active", None),
        ("passive", "active", None),
        ("active", "passive", None),
        ("passive", "active", strip_candidates),
    ],
    ids=["actpass", "passive", "active", "passive-without-candidates"],
)
async def test_dtls_roles_follow_rfc_5763(make_room: MakeRoom, offered: str, answered: str,
                                          munge: Callable[[str], str] | None) -> None:
    room = make_room()
    publisher = SyntheticPublisher((320, 180), fps=15)
    answer = await room.publish("s1", publisher, setup=offered,
                                munge=munge or (lambda sdp: sdp))
    setups = {line for line in answer.splitlines() if line.startswith("a=setup:")}
    assert setups == {f"a=setup:{answered}"}
    assert "a=candidate:" in answer  # no trickle from us: the answer carries them
    # Media decoded on our side proves DTLS and SRTP agreed on who is who.
    tracks = await room.log.wait_for(TrackAdded, count=2)
    assert {t.track.kind for t in tracks} == {"audio", "video"}


async def test_malformed_offer_is_400_and_leaves_no_publisher(make_room: MakeRoom) -> None:
    room = make_room()
    with pytest.raises(InvalidInput) as caught:
        await room.session.handle(Publish("s1", "user-1", "user-1", "camera", "this is not SDP"))
    assert caught.value.status == 400
    assert room.session.publisher_count == 0
    assert room.session.idle


async def test_offer_without_usable_codec_is_422(make_room: MakeRoom) -> None:
    room = make_room()
    publisher = SyntheticPublisher((320, 180), fps=15)
    room.publishers.append(publisher)
    offer = await publisher.offer()
    vp9_only = offer.replace("VP8/90000", "VP9/90000")
    with pytest.raises(Unprocessable) as caught:
        await room.session.handle(Publish("s1", "user-1", "user-1", "camera", vp9_only))
    assert caught.value.status == 422
    assert "VP9" in caught.value.detail
    assert room.session.publisher_count == 0


async def test_publishers_past_the_limit_get_503_until_one_leaves(make_room: MakeRoom) -> None:
    room = make_room(max_publishers=1)
    await room.publish("s1", SyntheticPublisher((320, 180), fps=15))
    second = SyntheticPublisher((320, 180), fps=15)
    room.publishers.append(second)
    with pytest.raises(Unavailable) as caught:
        await room.session.handle(Publish("s2", "user-2", "user-2", "camera", await second.offer()))
    assert caught.value.status == 503
    assert caught.value.retry_after > 0
    assert room.session.publisher_count == 1

    assert await room.session.handle(Unpublish("s1")) == Ack()
    [left] = await room.log.wait_for(PublisherLeft)
    assert (left.session_id, left.publisher_id) == ("s1", "user-1")
    assert room.session.publisher_count == 0
    await room.publish("s3", SyntheticPublisher((320, 180), fps=15), publisher_id="user-3")
    assert room.session.publisher_count == 1


async def test_publishers_joining_and_leaving_mid_recording_keep_it_going(
        make_room: MakeRoom, tmp_path: Path) -> None:
    room = make_room()
    first = SyntheticPublisher((640, 360), fps=15, shade=40)  # dark picture
    await room.publish("s1", first, publisher_id="alice")
    await room.log.wait_for(TrackAdded, count=2)
    await room.session.handle(start(tmp_path, "rec-2"))
    await media_reaches(room, "rec-2", 1.5)

    await room.publish("s2", SyntheticPublisher((640, 360), fps=15, shade=180),  # bright
                       publisher_id="bob")
    await room.log.wait_for(TrackAdded, lambda t: t.session_id == "s2", count=2)
    await first.close()  # the first (shown) publisher vanishes: its peer closes
    [left] = await room.log.wait_for(PublisherLeft)
    assert left.publisher_id == "alice"
    at_leave = (await next_progress(room, "rec-2")).media_seconds
    after = await media_reaches(room, "rec-2", at_leave + 2.0)
    assert after.idle_seconds < 1.0  # bob's media still reaches the recording

    await room.session.handle(StopCapture("rec-2"))
    [finished] = await room.log.wait_for(CaptureFinished)
    assert sorted((t.publisher_id, t.kind) for t in finished.tracks) == [
        ("alice", "audio"), ("alice", "video"), ("bob", "audio"), ("bob", "video")]
    assert finished.duration_seconds >= after.media_seconds - 0.001  # rounded to the ms
    path = Path(finished.files[0].path)
    seen = probe(path)
    assert seen.video_seconds == pytest.approx(finished.duration_seconds, abs=0.5)
    assert seen.audio_seconds == pytest.approx(finished.duration_seconds, abs=0.5)
    # The picture is alice's (who joined first) until she leaves, then bob's.
    shades = luma_by_second(path)
    assert shades[0] < 80
    assert shades[-1] > 140


async def test_pause_cuts_the_paused_span(make_room: MakeRoom, tmp_path: Path) -> None:
    room = make_room()
    await room.publish("s1", SyntheticPublisher((320, 180), fps=15))
    await room.session.handle(start(tmp_path, "rec-3"))
    await media_reaches(room, "rec-3", 1.5)
    await room.session.handle(PauseCapture("rec-3"))
    paused_reports = len(room.log.of(CaptureProgress))
    # Three progress reports while paused: media time stands still across them.
    held = await room.log.wait_for(CaptureProgress, count=paused_reports + 3)
    frozen = [p.media_seconds for p in held[paused_reports:]]
    assert max(frozen) - min(frozen) < 0.05
    await room.session.handle(ResumeCapture("rec-3"))
    await media_reaches(room, "rec-3", frozen[-1] + 1.5)
    await room.session.handle(StopCapture("rec-3"))
    [finished] = await room.log.wait_for(CaptureFinished)
    assert finished.duration_seconds == pytest.approx(frozen[-1] + 1.5, abs=1.2)
    assert probe(Path(finished.files[0].path)).video_seconds == pytest.approx(
        finished.duration_seconds, abs=0.5)


async def test_cancel_deletes_the_file_and_its_folder(make_room: MakeRoom,
                                                      tmp_path: Path) -> None:
    room = make_room(progress_interval=0.2)
    await room.publish("s1", SyntheticPublisher((320, 180), fps=15))
    await room.session.handle(start(tmp_path, "rec-4"))
    await room.log.wait_for(MediaStarted)
    assert (tmp_path / "rec-4" / "recording_rec-4.webm").exists()
    assert await room.session.handle(CancelCapture("rec-4")) == Ack()
    assert not (tmp_path / "rec-4").exists()
    progress_before = len(room.log.of(CaptureProgress))
    await asyncio.sleep(1.0)  # five progress intervals: a report would come, were it running
    assert len(room.log.of(CaptureProgress)) == progress_before
    assert not room.log.of(CaptureFinished)
    assert not room.log.of(CaptureFailed)
    with pytest.raises(NotFound):
        await room.session.handle(StopCapture("rec-4"))


@pytest.mark.parametrize(
    "command",
    [PauseCapture("nope"), ResumeCapture("nope"), StopCapture("nope"), CancelCapture("nope"),
     Unpublish("nope")],
    ids=["pause", "resume", "stop", "cancel", "unpublish"],
)
async def test_unknown_ids_are_404(make_room: MakeRoom, command: object) -> None:
    room = make_room()
    with pytest.raises(NotFound) as caught:
        await room.session.handle(command)  # type: ignore[arg-type]
    assert caught.value.status == 404


async def test_close_finishes_recordings_and_ends_publishers(make_room: MakeRoom,
                                                             tmp_path: Path) -> None:
    room = make_room()
    await room.publish("s1", SyntheticPublisher((320, 180), fps=15))
    await room.session.handle(start(tmp_path, "rec-5"))
    await media_reaches(room, "rec-5", 1.0)
    await room.session.close()
    [finished] = room.log.of(CaptureFinished)  # stopped, not aborted
    assert probe(Path(finished.files[0].path)).video_frames > 0
    assert [e.session_id for e in room.log.of(PublisherLeft)] == ["s1"]
    assert room.session.idle
    await room.session.close()  # twice is fine
    with pytest.raises(Unavailable):
        await room.session.handle(start(tmp_path, "rec-6"))


async def test_publisher_that_never_connects_is_dropped(make_room: MakeRoom) -> None:
    room = make_room(connect_timeout=1.0)
    silent = SyntheticPublisher((320, 180), fps=15)
    room.publishers.append(silent)
    await room.session.handle(Publish("s1", "user-1", "user-1", "camera", await silent.offer()))
    assert room.session.publisher_count == 1  # the answer is never applied
    [left] = await room.log.wait_for(PublisherLeft)
    assert left.session_id == "s1"
    assert room.session.publisher_count == 0
    assert room.session.idle
