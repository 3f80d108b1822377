"""The soak's publishers: one process per publisher clock, each skewed against this machine.

``python -m bench.soak_publish --clock-ppm P`` reads one JSON line on stdin, a list of
publishers (``url``, ``token``, ``mic_ppm``), publishes each, prints ``{"connected": n}``
and sends until stdin closes or says ``stop``.

A publisher's camera is replayed, not encoded (six live VP8 encoders would cost this box
more than the recorder it measures, and late pictures would blur what is measured): a
10 s clip made once (``bench/.cache/soak-clip.webm``, a keyframe every second) that
flashes white at 5 s, looped on the publisher's clock. Its microphone is encoded live
(Opus is cheap), a tone that beeps at 5 s of every 10 s of the publisher's clock, its
samples counted on a clock ``mic_ppm`` off (:class:`tests.support.publisher.SyntheticAudio`).

Another computer's clock runs off ours: here every clock of the process does by ``P``
ppm. The publishers' pacing follows it (``clock_ppm``), and so do their RTCP sender
reports, whose wall clock aiortc reads from ``aiortc.clock.current_ntp_time``: that one
function is replaced for the whole process, which is why each skew has a process of its
own. Each microphone then drifts a further ``mic_ppm`` from its publisher's clock.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import aiortc.clock
import av
import numpy as np
from aiortc import RTCRtpSender
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from bench.common import CACHE
from bench.replay import Clip, Recorded
from tests.support.publisher import SharedClock, WhipPublisher

NTP_OFFSET = 2_208_988_800  # seconds from 1900 (NTP) to 1970 (Unix)
SIZE = (320, 240)
FPS = 15
CLIP_SECONDS = 10
FLASH_AT = 5.0  # seconds into each pass of the clip
FLASH_SECONDS = 0.1


def make_clip(path: Path) -> None:
    """Grey with a moving bar, white from 5.0 s to 5.1 s; VP8, a keyframe every second."""
    partial = path.with_suffix(".part")
    with av.open(str(partial), "w", format="webm") as container:
        video = container.add_stream("libvpx", rate=FPS, options={
            "deadline": "good", "cpu-used": "4", "lag-in-frames": "0"})
        video.width, video.height, video.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        video.bit_rate = 300_000
        video.codec_context.gop_size = FPS
        w, h = SIZE
        for k in range(CLIP_SECONDS * FPS):
            white = FLASH_AT <= k / FPS < FLASH_AT + FLASH_SECONDS
            yuv = np.full((h * 3 // 2, w), 128, dtype=np.uint8)
            yuv[:h, :] = 235 if white else 60
            if not white:
                yuv[:h, (k * 8) % w:(k * 8) % w + 16] = 200
            frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
            frame.pts = k
            frame.time_base = Fraction(1, FPS)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
    partial.rename(path)


def load_clip() -> Clip:
    path = CACHE / "soak-clip.webm"
    if not path.exists():
        CACHE.mkdir(exist_ok=True)
        make_clip(path)
    packets: list[Recorded] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            if packet.pts is not None and packet.size:
                packets.append(Recorded(bytes(packet), int(packet.pts)))
    assert stream.time_base is not None
    length = round(CLIP_SECONDS / stream.time_base)
    return Clip(packets, stream.time_base, length)


class ClipVideo(MediaStreamTrack):
    """The clip's packets, looped, each when the publisher's clock reaches it."""

    kind = "video"

    def __init__(self, clip: Clip, clock: SharedClock) -> None:
        super().__init__()
        self._clip = clip
        self._clock = clock
        self._n = 0

    async def recv(self) -> av.Packet:  # type: ignore[type-arg]
        if self.readyState != "live":
            raise MediaStreamError
        loops, index = divmod(self._n, len(self._clip.packets))
        pts = loops * self._clip.length + self._clip.packets[index].pts
        await self._clock.sleep_until(float(pts * self._clip.time_base))
        packet = av.Packet(self._clip.packets[index].data)
        packet.pts = pts
        packet.time_base = self._clip.time_base
        self._n += 1
        return packet


def skew_sender_reports(ppm: float) -> None:
    """Make aiortc's sender reports read a wall clock running ``ppm`` off this one."""
    base = time.time()
    rate = 1 + ppm / 1e6

    def skewed() -> int:
        seconds = base + (time.time() - base) * rate + NTP_OFFSET
        return (int(seconds) << 32) | int((seconds % 1) * (1 << 32))

    aiortc.clock.current_ntp_time = skewed


def publisher(one: dict[str, Any], clip: Clip, clock_ppm: float) -> WhipPublisher:
    """A microphone made live and the clip as its camera, on one skewed clock."""
    markers = [FLASH_AT + k * CLIP_SECONDS for k in range(int(one["markers"]))]
    pub = WhipPublisher(one["url"], one["token"], video=None, markers=markers,
                        mic_ppm=one["mic_ppm"], clock_ppm=clock_ppm)
    transceiver = pub.peer.pc.addTransceiver(ClipVideo(clip, pub.peer.clock),
                                             direction="sendonly")
    transceiver.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("video").codecs
                                     if c.name.lower() in ("vp8", "rtx")])
    return pub


async def publish(spec: list[dict[str, Any]], clock_ppm: float) -> None:
    clip = load_clip()
    async with contextlib.AsyncExitStack() as stack:
        for one in spec:
            await stack.enter_async_context(publisher(one, clip, clock_ppm))
        print(json.dumps({"connected": len(spec)}), flush=True)
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line or line.strip() == "stop":
                return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak_publish")
    parser.add_argument("--clock-ppm", type=float, default=0.0)
    args = parser.parse_args(argv)
    skew_sender_reports(args.clock_ppm)
    spec = json.loads(sys.stdin.readline())
    asyncio.run(publish(spec, args.clock_ppm))
    return 0


if __name__ == "__main__":
    sys.exit(main())
