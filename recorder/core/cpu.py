"""What a live recording costs in CPU, for admission (docs/media.md: 429 `cpu`).

A node refuses a start it could not encode in real time rather than record it with dropped
frames, so each recording is priced before it is admitted, in cores, from its quality,
layout, transcode mode and the publishers it records. The prices are measured on a 2-core
x86_64 box (bench/RESULTS.md; bench/capture_cpu.py) and rounded up, because a price
that is too low drops frames and one that is too high only refuses a start early:

- encoding one preset's picture (libvpx realtime / libx264 veryfast): low 0.25, medium 0.45,
  high 0.9 cores; ultra (4x the pixels of high at twice the rate) 8 cores;
- taking in one transcoded publisher (decode ~0.12 at 720p, audio, grid scaling): 0.17;
- taking in one passthrough publisher (aiortc's packet path only, no decoding): 0.06.

`composite` encodes one picture whatever the publishers; `tracks` encodes one per
publisher; `source` encodes nothing live, and neither does `transcode: deferred`, which
keeps every publisher as received until the stop. A recording with no publisher yet is
priced as if one had joined: that one is what it waits for.
"""

from __future__ import annotations

from recorder.core.presets import Layout, Quality

ENCODE_CORES: dict[Quality, float] = {
    Quality.LOW: 0.25,
    Quality.MEDIUM: 0.45,
    Quality.HIGH: 0.9,
    Quality.ULTRA: 8.0,
}
TRANSCODED_PUBLISHER_CORES = 0.17
PASSTHROUGH_PUBLISHER_CORES = 0.06


def recording_cores(quality: Quality, layout: Layout, deferred: bool, publishers: int) -> float:
    """Cores one live recording of `publishers` publishers keeps busy."""
    n = max(1, publishers)
    if deferred:  # live, every publisher is kept as received, whatever the layout after
        return PASSTHROUGH_PUBLISHER_CORES * n
    if quality is Quality.SOURCE:
        # source + composite records one publisher (docs/media.md); tracks keeps each one
        return PASSTHROUGH_PUBLISHER_CORES * (n if layout is Layout.TRACKS else 1)
    encode = ENCODE_CORES[quality]
    if layout is Layout.TRACKS:
        return n * (encode + TRANSCODED_PUBLISHER_CORES)
    return encode + n * TRANSCODED_PUBLISHER_CORES


def added_publisher_cores(quality: Quality, layout: Layout, deferred: bool,
                          publishers: int) -> float:
    """What one more publisher adds to a recording that has `publishers` now."""
    return (recording_cores(quality, layout, deferred, publishers + 1)
            - recording_cores(quality, layout, deferred, publishers))
