from __future__ import annotations

import numpy as np
import pytest

from recorder.media.mixer import AudioMixer, Samples


def block(value: float, n: int = 960) -> Samples:
    return np.full((n, 2), value, dtype=np.float32)


def test_a_frame_a_few_ms_off_continues_the_previous_one_exactly() -> None:
    mixer = AudioMixer()
    mixer.add("a", block(0.1), 0)
    mixer.add("a", block(0.2), 960 + 480)  # 10 ms late by its timestamp: snapped
    out = np.concatenate([mixer.mix_block(), mixer.mix_block()])
    assert np.all(out[:960] == pytest.approx(0.1))
    assert np.all(out[960:] == pytest.approx(0.2))  # no hole


def test_a_real_gap_becomes_silence() -> None:
    mixer = AudioMixer()
    mixer.add("a", block(0.1), 0)
    mixer.add("a", block(0.2), 960 * 5)  # 80 ms later than expected: packets were lost
    out = np.concatenate([mixer.mix_block() for _ in range(6)])
    assert np.all(out[960: 960 * 5] == 0)
    assert np.all(out[960 * 5:] == pytest.approx(0.2))


def test_a_real_overlap_is_trimmed_not_doubled() -> None:
    mixer = AudioMixer()
    mixer.add("a", block(0.1, 960 * 4), 0)
    kept = mixer.add("a", block(0.2, 960 * 4), 960)  # 60 ms back in time
    assert kept == 960
    out = np.concatenate([mixer.mix_block() for _ in range(5)])
    assert np.all(out[: 960 * 4] == pytest.approx(0.1))
    assert np.all(out[960 * 4:] == pytest.approx(0.2))


def test_sources_are_summed_and_clipped() -> None:
    mixer = AudioMixer()
    mixer.add("a", block(0.3), 0)
    mixer.add("b", block(0.4), 0)
    assert np.all(mixer.mix_block() == pytest.approx(0.7))
    mixer.add("a", block(0.8), 960)
    mixer.add("b", block(0.9), 960)
    assert np.all(mixer.mix_block() == 1.0)


def test_nobody_speaking_is_silence_and_late_samples_are_dropped() -> None:
    mixer = AudioMixer()
    assert np.all(mixer.mix_block() == 0)
    assert mixer.add("a", block(0.5), 0) == 0  # that block is already mixed
    assert mixer.add("a", block(0.5), 480) == 480  # half of it is still to come
    assert np.all(mixer.mix_block()[:480] == pytest.approx(0.5))


def test_a_source_that_left_is_played_out_then_forgotten() -> None:
    mixer = AudioMixer()
    mixer.add("a", block(0.5, 1920), 0)
    mixer.remove("a")
    assert mixer.sources == 1
    assert np.all(mixer.mix_block() == pytest.approx(0.5))
    assert np.all(mixer.mix_block() == pytest.approx(0.5))
    assert mixer.sources == 0
