"""Our room recording against aiortc's MediaRecorder, on the same live WebRTC stream.

Not a test (no pass/fail): ``python -m bench.mediarecorder [--seconds 20] [--repeat 2]
[--formats webm,mp4] [--fps 30]``.

A real aiortc publisher (``tests.support.publisher``: a sweeping bar at 1280x720 and a
tone, VP8 + Opus) runs in this process; the recording side runs in a child process of
its own, over loopback WebRTC (ICE on 127.0.0.1 only), and is one of:

- ``sink``: the peer alone, every frame received and decoded and then dropped
  (``MediaBlackhole``): what any recorder pays before it records anything;
- ``ours``: a :class:`recorder.room.session.RoomSession` driven by its messages (Publish,
  StartCapture, StopCapture), recording at ``medium`` (1280x720@30, the publisher's size);
- ``mediarecorder``: ``aiortc.contrib.media.MediaRecorder`` with each track added as it
  arrives, to a file of the same format (its own codec defaults: MediaRecorder takes no
  codec options).

The camera starts 1.5 s after the microphone and every 3 s (from 3 s on) the picture
flashes white while a 1 kHz beep sounds (``markers``), so the file shows how far apart a
viewer sees and hears the same moment. Measured in the child: process CPU from before the
offer is answered until the file is closed, divided by the seconds the stream was
recorded; then the file is decoded here (PyAV) for its size, frames, duration and offsets.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import cpu_seconds, machine, median
from recorder.core.presets import Format, Quality
from recorder.rtc.ice import restrict_host_addresses

KINDS = ("sink", "ours", "mediarecorder")
VIDEO_DELAY = 1.5  # the camera's first frame, after the microphone's
MARKER_EVERY = 3.0
WIDTH, HEIGHT = 1280, 720
CHILD_TIMEOUT = 120.0  # a guard against a hung child, not a measurement


def markers(seconds: float) -> list[float]:
    count = int((seconds - 1.0) // MARKER_EVERY)
    return [MARKER_EVERY * (k + 1) for k in range(count)]


# ---- the recording side, in its own process ------------------------------------------------

async def _lines() -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


def _say(message: dict[str, Any]) -> None:
    print(json.dumps(message), flush=True)


async def child(spec: dict[str, Any]) -> None:
    """Answer the offer read from stdin, record until ``stop`` comes, report on stdout."""
    restrict_host_addresses(["127.0.0.1"])
    stdin = await _lines()
    offer = json.loads(await stdin.readline())["offer"]
    kind, out = spec["kind"], Path(spec["out"])
    cpu0 = cpu_seconds()
    if kind == "ours":
        result = await _record_ours(offer, out, Format(spec["format"]), stdin)
    else:
        result = await _record_aiortc(offer, out, kind, stdin)
    result["cpu"] = cpu_seconds() - cpu0
    _say(result)


async def _record_ours(offer: str, out: Path, fmt: Format,
                       stdin: asyncio.StreamReader) -> dict[str, Any]:
    from recorder.room.messages import (
        CaptureFailed,
        CaptureFinished,
        Publish,
        PublishAnswer,
        RoomEvent,
        StartCapture,
        StopCapture,
    )
    from recorder.room.session import RoomConfig, RoomSession

    events: list[RoomEvent] = []
    done = asyncio.Event()

    def emit(event: RoomEvent) -> None:
        events.append(event)
        if isinstance(event, CaptureFinished | CaptureFailed):
            done.set()

    room = RoomSession("bench-room", RoomConfig(max_publishers=4, ice_servers=[]), emit)
    try:
        # Started before the publisher joins, so the file begins with its first frame.
        await room.handle(StartCapture("bench", str(out.parent), out.name, fmt,
                                       Quality.MEDIUM))
        reply = await room.handle(Publish("publisher-1", "user-1", "user-1", "camera", offer))
        assert isinstance(reply, PublishAnswer)
        _say({"answer": reply.answer_sdp})
        await stdin.readline()  # "stop"
        recorded = time.monotonic()
        await room.handle(StopCapture("bench"))
        await asyncio.wait_for(done.wait(), CHILD_TIMEOUT)
        finalised = time.monotonic() - recorded
    finally:
        await room.close()
    finished = [e for e in events if isinstance(e, CaptureFinished)]
    if not finished:
        raise RuntimeError(f"the capture failed: {events}")
    frames = finished[0].frames
    return {"recorded_at": recorded, "finalise_seconds": finalised,
            "received": frames.received, "written": frames.written, "dropped": frames.dropped}


async def _record_aiortc(offer: str, out: Path, kind: str,
                         stdin: asyncio.StreamReader) -> dict[str, Any]:
    from aiortc import RTCPeerConnection, RTCSessionDescription
    from aiortc.contrib.media import MediaBlackhole, MediaRecorder

    pc = RTCPeerConnection()
    sink: MediaBlackhole | MediaRecorder = (
        MediaBlackhole() if kind == "sink" else MediaRecorder(str(out)))
    pc.on("track", sink.addTrack)
    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        await sink.start()
        _say({"answer": pc.localDescription.sdp})
        await stdin.readline()  # "stop"
        recorded = time.monotonic()
        await sink.stop()
        finalised = time.monotonic() - recorded
    finally:
        await pc.close()
    return {"recorded_at": recorded, "finalise_seconds": finalised}


# ---- the publisher and the driver ----------------------------------------------------------

async def measure(kind: str, fmt: Format, seconds: float, fps: int, delay: float,
                  work: Path) -> dict[str, Any]:
    """One recording of ``seconds`` by ``kind``; the child's numbers plus the file's."""
    from tests.support.publisher import SyntheticPublisher

    out = work / f"{kind}-{time.monotonic_ns()}" / f"recording.{fmt.value}"
    out.parent.mkdir()
    spec = {"kind": kind, "format": fmt.value, "out": str(out)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.mediarecorder", "--child", json.dumps(spec),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    assert process.stdin is not None
    assert process.stdout is not None
    publisher = SyntheticPublisher(video=(WIDTH, HEIGHT), fps=fps, delay_video=delay,
                                   markers=markers(seconds))
    try:
        process.stdin.write(json.dumps({"offer": await publisher.offer()}).encode() + b"\n")
        await process.stdin.drain()
        line = await asyncio.wait_for(process.stdout.readline(), CHILD_TIMEOUT)
        if not line:
            raise RuntimeError(f"{kind}: no answer")
        await publisher.accept(json.loads(line)["answer"])
        await publisher.wait_connected()
        started = time.monotonic()
        await asyncio.sleep(seconds)
        process.stdin.write(b"stop\n")
        await process.stdin.drain()
        line = await asyncio.wait_for(process.stdout.readline(), CHILD_TIMEOUT)
        span = time.monotonic() - started
        sent = publisher.video.frames_sent if publisher.video else 0
    finally:
        await publisher.close()
        stderr = b""
        if process.returncode is None:
            _, stderr = await asyncio.wait_for(process.communicate(), CHILD_TIMEOUT)
    if not line or process.returncode:
        raise RuntimeError(f"{kind} failed:\n{stderr.decode()[-3000:]}")
    result: dict[str, Any] = json.loads(line)
    result["seconds"] = span  # from connected to the stop: what the stream lasted
    result["frames_sent"] = sent
    if kind != "sink":
        result.update(describe(out))
    return result


def describe(path: Path) -> dict[str, Any]:
    """What a viewer gets from the file: streams, size, duration, and A/V offsets."""
    import av

    with av.open(str(path)) as container:
        has_video, has_audio = bool(container.streams.video), bool(container.streams.audio)
        size, packets = "-", 0
        if has_video:
            context = container.streams.video[0].codec_context
            size = f"{context.width}x{context.height}"
            packets = sum(1 for packet in container.demux(video=0) if packet.size)
    found: dict[str, Any] = {"has_video": has_video, "has_audio": has_audio, "size": size,
                             "bytes": path.stat().st_size, "video_packets": packets,
                             "video_frames": 0, "offsets": []}
    if not (has_video and has_audio and packets):
        return found
    from tests.support.file_analysis import probe

    p = probe(path)
    found["video_frames"] = len(p.frame_times)
    found["video_span"] = (p.frame_times[-1] - p.frame_times[0]) if p.frame_times else 0.0
    found["audio_seconds"] = p.audio_duration
    found["first_video"] = p.frame_times[0] if p.frame_times else None
    found["first_audio"] = p.audio_start
    found["offsets"] = offsets(p.frame_times, p.lumas, p.audio, p.audio_start, p.sample_rate)
    return found


def offsets(frame_times: Sequence[float], lumas: Sequence[float], audio: np.ndarray[Any, Any],
            audio_start: float, rate: int) -> list[float]:
    """Flash time minus beep time (seconds) for each flash, paired with the nearest beep;
    positive: the picture comes after the sound."""
    flashes = [t for k, (t, luma) in enumerate(zip(frame_times, lumas, strict=True))
               if luma > 150 and (k == 0 or lumas[k - 1] <= 150)]
    window = int(0.0025 * rate)
    chunks = audio[: len(audio) // window * window].reshape(-1, window)
    envelope = np.sqrt(np.mean(chunks ** 2, axis=1))
    loud = envelope > 0.3  # the beep's level; the background tone stays near 0.07
    beeps: list[float] = []
    for k in np.nonzero(loud[1:] & ~loud[:-1])[0] + 1:
        at = audio_start + int(k) * window / rate
        if not beeps or at - beeps[-1] > 1.0:
            beeps.append(at)
    if not beeps:
        return []
    return [round(f - min(beeps, key=lambda b: abs(b - f)), 3) for f in flashes]


Results = dict[tuple[str, str, float], list[dict[str, Any]]]
DELAYS = (0.0, VIDEO_DELAY)  # the camera on time, and late


async def run_all(kinds: Sequence[str], formats: Sequence[Format], seconds: float,
                  repeat: int, fps: int, delays: Sequence[float] = DELAYS) -> Results:
    restrict_host_addresses(["127.0.0.1"])
    results: Results = {}
    with tempfile.TemporaryDirectory(prefix="bench-mediarecorder-") as tmp:
        for round_, delay, fmt, kind in itertools.product(range(repeat), delays, formats,
                                                           kinds):
            if kind == "sink" and (fmt is not formats[0] or delay != delays[0]):
                continue  # no file: one run says it all
            result = await measure(kind, fmt, seconds, fps, delay, Path(tmp))
            results.setdefault((kind, fmt.value, delay), []).append(result)
            print(f"[{round_ + 1}/{repeat}] {fmt.value} camera +{delay:g} s {kind}: "
                  f"{result['cpu']:.2f} s CPU in {result['seconds']:.1f} s; "
                  + json.dumps({k: v for k, v in result.items()
                                if k not in ("cpu", "seconds", "recorded_at")}),
                  file=sys.stderr)
    return results


def report(results: Results, formats: Sequence[Format], seconds: float, repeat: int,
           fps: int, delays: Sequence[float] = DELAYS) -> str:
    def per_second(key: tuple[str, str, float]) -> float:
        return median([r["cpu"] / r["seconds"] for r in results[key]])

    sink = per_second(("sink", formats[0].value, delays[0]))
    lines = [f"{seconds:g} s of a live 1280x720@{fps} VP8 + Opus stream over loopback, the "
             f"camera on time or {VIDEO_DELAY:g} s after the microphone, a flash + beep every "
             f"{MARKER_EVERY:g} s; median of {repeat} run(s). CPU seconds of the recording "
             f"process per second of stream; receiving and decoding alone (sink): "
             f"{sink:.3f}.", "",
             "| format | camera | recorder | CPU / s | above the sink | ratio to ours | video "
             f"size and frames in the file, each run ({round(seconds * fps)} slots) "
             "| A/V offset, flash minus beep |",
             "|---|---|---|---|---|---|---|---|"]
    for fmt, delay in itertools.product(formats, delays):
        ours = per_second(("ours", fmt.value, delay))
        camera = f"+{delay:g} s" if delay else "on time"
        for kind in ("ours", "mediarecorder"):
            runs = results[(kind, fmt.value, delay)]
            cpu = per_second((kind, fmt.value, delay))
            every = [o for r in runs for o in r["offsets"]]
            offset = (f"median {median(every) * 1000:+.0f} ms, worst "
                      f"{max(every, key=abs) * 1000:+.0f} ms" if every else
                      "no flash found" if any(r["video_frames"] for r in runs) else
                      "no video")
            files = " / ".join(f"{r['size']} {r['video_frames']}" for r in runs)
            lines.append(
                f"| {fmt.value} | {camera} | {kind} | {cpu:.3f} | {cpu - sink:.3f} | "
                f"{(cpu - sink) / (ours - sink):.2f} | {files} | {offset} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mediarecorder", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--formats", default="webm,mp4")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        asyncio.run(child(json.loads(args.child)))
        return 0
    formats = [Format(f) for f in args.formats.split(",")]
    results = asyncio.run(run_all(KINDS, formats, args.seconds, args.repeat, args.fps))
    print(machine())
    print(report(results, formats, args.seconds, args.repeat, args.fps))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
