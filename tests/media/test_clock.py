from __future__ import annotations

from fractions import Fraction

import pytest

from recorder.media.clock import MediaClock, SourceClock

VIDEO = Fraction(1, 90_000)


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
