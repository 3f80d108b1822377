"""Load generators for the room benchmarks: replayed publishers and a bare receiving peer.

Encoding 720p VP8 live would cost the load generator far more CPU than the recorder it
measures, on the same two cores. So each publisher replays the packets of the cached input
(``bench.common.input_file``: 720p30 VP8 2.5 Mbps + Opus): its tracks return ``av.Packet``
objects with ``pts``/``time_base``, which aiortc's sender packs into RTP without encoding.
Packets go out on the input's own clock (one clock per peer, looped seamlessly: the input
starts with a keyframe; the video starts ``VIDEO_DELAY`` after the audio), so the receiver
sees what a camera would send.

Two processes live here, each driven over stdin/stdout JSON lines:

- ``python -m bench.replay --publish '<spec>'``: peers that POST their offers to WHIP URLs,
  report ``connected``, send until ``stop`` is read, then DELETE and report what each sent;
- ``python -m bench.replay --sink``: the bound, a bare aiortc peer (uvloop, as recorderd)
  answering WHIP-style POSTs that only takes the encoded frames (the receiver tap's
  encoded-only demand: nothing decoded) and drops them. It prints its port. With
  ``--through-thread`` every frame takes aiortc's own way, through its decoder thread
  (which the tap's direct path skips), where the tap hands it back undecoded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Any
from urllib.parse import urljoin

import aiohttp
import av
import uvloop
from aiohttp import web
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from bench.common import input_file
from recorder.rtc import taps
from recorder.rtc.ice import restrict_host_addresses

CONNECT_TIMEOUT = 60.0  # a guard against a hung peer, not a measurement
# The camera's first frame, after the microphone's. A `source` composite file opens at its
# first frame with the tracks known then, so a video that arrives before its audio's track
# is announced gets a file without audio (see bench/RESULTS.md); browsers send the audio
# first, and so does this.
VIDEO_DELAY = 0.2
FLUSH = 1.0  # between the last packet sent and the DELETE


@dataclass(frozen=True)
class Recorded:
    """One packet of the input: its bytes and its time in its track's time base."""

    data: bytes
    pts: int


@dataclass(frozen=True)
class Clip:
    """One track of the input, ready to loop: ``length`` is one pass in ``time_base``."""

    packets: list[Recorded]
    time_base: Fraction
    length: int


def load(seconds: float) -> dict[str, Clip]:
    """The cached input's video and audio packets, each track rebased to start at 0."""
    found: dict[str, list[tuple[bytes, int]]] = {"video": [], "audio": []}
    bases: dict[str, Fraction] = {}
    with av.open(str(input_file(seconds))) as container:
        for packet in container.demux():
            if packet.pts is None or packet.time_base is None or packet.size == 0:
                continue
            kind: str = packet.stream.type
            found[kind].append((bytes(packet), int(packet.pts)))
            bases[kind] = packet.time_base
    clips: dict[str, Clip] = {}
    for kind, items in found.items():
        first = items[0][1]
        step = items[-1][1] - items[-2][1]  # one frame: the pass loops without a gap
        clips[kind] = Clip([Recorded(d, p - first) for d, p in items], bases[kind],
                           items[-1][1] - first + step)
    return clips


class PeerClock:
    """t = 0 when either of a peer's tracks asks for its first packet."""

    def __init__(self) -> None:
        self.t0: float | None = None

    async def sleep_until(self, t: float) -> None:
        if self.t0 is None:
            self.t0 = time.monotonic()
        delay = self.t0 + t - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


class ReplayTrack(MediaStreamTrack):
    """A track that returns the clip's packets on time, looped, never encoded again."""

    def __init__(self, kind: str, clip: Clip, clock: PeerClock, delay: float = 0.0) -> None:
        super().__init__()
        self.kind = kind
        self._clip = clip
        self._clock = clock
        self._delay = delay
        self._n = 0
        self.sent = 0

    async def recv(self) -> av.Packet:  # type: ignore[type-arg]
        if self.readyState != "live":
            raise MediaStreamError
        clip = self._clip
        loops, index = divmod(self._n, len(clip.packets))
        recorded = clip.packets[index]
        pts = loops * clip.length + recorded.pts
        await self._clock.sleep_until(self._delay + float(pts * clip.time_base))
        if self.readyState != "live":
            raise MediaStreamError
        packet = av.Packet(recorded.data)
        packet.pts = pts
        packet.time_base = clip.time_base
        self._n += 1
        self.sent += 1
        return packet


class ReplayPeer:
    """One publisher: an audio and a video track replayed to one WHIP URL."""

    def __init__(self, clips: dict[str, Clip], url: str, token: str) -> None:
        self.url = url
        self.token = token
        self.pc = RTCPeerConnection()
        clock = PeerClock()
        self.audio = ReplayTrack("audio", clips["audio"], clock)
        self.video = ReplayTrack("video", clips["video"], clock, VIDEO_DELAY)
        self.pc.addTransceiver(self.audio, direction="sendonly")
        self.pc.addTransceiver(self.video, direction="sendonly")
        self.location: str | None = None
        self._connected = asyncio.Event()
        self.pc.on("connectionstatechange", self._on_state)

    def _on_state(self) -> None:
        if self.pc.connectionState == "connected":
            self._connected.set()

    async def connect(self, http: aiohttp.ClientSession) -> None:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/sdp"}
        async with http.post(self.url, data=str(self.pc.localDescription.sdp).encode(),
                             headers=headers) as response:
            body = await response.text()
            if response.status != 201:
                raise RuntimeError(f"WHIP POST {self.url}: {response.status} {body[:300]}")
            self.location = urljoin(self.url, response.headers["Location"])
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
        await asyncio.wait_for(self._connected.wait(), CONNECT_TIMEOUT)

    async def close(self, http: aiohttp.ClientSession) -> dict[str, int]:
        sent = {"audio": self.audio.sent, "video": self.video.sent}
        if self.location is not None:
            headers = {"Authorization": f"Bearer {self.token}"}
            async with http.delete(self.location, headers=headers):
                pass
        await self.pc.close()
        return sent


def _say(message: dict[str, Any]) -> None:
    print(json.dumps(message), flush=True)


async def _stdin() -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def publish(spec: dict[str, Any]) -> None:
    """Connect every target's peer, send until ``stop``, report what each sent."""
    restrict_host_addresses(["127.0.0.1"])
    stdin = await _stdin()
    clips = load(float(spec["seconds"]))
    async with aiohttp.ClientSession() as http:
        peers = [ReplayPeer(clips, t["url"], t["token"]) for t in spec["targets"]]
        for peer in peers:  # one at a time: a burst of DTLS handshakes only adds noise
            await peer.connect(http)
        _say({"connected": len(peers)})
        await stdin.readline()
        for peer in peers:
            peer.audio.stop()
            peer.video.stop()
        await asyncio.sleep(FLUSH)  # what is on the wire arrives before the DELETE
        _say({"sent": [await peer.close(http) for peer in peers]})


# ---- the bound: a bare peer that takes encoded frames only ---------------------------------

class Sink:
    """Answers offers; every incoming track's encoded frames are read and dropped."""

    def __init__(self, direct: bool) -> None:
        self.direct = direct
        self.peers: set[RTCPeerConnection] = set()
        self.frames = 0
        self._drains: set[asyncio.Task[None]] = set()

    async def offer(self, request: web.Request) -> web.Response:
        pc = RTCPeerConnection()
        self.peers.add(pc)

        @pc.on("track")
        def _on_track(track: MediaStreamTrack) -> None:
            for transceiver in pc.getTransceivers():
                if transceiver.receiver.track is track:
                    tap = taps.tap_of(transceiver.receiver)
                    if not self.direct:  # every frame on aiortc's own way, its decoder thread
                        tap.route = tap.to_thread  # type: ignore[method-assign]
                    tap.set_demand(decoded=False, encoded=True)
            drain = asyncio.ensure_future(self._drain(track))
            self._drains.add(drain)
            drain.add_done_callback(self._drains.discard)

        await pc.setRemoteDescription(RTCSessionDescription(sdp=await request.text(),
                                                            type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        session = f"/whip/sink/{len(self.peers)}"
        return web.Response(status=201, text=str(pc.localDescription.sdp),
                            content_type="application/sdp", headers={"Location": session})

    async def delete(self, request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def _drain(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                await track.recv()
                self.frames += 1
        except MediaStreamError:
            return


async def sink(direct: bool) -> None:
    """Serve until stdin closes; print the port first and the frame count last."""
    restrict_host_addresses(["127.0.0.1"])
    taps.install()
    bare = Sink(direct)
    app = web.Application()
    app.router.add_post("/whip/{room}", bare.offer)
    app.router.add_delete("/whip/sink/{session}", bare.delete)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = int(runner.addresses[0][1])
    stdin = await _stdin()
    _say({"port": port})
    await stdin.readline()
    for pc in list(bare.peers):
        await pc.close()
    await runner.cleanup()
    _say({"frames": bare.frames})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.replay", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--publish", help="JSON: {targets: [{url, token}], seconds}")
    parser.add_argument("--sink", action="store_true")
    parser.add_argument("--through-thread", action="store_true",
                        help="sink: frames through aiortc's decoder thread")
    args = parser.parse_args(argv)
    if args.sink:
        uvloop.run(sink(direct=not args.through_thread))
    elif args.publish:
        uvloop.run(publish(json.loads(args.publish)))
    else:
        parser.error("--publish or --sink")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
