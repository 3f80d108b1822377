"""Lip sync with a microphone whose clock is not the camera's.

A publisher's sound card and camera rarely share a crystal. Here the microphone's clock
runs 0.5 % fast or slow (its RTP timestamps count 48,240 or 47,760 samples per second,
its packets leave at that rate, its sender reports map them to real time as a browser's
do) while its pictures are on time; uncorrected, that is 100 ms off after 20 s. A player
plays the sound sample after sample, so the flash and the beep the publisher sends
together must be within 40 ms of each other at the start and at the end of every file,
and every file's sound must be continuous (``probe`` checks it: a passthrough file may
be cut once where a pause or a reconnect was, a transcoded one never).

60 s at +0.5 % for one passthrough and one transcoded recording per format; 20 s at
-0.5 % for ``tracks``, a composite of two publishers, pause and resume, a reconnect and a
deferred transcode. In the pause,
the reconnect and the deferred transcode the publisher's whole clock also runs 0.1 % slow
or fast against the recorder's, as another computer's does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from recorder.core.presets import Format, Layout, Quality
from recorder.media.transcode import transcode
from recorder.media.transcode_job import TranscodeJob, source_of
from recorder.room.messages import (
    CaptureFinished,
    PauseCapture,
    PublisherLeft,
    ResumeCapture,
    StartCapture,
    StopCapture,
    TrackAdded,
    Unpublish,
)
from tests.rtc.conftest import Room
from tests.support.file_analysis import Probe, probe
from tests.support.publisher import SyntheticPublisher

MakeRoom = Callable[..., Room]
LIMIT = 0.04  # docs/media.md: audio and video within 40 ms
FAST, SLOW = 5000, -5000  # ppm of the microphone's clock
AHEAD, BEHIND = 1000, -1000  # ppm of a publisher's clock against the recorder's
FPS = 24  # the `low` preset's rate: each flash is an output frame of its own
SIZE = (640, 360)


def flashes(seconds: float, first: float = 3.0, every: float = 4.0) -> tuple[float, ...]:
    """Marker times from ``first`` (sender reports are in) to 2 s before ``seconds``."""
    count = int((seconds - 2.0 - first) // every) + 1
    return tuple(first + k * every for k in range(count))


def start(tmp_path: Path, rid: str, fmt: Format, quality: Quality,
          layout: Layout = Layout.COMPOSITE, as_received: bool = False) -> StartCapture:
    folder = tmp_path / rid
    folder.mkdir()
    return StartCapture(rid, str(folder), f"recording_{rid}.{fmt.value}", fmt, quality, layout,
                        as_received=as_received)


def publisher(ppm: int, seconds: float, codec: str = "VP8",
              clock_ppm: int = 0) -> SyntheticPublisher:
    """``ppm``: the microphone against the publisher's clock; ``clock_ppm``: that clock (its
    camera's) against this machine's, the recorder's."""
    return SyntheticPublisher(SIZE, FPS, video_codec=codec, markers=flashes(seconds),
                              mic_ppm=ppm, clock_ppm=clock_ppm)


async def publish(room: Room, pub: SyntheticPublisher, session: str = "s1") -> None:
    before = len(room.log.of(TrackAdded))
    await room.publish(session, pub)
    await room.log.wait_for(TrackAdded, count=before + 2)


async def stop(room: Room, *rids: str) -> list[CaptureFinished]:
    done = []
    for rid in rids:
        await room.session.handle(StopCapture(rid))
        [finished] = await room.log.wait_for(CaptureFinished, _of(rid))
        done.append(finished)
    return done


def beep_span(p: Probe) -> float:
    """Seconds from the first beep to the last, by the file's clock."""
    beeps = [t - o for t, o in p.av_offsets()]
    return beeps[-1] - beeps[0]


def _of(rid: str) -> Callable[[CaptureFinished], bool]:
    return lambda event: event.recording_id == rid


def check(path: Path, cuts: int = 0) -> Probe:
    """A/V within 40 ms at the first and the last flash, sound continuous but for
    ``cuts``."""
    p = probe(path, cuts=cuts)
    found = p.av_offsets()
    print(path.name, "A/V ms at", [(round(t, 1), round(o * 1000)) for t, o in found],
          "audio cuts", p.audio_cuts)
    assert len(found) >= 2, (path.name, found)
    assert abs(found[0][1]) <= LIMIT, (path.name, found)
    assert abs(found[-1][1]) <= LIMIT, (path.name, found)
    return p


async def test_a_vp8_publisher_with_a_fast_microphone_for_a_minute(
        make_room: MakeRoom, tmp_path: Path) -> None:
    room = make_room()
    pub = publisher(FAST, 60.0)
    await publish(room, pub)
    for rid, fmt, quality in (("src", Format.WEBM, Quality.SOURCE),
                              ("webm", Format.WEBM, Quality.LOW),
                              ("mp4", Format.MP4, Quality.LOW)):
        await room.session.handle(start(tmp_path, rid, fmt, quality))
    await pub.clock.sleep_until(60.0)
    for done in await stop(room, "src", "webm", "mp4"):
        check(Path(done.files[0].path))
        assert done.duration_seconds > 55


async def test_an_h264_publisher_with_a_fast_microphone_for_a_minute(
        make_room: MakeRoom, tmp_path: Path) -> None:
    room = make_room()
    pub = publisher(FAST, 60.0, codec="H264")
    await publish(room, pub)
    for rid, fmt, quality in (("mp4", Format.MP4, Quality.SOURCE),
                              ("mkv", Format.MKV, Quality.SOURCE),
                              ("low", Format.MKV, Quality.LOW)):
        await room.session.handle(start(tmp_path, rid, fmt, quality))
    await pub.clock.sleep_until(60.0)
    for done in await stop(room, "mp4", "mkv", "low"):
        check(Path(done.files[0].path))


async def test_tracks_files_with_a_slow_microphone(make_room: MakeRoom, tmp_path: Path) -> None:
    room = make_room()
    pub = publisher(SLOW, 20.0)
    await publish(room, pub)
    await room.session.handle(start(tmp_path, "src", Format.WEBM, Quality.SOURCE,
                                    Layout.TRACKS))
    await room.session.handle(start(tmp_path, "low", Format.MKV, Quality.LOW, Layout.TRACKS))
    await pub.clock.sleep_until(20.0)
    source, low = await stop(room, "src", "low")
    # flashes at 3, 7, 11 and 15 s: 12 s from the first beep to the last by our clock
    # a file as received runs on the microphone's clock (11.94 s), and says how fast
    p = check(Path(source.files[0].path))
    assert source.files[0].clock_ppm == pytest.approx(SLOW, abs=300)
    assert beep_span(p) == pytest.approx(12.0 * (1 + SLOW / 1e6), abs=0.01)
    # a transcoded one runs on the recording's: offset + file time = recording time
    p = check(Path(low.files[0].path))
    assert low.files[0].clock_ppm is None
    assert beep_span(p) == pytest.approx(12.0, abs=0.03)


async def test_a_composite_of_two_publishers_on_different_clocks(make_room: MakeRoom,
                                                                tmp_path: Path) -> None:
    # the flashing one's microphone is slow and its clock behind ours; the other one (a
    # lighter picture, a quiet tone) has a fast microphone on a clock ahead of ours
    room = make_room()
    flashing = publisher(SLOW, 20.0, clock_ppm=BEHIND)
    other = SyntheticPublisher(SIZE, FPS, shade=110, mic_ppm=FAST, clock_ppm=AHEAD)
    await publish(room, flashing)
    before = len(room.log.of(TrackAdded))
    await room.publish("s2", other, publisher_id="user-2")
    await room.log.wait_for(TrackAdded, count=before + 2)
    await room.session.handle(start(tmp_path, "low", Format.WEBM, Quality.LOW))
    await flashing.clock.sleep_until(20.0)
    [low] = await stop(room, "low")
    check(Path(low.files[0].path))  # side by side: a flash lights half the centre


async def test_pause_and_resume_with_a_slow_microphone(make_room: MakeRoom,
                                                       tmp_path: Path) -> None:
    room = make_room()
    # flashes at 3, 7, 11 (paused), 15 and 19 s of a publisher whose clock runs slow
    pub = publisher(SLOW, 22.0, clock_ppm=BEHIND)
    await publish(room, pub)
    await room.session.handle(start(tmp_path, "src", Format.WEBM, Quality.SOURCE))
    await room.session.handle(start(tmp_path, "low", Format.WEBM, Quality.LOW))
    await pub.clock.sleep_until(9.0)
    for rid in ("src", "low"):
        await room.session.handle(PauseCapture(rid))
    await pub.clock.sleep_until(12.0)
    for rid in ("src", "low"):
        await room.session.handle(ResumeCapture(rid))
    await pub.clock.sleep_until(21.0)
    source, low = await stop(room, "src", "low")
    check(Path(source.files[0].path))
    check(Path(low.files[0].path))


async def test_a_reconnect_with_a_slow_microphone(make_room: MakeRoom, tmp_path: Path) -> None:
    # tracks: the publisher's second connection continues its file
    room = make_room()
    # flashes at 3 and 7 s of each connection, of a publisher whose clock runs fast
    first = publisher(SLOW, 10.0, clock_ppm=AHEAD)
    await publish(room, first)
    await room.session.handle(start(tmp_path, "src", Format.WEBM, Quality.SOURCE,
                                    Layout.TRACKS))
    await room.session.handle(start(tmp_path, "low", Format.WEBM, Quality.LOW, Layout.TRACKS))
    await first.clock.sleep_until(10.0)
    await room.session.handle(Unpublish("s1"))
    await room.log.wait_for(PublisherLeft)
    await first.close()
    second = publisher(SLOW, 11.0, clock_ppm=AHEAD)
    await publish(room, second, "s2")
    await second.clock.sleep_until(10.0)
    source, low = await stop(room, "src", "low")
    p = check(Path(source.files[0].path))
    assert len(p.av_offsets()) == 4  # both connections' flashes are in the one file
    check(Path(low.files[0].path))


async def test_a_deferred_transcode_with_a_slow_microphone(make_room: MakeRoom,
                                                           tmp_path: Path) -> None:
    room = make_room()
    pub = publisher(SLOW, 20.0, clock_ppm=AHEAD)  # 12 s of its clock: 11.988 s of ours
    await publish(room, pub)
    await room.session.handle(start(tmp_path, "live", Format.MKV, Quality.SOURCE,
                                    Layout.TRACKS, as_received=True))
    await pub.clock.sleep_until(20.0)
    [live] = await stop(room, "live")
    [file] = live.files
    check(Path(file.path))
    out = tmp_path / "out"
    out.mkdir()
    source = source_of(Path(file.path), file.offset_seconds, file.duration_seconds,
                       file.clock_ppm)
    job = TranscodeJob("rec-1", str(out), Format.WEBM, Quality.LOW, Layout.COMPOSITE,
                       live.duration_seconds, (source,))
    result, _ = await asyncio.to_thread(transcode, job)
    assert result.frames.dropped == 0  # offline: nothing dropped
    # the output is back on the recording's clock: 12 s of the publisher's between the
    # first and the last beep, within what a source's clock follows a sender's drift by
    # (its 20 ms tolerance and one 10 ms step, recorder/media/clock.py)
    ours = 12.0 / (1 + AHEAD / 1e6)
    assert beep_span(check(result.files[0].path)) == pytest.approx(ours, abs=0.03)
