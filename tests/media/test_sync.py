"""A passthrough file's timeline with its sound as the master (recorder.media.sync)."""

from __future__ import annotations

from typing import Any

import av
import numpy as np
import pytest
from av.codec.context import CodecContext
from av.packet import Packet

from recorder.media.encoded import AUDIO_CLOCK, OPUS_LOOKAHEAD_SECONDS, EncodedFrame
from recorder.media.sync import SILENCE_PACKETS, AudioMaster, opus_samples, silence_packets

OPUS_20MS = bytes([31 << 3]) + b"\x00" * 40  # a CELT 20 ms packet (content irrelevant)
CUT = (0, "s1")
SOURCE = "a1"


def sound(timestamp: int, ntp: float | None = None) -> EncodedFrame:
    return EncodedFrame("audio", "opus", OPUS_20MS, timestamp, AUDIO_CLOCK, True, ntp)


def picture(timestamp: int, ntp: float | None = None) -> EncodedFrame:
    return EncodedFrame("video", "vp8", b"\x00", timestamp, 90_000, False, ntp)


@pytest.mark.parametrize("name", ["opus", "libopus"])
def test_the_silence_packets_decode_to_silence_of_their_length(name: str) -> None:
    decoder: Any = CodecContext.create(name, "r")  # typed per kind
    for size, data in SILENCE_PACKETS.items():
        frames = [f for f in decoder.decode(Packet(data)) if isinstance(f, av.AudioFrame)]
        assert sum(f.samples for f in frames) == size == opus_samples(data)
        assert all(not np.any(f.to_ndarray()) for f in frames)


def test_packet_lengths_come_from_the_toc() -> None:
    assert opus_samples(bytes([1 << 3])) == 960  # SILK 20 ms
    assert opus_samples(bytes([(13 << 3) | 1])) == 1920  # hybrid 20 ms, two frames
    assert opus_samples(bytes([(31 << 3) | 3, 3])) == 2880  # CELT 20 ms, three frames
    assert opus_samples(b"") == 0
    assert sum(opus_samples(p) for p in silence_packets(960 * 3 + 480 + 120)) == 3480


def test_sound_from_a_fast_clock_keeps_its_samples_not_our_time() -> None:
    # 0.5 % fast: 50 packets of 960 samples every 0.995 s of our time; the file's sound
    # is back to back all the same, wherever our clock would put it
    master = AudioMaster()
    times = [master.audio(CUT, SOURCE, sound(k * 960), k * 0.02 / 1.005, 100 + k * 0.02)
             for k in range(3000)]
    assert [p.at for p in times if p is not None] == pytest.approx(
        [k * 0.02 for k in range(3000)])


def test_a_hole_is_filled_with_silence_and_a_repeat_is_refused() -> None:
    master = AudioMaster()
    master.audio(CUT, SOURCE, sound(0), 0.0, 100.0)
    placed = master.audio(CUT, SOURCE, sound(960 * 4), 0.08, 100.08)  # three packets lost
    assert placed is not None
    assert placed.at == pytest.approx(0.08)
    assert placed.silence == 960 * 3
    assert master.audio(CUT, SOURCE, sound(960 * 4), 0.08, 100.1) is None
    assert master.end == pytest.approx(0.1)


def test_a_stall_of_ours_moves_nothing_but_a_new_sender_timeline_is_a_cut() -> None:
    master = AudioMaster()
    for k in range(100):
        master.audio(CUT, SOURCE, sound(k * 960), k * 0.02, 100 + k * 0.02)
    # 3 s of nothing, then the backlog at once (our clock may even have re-anchored)
    late = master.audio(CUT, SOURCE, sound(100 * 960), 5.0, 105.0)
    assert late is not None
    assert late.at == pytest.approx(2.0)
    assert late.silence == 0
    # a timeline 10 minutes ahead after 20 ms: a new SSRC, cut where our clock says
    jump = master.audio(CUT, SOURCE, sound(101 * 960 + 600 * AUDIO_CLOCK), 5.04, 105.04)
    assert jump is not None
    assert jump.at == pytest.approx(5.04)


def test_an_opus_packets_sound_is_heard_its_encoders_lookahead_after_its_time() -> None:
    # what browsers and aiortc send: libopus at 48 kHz, 20 ms packets stamped with the time
    # of their input frame; a click at input sample 9600 decodes 312 samples later
    encoder: Any = CodecContext.create("libopus", "w")
    encoder.sample_rate, encoder.format, encoder.layout = AUDIO_CLOCK, "s16", "mono"
    encoder.options = {"application": "voip"}
    decoder: Any = CodecContext.create("opus", "r")
    decoder.sample_rate, decoder.layout = AUDIO_CLOCK, "mono"
    sound = np.zeros(AUDIO_CLOCK, dtype=np.int16)
    sound[9600:9600 + 480] = 20000
    heard: list[Any] = []
    for k in range(50):
        frame = av.AudioFrame.from_ndarray(sound[None, k * 960:(k + 1) * 960], format="s16",
                                           layout="mono")
        frame.sample_rate, frame.pts = AUDIO_CLOCK, k * 960
        for packet in encoder.encode(frame):
            heard.extend(f.to_ndarray().reshape(-1) for f in decoder.decode(packet))
    decoded = np.abs(np.concatenate(heard))
    onset = int(np.argmax(decoded > 0.25 * decoded.max()))
    assert onset - 9600 == pytest.approx(OPUS_LOOKAHEAD_SECONDS * AUDIO_CLOCK, abs=8)


def test_pictures_land_on_the_sound_captured_with_them() -> None:
    # the microphone is 0.5 % fast: after 60 s its sound is 0.3 s further into the file
    # than our clock says; a picture sent with it lands with it, not 0.3 s early (with
    # the sound heard the encoder's lookahead after its RTP time)
    master = AudioMaster()
    for k in range(3001):
        master.audio(CUT, SOURCE, sound(k * 960, 5000 + k * 0.02 / 1.005), k * 0.02 / 1.005,
                     100 + k * 0.02 / 1.005)
    sent = 5000 + 3000 * 0.02 / 1.005
    at = master.video(CUT, picture(0, sent + 0.01), 60 / 1.005, 160.0)
    assert at == pytest.approx(60.01 + OPUS_LOOKAHEAD_SECONDS)
    # without sender reports: by arrival against the latest sound
    assert master.video(CUT, picture(0), 0.0, 100 + 60 / 1.005 + 0.02) == pytest.approx(60.02)


def test_after_a_cut_sound_and_pictures_start_together_after_what_was_written() -> None:
    master = AudioMaster()
    for k in range(500):  # 10 s of sound, 10.05 s of it by our clock
        master.audio(CUT, SOURCE, sound(k * 960), k * 0.0201, 100 + k * 0.0201)
    # resumed: the recording's timeline puts the next frames at 9.0 s, before the end
    # of the written sound; a picture first, then the sound, both shifted alike
    resumed = (1, "s1")
    assert master.video(resumed, picture(0), 9.0, 200.0) == pytest.approx(10.0)
    placed = master.audio(resumed, SOURCE, sound(600_000), 9.01, 200.01)
    assert placed is not None
    assert placed.at == pytest.approx(10.01)
    assert placed.silence == 480  # the 10 ms between is silence: no hole in the sound
    # a reconnect after a long absence starts where the recording's timeline says, the
    # time away silence
    later = master.audio((1, "s2"), "a2", sound(0), 30.0, 221.0)
    assert later is not None
    assert later.at == pytest.approx(30.0)
    assert later.silence == round((30.0 - 10.03) * AUDIO_CLOCK)
