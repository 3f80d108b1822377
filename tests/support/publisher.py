"""A WHIP publisher for tests: an aiortc peer that sends synthetic camera and microphone.

Frames are cheap on purpose (a few pre-built pictures cycled, one precomputed second of tone)
so that a test pays for aiortc's VP8 encoder and nothing else. Both tracks share one clock and
stamp their frames from it, so what a recording shows at second t is what was sent at t:
`markers` flash the picture white and beep at known times for A/V sync checks, and
`delay_video` holds the camera back while the microphone already sends. `mic_ppm` makes the
microphone's sample clock run that many parts per million off the shared clock, as a
cheap sound card's does: at +2000 its RTP timestamps count 48,096 samples per second of the
shared clock, its packets leave at that rate and a beep at shared time t is at sample
48,096 t, while aiortc's sender reports still pair each RTP time with the real time it was
sent (so a receiver can see the rate, as with a browser). `clock_ppm` makes the whole
publisher's clock run off this machine's (sender reports excepted: aiortc reads the wall
clock for them, which a process of its own can skew, as `bench.soak` does).

    async with WhipPublisher(url, token, video=(1280, 720), fps=15) as pub:
        ...                      # connected; pub.location is the WHIP session
                                 # DELETE on exit

:class:`SyntheticPublisher` is the same peer without HTTP, for driving a room directly.
"""

from __future__ import annotations

import asyncio
import fractions
import math
import time
from collections.abc import Sequence
from types import TracebackType
from urllib.parse import urljoin

import aiohttp
import av
import numpy as np
from aiortc import RTCDataChannel, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

VIDEO_CLOCK = 90_000
AUDIO_RATE = 48_000
AUDIO_SAMPLES = 960  # 20 ms
MARKER_SECONDS = 0.1  # how long a flash and a beep last
CONNECT_TIMEOUT = 60.0  # a safety net against a hung test, not a measurement


class SharedClock:
    """t = 0 when the first track asks for its first frame; with ``ppm`` the publisher's
    clock runs that many parts per million fast against this machine's (its second lasts
    1 / (1 + ppm / 1e6) of ours), as another computer's would."""

    def __init__(self, ppm: float = 0.0) -> None:
        self.t0: float | None = None
        self.rate = 1 + ppm / 1e6

    def start(self) -> float:
        if self.t0 is None:
            self.t0 = time.monotonic()
        return self.t0

    async def sleep_until(self, t: float) -> None:
        delay = self.start() + t / self.rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


def _in_marker(t: float, markers: Sequence[float]) -> bool:
    return any(m <= t < m + MARKER_SECONDS for m in markers)


def _in_marker_each(times: np.ndarray, markers: Sequence[float]) -> np.ndarray:
    """For each of ``times``, whether it falls in a marker."""
    inside = np.zeros(len(times), dtype=bool)
    first, last = float(times[0]), float(times[-1])
    for m in markers:
        if m <= last and first < m + MARKER_SECONDS:
            inside |= (times >= m) & (times < m + MARKER_SECONDS)
    return inside


class SyntheticVideo(MediaStreamTrack):
    """A bar sweeping across a flat `shade` of grey at `fps`; white frames during markers."""

    kind = "video"

    def __init__(self, clock: SharedClock, width: int, height: int, fps: int,
                 delay: float = 0.0, markers: Sequence[float] = (), shade: int = 60,
                 cycle: int = 16) -> None:
        super().__init__()
        self._clock = clock
        self._fps = fps
        self._delay = delay
        self._markers = tuple(markers)
        self._n = 0
        self.frames_sent = 0
        w, h = width - width % 2, height - height % 2
        self._pictures = [self._picture(w, h, i * w // cycle, max(2, w // cycle), shade)
                          for i in range(cycle)]
        self._white = self._picture(w, h, 0, 0, 235)

    @staticmethod
    def _picture(w: int, h: int, x: int, bar: int, luma: int) -> np.ndarray:
        yuv = np.full((h * 3 // 2, w), 128, dtype=np.uint8)
        yuv[:h, :] = luma
        yuv[:h, x:x + bar] = 200
        return yuv

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        t = self._delay + self._n / self._fps
        await self._clock.sleep_until(t)
        picture = self._white if _in_marker(t, self._markers) else (
            self._pictures[self._n % len(self._pictures)])
        frame = av.VideoFrame.from_ndarray(picture, format="yuv420p")
        frame.pts = round(t * VIDEO_CLOCK)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self._n += 1
        self.frames_sent += 1
        return frame


class SyntheticAudio(MediaStreamTrack):
    """A quiet 440 Hz tone (or silence) in 20 ms frames; a loud 1 kHz beep during markers."""

    kind = "audio"

    def __init__(self, clock: SharedClock, markers: Sequence[float] = (),
                 tone: bool = True, ppm: float = 0.0) -> None:
        super().__init__()
        self._clock = clock
        self._markers = tuple(markers)
        self._rate = AUDIO_RATE * (1 + ppm / 1e6)  # samples per second of the shared clock
        self._n = 0
        t = np.arange(AUDIO_RATE) / AUDIO_RATE  # whole cycles in one second: loops cleanly
        level = 0.1 if tone else 0.0
        self._base = (level * 32767 * np.sin(2 * math.pi * 440 * t)).astype(np.int16)
        self._beep = (0.8 * 32767 * np.sin(2 * math.pi * 1000 * t)).astype(np.int16)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        start = self._n * AUDIO_SAMPLES
        await self._clock.sleep_until(start / self._rate)
        offset = start % AUDIO_RATE
        samples = self._base[offset:offset + AUDIO_SAMPLES].copy()
        # the beep starts on the sample the microphone takes at the marker, not on the
        # first frame after it (which a skewed sample clock puts up to 20 ms late)
        beeping = _in_marker_each((start + np.arange(AUDIO_SAMPLES)) / self._rate,
                                  self._markers)
        samples[beeping] = self._beep[offset:offset + AUDIO_SAMPLES][beeping]
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = start
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        self._n += 1
        return frame


class SyntheticPublisher:
    """The publishing peer alone: make an offer, apply an answer, wait for the connection."""

    def __init__(self, video: tuple[int, int] | None = (640, 360), fps: int = 15,
                 audio: bool = True, video_codec: str = "VP8", delay_video: float = 0.0,
                 markers: Sequence[float] = (), tone: bool = True, shade: int = 60,
                 data_channels: Sequence[str] = (), mic_ppm: float = 0.0,
                 clock_ppm: float = 0.0) -> None:
        self.pc = RTCPeerConnection()
        self.clock = SharedClock(clock_ppm)
        # label -> channel, opened with the offer; `send` waits until one is open
        self.channels: dict[str, RTCDataChannel] = {
            label: self.pc.createDataChannel(label) for label in data_channels}
        self.video: SyntheticVideo | None = None
        self.audio: SyntheticAudio | None = None
        if audio:
            self.audio = SyntheticAudio(self.clock, markers, tone, mic_ppm)
            self.pc.addTransceiver(self.audio, direction="sendonly")
        if video is not None:
            self.video = SyntheticVideo(self.clock, video[0], video[1], fps, delay_video,
                                        markers, shade)
            transceiver = self.pc.addTransceiver(self.video, direction="sendonly")
            codecs = [c for c in RTCRtpSender.getCapabilities("video").codecs
                      if c.name.lower() in (video_codec.lower(), "rtx")]
            transceiver.setCodecPreferences(codecs)
        self._connected = asyncio.Event()
        self.pc.on("connectionstatechange", self._on_state)

    def _on_state(self) -> None:
        if self.pc.connectionState == "connected":
            self._connected.set()

    async def send(self, label: str, message: str | bytes) -> None:
        """Send on the data channel ``label`` once it is open."""
        channel = self.channels[label]
        if channel.readyState != "open":
            opened = asyncio.Event()
            channel.on("open", opened.set)
            if channel.readyState != "open":
                await asyncio.wait_for(opened.wait(), CONNECT_TIMEOUT)
        channel.send(message)

    async def offer(self, setup: str | None = None) -> str:
        """The offer with our candidates; `setup` rewrites a=setup (aiortc offers actpass)."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        sdp = str(self.pc.localDescription.sdp)
        if setup is not None:
            sdp = sdp.replace("a=setup:actpass", f"a=setup:{setup}")
        return sdp

    async def accept(self, answer_sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))

    async def wait_connected(self, within: float = CONNECT_TIMEOUT) -> None:
        await asyncio.wait_for(self._connected.wait(), within)

    async def close(self) -> None:
        await self.pc.close()


class WhipError(AssertionError):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"WHIP POST answered {status}: {body[:300]}")
        self.status = status
        self.body = body


class WhipPublisher:
    """POST the offer, check 201 + Location, connect; DELETE the session on exit."""

    def __init__(self, url: str, token: str | None, video: tuple[int, int] | None = (1280, 720),
                 fps: int = 15, audio: bool = True, setup: str | None = None, *,
                 video_codec: str = "VP8", delay_video: float = 0.0,
                 markers: Sequence[float] = (), tone: bool = True, shade: int = 60,
                 headers: dict[str, str] | None = None,
                 data_channels: Sequence[str] = (), mic_ppm: float = 0.0,
                 clock_ppm: float = 0.0) -> None:
        self.url = url
        self.token = token
        self.setup = setup
        self.peer = SyntheticPublisher(video, fps, audio, video_codec, delay_video, markers,
                                       tone, shade, data_channels, mic_ppm, clock_ppm)
        self.location: str | None = None
        self.answer_sdp = ""
        self.response_headers: dict[str, str] = {}
        self.delete_status: int | None = None
        self._headers = dict(headers or {})
        self._http: aiohttp.ClientSession | None = None

    def _auth(self) -> dict[str, str]:
        headers = dict(self._headers)
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    async def __aenter__(self) -> WhipPublisher:
        self._http = aiohttp.ClientSession()
        try:
            await self._publish()
        except BaseException:
            await self._shutdown()
            raise
        return self

    async def _publish(self) -> None:
        assert self._http is not None
        offer = await self.peer.offer(self.setup)
        headers = {**self._auth(), "Content-Type": "application/sdp"}
        async with self._http.post(self.url, data=offer.encode(), headers=headers,
                                   allow_redirects=False) as response:
            body = await response.text()
            if response.status != 201:
                raise WhipError(response.status, body)
            assert response.content_type == "application/sdp", response.content_type
            location = response.headers.get("Location")
            assert location, "WHIP 201 without Location"
            self.location = urljoin(self.url, location)
            self.response_headers = dict(response.headers)
        self.answer_sdp = body
        await self.peer.accept(body)
        await self.peer.wait_connected()

    async def delete(self) -> int:
        """End the WHIP session (the context exit does it too); returns the status."""
        if self._http is None or self.location is None or self.delete_status is not None:
            return self.delete_status or 0
        async with self._http.delete(self.location, headers=self._auth()) as response:
            self.delete_status = response.status
        return response.status

    async def _shutdown(self) -> None:
        await self.peer.close()
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            await self.delete()
        finally:
            await self._shutdown()


async def _publish_for(url: str, token: str, seconds: float) -> None:
    async with WhipPublisher(url, token, video=(1280, 720), fps=15) as publisher:
        print(f"publishing a 1280x720 test pattern and a tone to {url} ({publisher.location})")
        await asyncio.sleep(seconds)


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 4:
        sys.exit("usage: python -m tests.support.publisher WHIP_URL TOKEN SECONDS")
    asyncio.run(_publish_for(sys.argv[1], sys.argv[2], float(sys.argv[3])))
