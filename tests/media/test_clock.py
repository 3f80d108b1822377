from __future__ import annotations

from fractions import Fraction

import pytest

from recorder.media.clock import MediaClock, PublisherClock, SourceClock
from recorder.media.encoded import OPUS_LOOKAHEAD_SECONDS

VIDEO = Fraction(1, 90_000)
AUDIO = Fraction(1, 48_000)


def test_source_keeps_the_senders_spacing_despite_jittery_arrivals() -> None:
    clock = SourceClock()
    assert clock.wall(0, VIDEO, 100.0) == 100.0
    # the second frame arrives 40 ms late: its wall time still follows its pts
    assert clock.wall(3000, VIDEO, 100.073) == pytest.approx(100.0 + 1 / 30)
    assert clock.wall(6000, VIDEO, 100.067) == pytest.approx(100.0 + 2 / 30)


def test_source_reanchors_when_the_sender_clock_jumps() -> None:
    clock = SourceClock()
    clock.wall(0, VIDEO, 100.0)
    # pts jumped back to 0 (the sender restarted its encoder) while 5 s passed
    assert clock.wall(0, VIDEO, 105.0) == 105.0
    assert clock.reanchors == 1
    assert clock.wall(9000, VIDEO, 105.1) == pytest.approx(105.1)


def test_source_without_pts_uses_arrival() -> None:
    assert SourceClock().wall(None, None, 7.5) == 7.5


def test_media_time_counts_from_the_first_frame() -> None:
    clock = MediaClock()
    assert clock.media_time(10.0) is None  # not started
    clock.begin(10.0)
    clock.begin(11.0)  # only the first begin counts
    assert clock.media_time(12.5) == pytest.approx(2.5)
    assert clock.now(13.0) == pytest.approx(3.0)


def test_a_pause_is_cut_out_of_media_time() -> None:
    clock = MediaClock()
    clock.begin(0.0)
    clock.pause(2.0)
    assert clock.now(3.0) == pytest.approx(2.0)  # frozen while paused
    assert clock.media_time(1.9) == pytest.approx(1.9)  # before the pause: kept
    assert clock.media_time(2.5) is None  # inside the pause: cut
    clock.resume(5.0)
    assert clock.media_time(3.0) is None  # still cut after the resume
    assert clock.media_time(5.5) == pytest.approx(2.5)  # continues without a gap
    assert clock.now(6.0) == pytest.approx(3.0)
    clock.pause(7.0)
    clock.resume(8.0)
    assert clock.media_time(6.0) == pytest.approx(3.0)  # between the pauses
    assert clock.media_time(7.5) is None
    assert clock.media_time(9.0) == pytest.approx(9.0 - 3.0 - 1.0)


def test_pause_before_start_cuts_nothing() -> None:
    clock = MediaClock()
    clock.pause(1.0)
    clock.resume(2.0)
    clock.begin(3.0)
    assert clock.media_time(4.0) == pytest.approx(1.0)


@pytest.mark.parametrize("ppm", [-1000, -100, 100, 1000])
def test_source_follows_a_drifting_sender_clock(ppm: int) -> None:
    # Half an hour of 20 ms audio frames from a sender whose clock runs `ppm` off ours,
    # with up to 30 ms of network jitter: the mapping stays close to the earliest arrivals
    # (without slewing, 1000 ppm would be 1.8 s off by the end).
    clock = SourceClock()
    rate = 1 + ppm / 1e6
    worst = 0.0
    for k in range(90_000):
        sent = k * 0.02
        arrival = 50.0 + sent / rate + (k * 7919 % 31) / 1000  # deterministic jitter
        wall = clock.wall(k * 960, Fraction(1, 48_000), arrival)
        if k > 5_000:
            worst = max(worst, abs(arrival - wall))
    assert worst < 0.08  # within the mixer's reach behind a 0.25 s latency
    assert clock.reanchors == 0


@pytest.mark.parametrize("ppm", [-6000, -2000, 2000, 6000])
def test_source_measures_a_microphone_clock_far_off_and_follows_it_smoothly(ppm: int) -> None:
    # Ten minutes of a microphone whose clock runs `ppm` off ours (0.6 % is past what
    # steps of 10 ms every 2 s can follow), with jitter: the rate is measured to a few
    # ppm, the mapping stays within the slew tolerance of the earliest arrivals, and
    # consecutive frames keep their spacing (no step of a few ms between them).
    clock = SourceClock()
    rate = 1 + ppm / 1e6
    worst = steepest = 0.0
    previous: float | None = None
    for k in range(30_000):
        arrival = 50.0 + k * 0.02 / rate + (k * 7919 % 31) / 1000
        wall = clock.wall(k * 960, AUDIO, arrival)
        if k > 1_500:
            worst = max(worst, abs(50.0 + k * 0.02 / rate - wall))
            assert previous is not None
            steepest = max(steepest, abs(wall - previous - 0.02 / rate))
        previous = wall
    assert clock.ppm == pytest.approx(ppm, abs=20)
    assert worst < 0.03
    assert steepest < 0.0005
    assert clock.reanchors == 0


def test_a_rate_fitted_while_the_sender_stalled_is_fitted_again() -> None:
    # For its first 12 s a starved sender falls further and further behind (every frame
    # 1.5 % later than the one before: the first fit reads a clock 1.5 % slow), then
    # catches up and sends steadily, 0.5 % fast: the mapping must end up on the steady
    # stream, within the slew tolerance, not stay on the line of the first seconds.
    clock = SourceClock()
    rate = 1.005
    for k in range(6_000):
        arrival = 50.0 + k * 0.02 / rate + (0.015 * k * 0.02 if k < 600 else 0.0)
        wall = clock.wall(k * 960, AUDIO, arrival)
    assert abs(wall - (50.0 + 5_999 * 0.02 / rate)) < 0.03
    assert clock.ppm == pytest.approx(5000, abs=200)


def test_a_delay_that_grows_for_good_is_followed_at_once() -> None:
    # after 10 s every frame comes 0.4 s later than before (a sender that fell behind,
    # a slower path): within a window the mapping is there, not minutes later
    clock = SourceClock()
    for k in range(1_500):
        arrival = 50.0 + k * 0.02 + (0.4 if k >= 500 else 0.0)
        wall = clock.wall(k * 960, AUDIO, arrival)
        if k >= 750:
            assert abs(arrival - wall) < 0.03
    assert clock.reanchors == 0


def test_a_stall_with_continuous_rtp_time_does_not_move_the_track() -> None:
    # 30 fps; nothing arrives for 2.5 s (sender, network or this process stalled), then
    # the backlog comes in a burst and the stream catches up: every frame stays where
    # its RTP time puts it, so pictures after the stall are not shifted by it
    clock = SourceClock()
    for k in range(60):
        assert clock.wall(k * 3000, VIDEO, 100.0 + k / 30) == pytest.approx(100.0 + k / 30)
    for k in range(60, 135):  # sent during the stall: all arrive at 104.5 s
        assert clock.wall(k * 3000, VIDEO, 104.5) == pytest.approx(100.0 + k / 30)
    for k in range(135, 300):
        assert clock.wall(k * 3000, VIDEO, 100.0 + k / 30 + 0.01) == pytest.approx(
            100.0 + k / 30)
    assert clock.reanchors == 0


def test_a_new_sender_timeline_reanchors_at_once() -> None:
    # a new SSRC's timestamps continue far ahead (aiortc unfolds a step back as a wrap)
    clock = SourceClock()
    clock.wall(0, AUDIO, 10.0)
    clock.wall(960, AUDIO, 10.02)
    assert clock.wall(960 + 2**31, AUDIO, 10.04) == 10.04
    assert clock.reanchors == 1
    assert clock.wall(1920 + 2**31, AUDIO, 10.07) == pytest.approx(10.06)


def test_a_sender_clock_that_stood_still_reanchors_after_a_window() -> None:
    # RTP time continues where it stopped although 3 s passed: every later frame is 3 s
    # late, which is not a stall (those catch up) but a jump
    clock = SourceClock()
    for k in range(100):
        clock.wall(k * 960, AUDIO, 10.0 + k * 0.02)
    walls = [clock.wall(k * 960, AUDIO, 13.0 + k * 0.02) for k in range(100, 300)]
    assert clock.reanchors == 1
    assert walls[-1] == pytest.approx(13.0 + 299 * 0.02, abs=0.03)


def test_video_follows_the_sound_by_the_senders_clock() -> None:
    # audio reaches us 150 ms after video for the same sender instant (a jitter buffer
    # holds it): by sender time a picture lands with its sound, not 150 ms early, and
    # that sound is heard the encoder's lookahead after its RTP time
    clock = PublisherClock()
    for k in range(50):
        t = k * 0.02
        clock.wall("a", "audio", k * 960, AUDIO, 5000.0 + t, 100.15 + t)
    wall = clock.wall("v", "video", 0, VIDEO, 5000.98, 100.98)
    assert wall == pytest.approx(100.15 + 0.98 + OPUS_LOOKAHEAD_SECONDS)


def test_without_sender_reports_each_track_keeps_its_first_arrival() -> None:
    clock = PublisherClock()
    clock.wall("a", "audio", 0, AUDIO, None, 100.15)
    assert clock.wall("v", "video", 0, VIDEO, 5000.0, 100.0) == 100.0  # audio has none
    assert clock.wall("v", "video", 3000, VIDEO, None, 100.04) == pytest.approx(100.0 + 1 / 30)
    clock.forget("v")
    assert clock.wall("v", "video", 90_000, VIDEO, None, 107.0) == 107.0  # a fresh mapping
