"""The media benchmarks run end to end with tiny parameters, so they never rot.

No timing is asserted (that is what the benchmarks report); what is asserted is what the
numbers rest on: every frame reached the file, and the files hold what a viewer needs.
"""

from __future__ import annotations

from pathlib import Path

from bench import mediarecorder, transcode
from bench.common import input_file
from recorder.core.presets import Format, Quality


def test_transcode_measures_both_sides_without_dropping(tmp_path: Path) -> None:
    source = input_file(1.0, tmp_path, shortest=1)
    combos = [(Quality.LOW, Format.WEBM)]
    results = transcode.measure(("bound", "ours"), combos, 1.0, 1, source)

    ours = results[("ours", "low", "webm")][0]
    bound = results[("bound", "low", "webm")][0]
    assert ours["dropped"] == 0
    assert ours["received"] >= 30 + 50  # a second of 30 fps video and of 20 ms audio
    # at 24 fps some of the 30 pictures a second are replaced before their slot comes
    assert ours["written"] >= 24 + 50
    assert bound["slots"] == 24  # one second at the preset's 24 fps
    assert ours["cpu"] > 0
    assert bound["cpu"] > 0
    table = transcode.report(results, combos, 1.0, 1)
    assert "| low (854x480@24) | webm |" in table


async def test_mediarecorder_comparison_records_a_late_camera() -> None:
    delays = (mediarecorder.VIDEO_DELAY,)
    results = await mediarecorder.run_all(
        mediarecorder.KINDS, [Format.WEBM], 4.0, 1, 15, delays)

    ours = results[("ours", "webm", mediarecorder.VIDEO_DELAY)][0]
    assert ours["dropped"] == 0
    assert ours["size"] == "1280x720"
    assert ours["video_frames"] > 0
    assert len(ours["offsets"]) == 1  # the flash and beep at 3 s, both found
    theirs = results[("mediarecorder", "webm", mediarecorder.VIDEO_DELAY)][0]
    assert theirs["has_audio"]
    table = mediarecorder.report(results, [Format.WEBM], 4.0, 1, 15, delays)
    assert "| webm | +1.5 s | mediarecorder |" in table
