"""Transcode cost: CPU seconds per recorded second, our capture against the PyAV bound.

Not a test (no pass/fail): ``python -m bench.transcode [--seconds 20] [--repeat 3]
[--qualities low,medium,high] [--formats webm,mp4,mkv]``.

One publisher's media (``bench.common``: 720p30 VP8 2.5 Mbps + Opus, decoded as aiortc
decodes it) is recorded at each preset and format, three ways, each in its own process:

- ``decode``: decoding alone, the part every side pays;
- ``bound``: the lower bound, one tight loop in one thread: decode, scale to the preset's
  size (when it differs), repeat or drop pictures onto the preset's constant frame rate,
  resample the audio to what the encoder takes, encode and mux. The file is made by
  :class:`recorder.media.muxer.MediaWriter`, the capture's own writer, so container,
  codecs and codec options are the capture's by construction, not by copy;
- ``ours``: the same decoded frames pushed into :class:`recorder.media.capture.Capture` as a
  room pushes them (arrival = the frame's time), on a fake clock that runs ahead of real
  time only as far as the encoder threads have caught up, so nothing is dropped for
  speed (the run fails if a frame was dropped).

Measured: process CPU (every thread) from the first decoded frame to the closed file,
divided by the media seconds recorded; the median of ``--repeat`` runs, interleaved so
that load from others on this shared box hits every side alike. The ratio is ours over the
bound (target: at most 1.2); "encode only" takes the decoding off both sides.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from av.audio.resampler import AudioResampler
from av.video.frame import PictureType, VideoFrame
from av.video.reformatter import VideoReformatter

from bench.common import cpu_seconds, decode, input_file, machine, median, run_child
from recorder.core.presets import PRESETS, Format, Quality

KINDS = ("decode", "bound", "ours")
LEAD_SECONDS = 0.5  # how far the fake clock may run ahead of what the encoders finished


# ---- one run, in its own process -----------------------------------------------------------

def run_decode(path: Path, seconds: float) -> dict[str, Any]:
    frames = 0
    cpu0 = cpu_seconds()
    for _ in decode(path, seconds):
        frames += 1
    return {"cpu": cpu_seconds() - cpu0, "media_seconds": seconds, "frames": frames}


def run_bound(path: Path, seconds: float, fmt: Format, quality: Quality,
              out: Path) -> dict[str, Any]:
    from recorder.media.muxer import AUDIO_LAYOUT, AUDIO_RATE, MediaWriter

    preset = PRESETS[quality]
    fps, half = preset.fps, 0.5 / preset.fps
    cpu0 = cpu_seconds()
    writer = MediaWriter("bench-bound", out, fmt, preset)
    resampler = AudioResampler(format=writer.audio_format, layout=AUDIO_LAYOUT,
                               rate=AUDIO_RATE)
    scaler = VideoReformatter()
    current: VideoFrame | None = None  # the picture on screen, at the preset's size
    slot = encoded = 0

    def emit_until(limit: float) -> None:
        """Every slot whose picture is the current one (due before ``limit``)."""
        nonlocal slot, encoded
        while current is not None and slot / fps + half < limit:
            current.pts = slot
            current.time_base = writer.video_time_base
            writer.write_video(current)
            slot += 1
            encoded += 1

    for item in decode(path, seconds):
        frame = item.frame
        if isinstance(frame, VideoFrame):
            emit_until(item.time)
            if (frame.width, frame.height) != (preset.width, preset.height):
                frame = scaler.reformat(frame, preset.width, preset.height, "yuv420p")
            frame.pict_type = PictureType.NONE
            current = frame
        else:
            for sound in resampler.resample(frame):
                writer.write_audio(sound)
    emit_until(seconds + half)
    for sound in resampler.resample(None):
        writer.write_audio(sound)
    writer.write_video(None)
    writer.write_audio(None)
    writer.close()
    return {"cpu": cpu_seconds() - cpu0, "media_seconds": seconds, "slots": encoded,
            "bytes": out.stat().st_size}


class _FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def run_ours(path: Path, seconds: float, fmt: Format, quality: Quality,
             out: Path) -> dict[str, Any]:
    from recorder.media.capture import Capture, CaptureSpec
    from recorder.media.timeline import DEFAULT_LATENCY

    clock = _FakeClock(1000.0)
    origin = clock.now
    cpu0, main0 = cpu_seconds(), time.thread_time()
    capture = Capture(CaptureSpec("bench-ours", out, fmt, quality), clock=clock)
    capture.add_source("mic", "audio")
    capture.add_source("cam", "video")
    waits = 0
    for item in decode(path, seconds):
        clock.now = origin + item.time
        # The encoder threads set the pace; a jump far ahead would read as falling behind.
        while (capture.encoded_seconds < capture.media_seconds - DEFAULT_LATENCY - LEAD_SECONDS
               and capture.error is None):
            time.sleep(0.002)
            waits += 1
        source = "cam" if isinstance(item.frame, VideoFrame) else "mic"
        capture.push(source, item.frame, clock.now)
    clock.now = origin + seconds
    result = capture.stop()
    cpu, main = cpu_seconds() - cpu0, time.thread_time() - main0
    frames = result.frames
    return {"cpu": cpu, "main_thread_cpu": main, "media_seconds": result.duration_seconds,
            "received": frames.received, "written": frames.written,
            "dropped": frames.dropped, "waits": waits, "bytes": out.stat().st_size}


def run_one(spec: dict[str, Any]) -> dict[str, Any]:
    kind, seconds = spec["kind"], float(spec["seconds"])
    path = Path(spec["input"])
    if kind == "decode":
        return run_decode(path, seconds)
    fmt, quality = Format(spec["format"]), Quality(spec["quality"])
    with tempfile.TemporaryDirectory(prefix="bench-transcode-") as tmp:
        out = Path(tmp) / f"{kind}.{fmt.value}"
        if kind == "bound":
            return run_bound(path, seconds, fmt, quality, out)
        return run_ours(path, seconds, fmt, quality, out)


# ---- the driver ----------------------------------------------------------------------------

Results = dict[tuple[str, str, str], list[dict[str, Any]]]


def measure(kinds: Sequence[str], combos: Sequence[tuple[Quality, Format]], seconds: float,
            repeat: int, source: Path) -> Results:
    results: Results = {}
    for round_ in range(repeat):  # interleaved, so drift on the shared box hits all alike
        decoded = run_child("bench.transcode", {"kind": "decode", "seconds": seconds,
                                                 "input": str(source)})
        results.setdefault(("decode", "", ""), []).append(decoded)
        print(f"[{round_ + 1}/{repeat}] decode: {decoded['cpu']:.2f} s CPU", file=sys.stderr)
        for quality, fmt in combos:
            for kind in kinds:
                result = run_child("bench.transcode", {
                    "kind": kind, "seconds": seconds, "input": str(source),
                    "format": fmt.value, "quality": quality.value})
                if kind == "ours" and result["dropped"]:
                    raise RuntimeError(f"ours dropped frames at {quality} {fmt}: {result}")
                results.setdefault((kind, quality.value, fmt.value), []).append(result)
                print(f"[{round_ + 1}/{repeat}] {quality.value} {fmt.value} {kind}: "
                      f"{result['cpu']:.2f} s CPU for {result['media_seconds']:.2f} s",
                      file=sys.stderr)
    return results


def report(results: Results, combos: Sequence[tuple[Quality, Format]], seconds: float,
           repeat: int) -> str:
    def per_second(key: tuple[str, str, str]) -> float:
        return median([r["cpu"] / r["media_seconds"] for r in results[key]])

    decode_cost = per_second(("decode", "", ""))
    lines = [f"{seconds:g} s of 720p30 VP8 2.5 Mbps + Opus, median of {repeat} run(s); "
             f"CPU seconds per media second (1.00 = one core busy); decoding alone "
             f"{decode_cost:.3f}.", "",
             "| preset | format | bound | ours | ratio ours / bound | encode only: bound "
             "| ours | ratio | ours: main thread (decode + push) | dropped |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for quality, fmt in combos:
        bound = per_second(("bound", quality.value, fmt.value))
        ours_runs = results[("ours", quality.value, fmt.value)]
        ours = per_second(("ours", quality.value, fmt.value))
        main = median([r["main_thread_cpu"] / r["media_seconds"] for r in ours_runs])
        dropped = sum(int(r["dropped"]) for r in ours_runs)
        p = PRESETS[quality]
        lines.append(
            f"| {quality.value} ({p.resolution}@{p.fps}) | {fmt.value} | {bound:.3f} | "
            f"{ours:.3f} | **{ours / bound:.2f}** | {bound - decode_cost:.3f} | "
            f"{ours - decode_cost:.3f} | {(ours - decode_cost) / (bound - decode_cost):.2f} | "
            f"{main:.3f} | {dropped} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.transcode", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--qualities", default="low,medium,high")
    parser.add_argument("--formats", default="webm,mp4,mkv")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_one(json.loads(args.child))))
        return 0
    qualities = [Quality(q) for q in args.qualities.split(",")]
    formats = [Format(f) for f in args.formats.split(",")]
    combos = [(q, f) for q in qualities for f in formats]
    source = input_file(args.seconds)
    results = measure(("bound", "ours"), combos, args.seconds, args.repeat, source)
    print(machine())
    print(report(results, combos, args.seconds, args.repeat))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
