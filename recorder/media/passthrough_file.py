"""One file of a passthrough (``source``) recording, written by its own thread.

Design note. Frames arrive encoded (:class:`recorder.media.encoded.EncodedFrame`) with the
file time they belong at, already cut for pauses by the capture's timeline. A frame whose
codec is the format's (webm: VP8 + Opus, mp4: H.264 + AAC, mkv: H.264 + Opus) is muxed as
it is: no decoder, no encoder, which is the whole point of ``source``. Any other frame is
decoded and encoded at its incoming resolution with ``medium``'s bitrates (an H.264
publisher into webm becomes VP8, Opus into mp4 becomes AAC); that part costs what a
transcode costs, so it runs in this thread (:mod:`recorder.media.reencode`), never on the
event loop.

The file is opened at the first video keyframe (H.264 in MP4 and Matroska needs the
sender's SPS/PPS, which only a keyframe carries; width and height come from it too).
Audio that comes before is held (bounded) and written behind the header, so the file
starts with the sound that preceded the first picture. A file's streams are fixed when it
opens, so a first picture that comes before any sound is held too, up to
``AUDIO_WAIT_SECONDS``, for the publisher's audio to show up (a sender may start its
camera a moment before its microphone; opening at once would drop all its sound). A file
that expects no video opens after ``AUDIO_ONLY_GRACE_SECONDS`` of held audio, or at the stop.

Kill safety is the writer's (:mod:`recorder.media.muxer`): Matroska clusters of at most
1 s, fragmented MP4 (``delay_moov`` lets the muxer take the SPS/PPS from the first packet
before it writes the header), packets flushed as written; :mod:`recorder.media.repair`
repairs a killed file.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from pathlib import Path
from typing import Any, Final

import av
from av.audio.stream import AudioStream
from av.codec.context import CodecContext
from av.container import OutputContainer
from av.packet import Packet
from av.stream import Stream
from av.video.stream import VideoStream

from recorder.core.errors import MediaError
from recorder.core.presets import CODECS, PRESETS, Format, Quality
from recorder.media.counts import FrameCounter
from recorder.media.encoded import AUDIO_CLOCK, EncodedFrame
from recorder.media.muxer import _CONTAINER_OPTIONS, _VIDEO_OPTIONS, KEYFRAME_SECONDS
from recorder.media.pipeline import Inbox
from recorder.media.reencode import (
    AUDIO_TB,
    DECODERS,
    VIDEO_TB,
    AudioReencoder,
    VideoReencoder,
)
from recorder.media.sync import AudioMaster, Cut, Placed, opus_samples, silence_packets

logger = logging.getLogger(__name__)

AUDIO_ONLY_GRACE_SECONDS: Final = 3.0
AUDIO_WAIT_SECONDS: Final = 1.0
INBOX_FRAMES: Final = 400  # ~4 s of audio and video together
_MAX_HELD_AUDIO: Final = 500  # 10 s of 20 ms packets while the first keyframe is awaited
_FORMAT_CODECS: Final = {  # (video, audio) as they travel in RTP, per format
    Format.WEBM: ("vp8", "opus"),
    Format.MP4: ("h264", "aac"),
    Format.MKV: ("h264", "opus"),
}
_MATROSKA_VIDEO: Final = {"vp8", "h264"}
_TRANSCODE = PRESETS[Quality.MEDIUM]
_TICK_SECONDS: Final = 0.2


class PassthroughFile(threading.Thread):
    def __init__(self, recording_id: str, path: Path, fmt: Format, counts: FrameCounter,
                 kind: str, as_received: bool = False) -> None:
        super().__init__(name=f"source-{recording_id[:8]}", daemon=True)
        self.recording_id = recording_id
        self.path = path
        self.kind = kind  # "composite" | "track"
        self.offset: float | None = None  # media time of the recording where the file begins
        self.expects_video = False  # set from the loop when a video source feeds this file
        self.expects_audio = False
        self.error: str | None = None
        self.written_until = 0.0  # file time of the latest frame written
        self.clock_ppm: float | None = None  # its audio clock against the recording's
        self._master = AudioMaster()  # on the loop
        self._fmt = fmt
        self._video_codec, self._audio_codec = _FORMAT_CODECS[fmt]
        # Matroska takes any codec that comes: keep it when asked to (a deferred live part)
        self._keep = (_MATROSKA_VIDEO if as_received and fmt is Format.MKV
                      else {self._video_codec})
        self._counts = counts
        self.inbox: Inbox[Placed] = Inbox(INBOX_FRAMES, wake_each=False)  # taken each tick
        self._stopping = threading.Event()
        self._aborting = False
        self._held: deque[Placed] = deque()
        self._container: OutputContainer | None = None
        self._video: Stream | None = None
        self._audio: Stream | None = None
        self._last_pts: dict[int, int] = {}
        self._video_reencoder: VideoReencoder | None = None  # when not kept as received
        self._audio_reencoder: AudioReencoder | None = None

    @property
    def opened(self) -> bool:
        return self._container is not None

    # ---- the loop's side -------------------------------------------------------------

    def offer(self, frame: EncodedFrame, media_time: float, wall: float, cut: Cut,
              source: str) -> bool:
        """Queue a frame the recording places at ``media_time`` (``wall`` on our clock),
        on the stretch ``cut``, from ``source``; False: behind, failed, or a repeat of
        sound already written."""
        if self.error is not None:
            return False
        if self.offset is None:
            self.offset = media_time
        at = max(0.0, media_time - self.offset)
        if frame.kind == "audio":
            placed = self._master.audio(cut, source, frame, at, wall)
            return placed is not None and self.inbox.offer(placed)
        return self.inbox.offer(Placed(frame, self._master.video(cut, frame, at, wall)))

    def stop(self, aborting: bool = False) -> None:
        self._aborting = aborting
        self._stopping.set()
        self.inbox.wake()

    # ---- the thread ------------------------------------------------------------------

    def run(self) -> None:
        try:
            while True:
                stopping = self._stopping.is_set()
                for item in self.inbox.take(0 if stopping else _TICK_SECONDS):
                    self._handle(item)
                if stopping and not len(self.inbox):
                    break
            if not self._aborting:
                self._finish()
        except Exception as exc:  # a codec or muxer error ends this file only
            self.error = f"{type(exc).__name__}: {exc}"
            logger.error("recording %s: %s failed: %s", self.recording_id, self.path.name,
                         self.error)
        finally:
            self._close()

    def _handle(self, item: Placed) -> None:
        if self._container is None:
            self._hold(item)
        else:
            self._write(item)

    def _hold(self, item: Placed) -> None:
        """Keep what comes before the file can open; open it once its streams are known."""
        self._held.append(item)
        if len(self._held) > _MAX_HELD_AUDIO:
            self._held.popleft()
            self._counts.dropped()
        key = next((held.frame for held in self._held if held.frame.kind == "video"), None)
        span = self._held[-1].at - self._held[0].at
        if key is not None:
            sound = self.expects_audio or any(h.frame.kind == "audio" for h in self._held)
            waited = self._held[-1].at - next(h.at for h in self._held if h.frame is key)
            if not sound and waited < AUDIO_WAIT_SECONDS:
                return
        elif self.expects_video or span < AUDIO_ONLY_GRACE_SECONDS:
            return
        self._open(key)
        self._release_held()  # in arrival order: the sound that came before the picture

    def _release_held(self) -> None:
        while self._held:
            self._write(self._held.popleft())

    def _finish(self) -> None:
        if self._container is None and self._held:
            self._open(next((h.frame for h in self._held if h.frame.kind == "video"), None))
        self._release_held()
        if self._container is None:
            return
        for reencoder in (self._video_reencoder, self._audio_reencoder):
            if reencoder is not None:
                self._mux(reencoder.flush())

    def _close(self) -> None:
        container, self._container = self._container, None
        if container is not None:
            try:
                container.close()
            except (av.FFmpegError, OSError) as exc:
                if self.error is None:
                    self.error = f"cannot finish {self.path.name}: {exc}"

    # ---- opening ---------------------------------------------------------------------

    def _open(self, key: EncodedFrame | None) -> None:
        """Create the file with a video stream shaped by ``key`` (None: audio only)."""
        options = dict(_CONTAINER_OPTIONS.get(CODECS[self._fmt].muxer, {}))
        if self._fmt is Format.MP4:
            options["movflags"] += "+delay_moov"
        try:
            container = av.open(str(self.path), mode="w", format=CODECS[self._fmt].muxer,
                                container_options=options)
        except (av.FFmpegError, OSError) as exc:
            raise MediaError(f"cannot create {self.path.name}: {exc}") from exc
        self._container = container
        if key is not None:
            self._video = self._add_video(container, key)
        if self.expects_audio or any(h.frame.kind == "audio" for h in self._held):
            self._audio = self._add_audio(container)
        logger.info("recording %s: writing %s (video %s, audio %s)", self.recording_id,
                    self.path.name, "none" if key is None else self._describe(
                        key.codec, key.codec if key.codec in self._keep else self._video_codec),
                    "none" if self._audio is None else self._describe("opus",
                                                                      self._audio_codec))

    @staticmethod
    def _describe(incoming: str, target: str) -> str:
        return f"{target} as received" if incoming == target else f"{incoming} -> {target}"

    def _add_video(self, container: OutputContainer, key: EncodedFrame) -> Stream:
        width, height = _picture_size(key)
        if key.codec in self._keep:
            stream: Stream = container.add_mux_stream(key.codec, width=width, height=height)
            stream.time_base = VIDEO_TB
            return stream
        encoder = CODECS[self._fmt].video
        video = container.add_stream(encoder, rate=30,
                                     options=dict(_VIDEO_OPTIONS.get(encoder, {})))
        if not isinstance(video, VideoStream):
            raise MediaError(f"{encoder} is not a video encoder")
        video.width, video.height = width, height
        video.pix_fmt = "yuv420p"
        video.bit_rate = _TRANSCODE.video_bitrate
        video.codec_context.time_base = VIDEO_TB
        video.codec_context.gop_size = _TRANSCODE.fps * KEYFRAME_SECONDS
        video.codec_context.thread_count = 1
        self._video_reencoder = VideoReencoder(self.recording_id, key.codec, video)
        return video

    def _add_audio(self, container: OutputContainer) -> Stream:
        encoder = CODECS[self._fmt].audio
        # libopus only lends its OpusHead (Matroska's CodecPrivate) here: it never encodes
        audio = container.add_stream(encoder, rate=AUDIO_CLOCK)
        if not isinstance(audio, AudioStream):
            raise MediaError(f"{encoder} is not an audio encoder")
        audio.layout = "stereo"
        audio.format = "fltp" if encoder == "aac" else "flt"
        audio.bit_rate = _TRANSCODE.audio_bitrate
        audio.codec_context.time_base = AUDIO_TB
        if self._audio_codec != "opus":
            self._audio_reencoder = AudioReencoder(audio)
        return audio

    # ---- writing ---------------------------------------------------------------------

    def _write(self, item: Placed) -> None:
        frame = item.frame
        stream = self._video if frame.kind == "video" else self._audio
        if stream is None:  # its stream was not in the file when the file was made
            self._counts.dropped()
            return
        reencoder = self._video_reencoder if frame.kind == "video" else self._audio_reencoder
        if item.silence:
            self._write_silence(item, reencoder)
        pts = round(item.at * frame.clock_rate)
        if reencoder is not None:
            self._mux(reencoder.encode(frame, pts))
        else:
            packet = Packet(frame.data)
            packet.pts = packet.dts = pts
            packet.time_base = frame.time_base
            packet.is_keyframe = frame.keyframe
            packet.stream = stream
            self._mux([packet])
        self._counts.written()
        self.written_until = max(self.written_until, item.at)

    def _write_silence(self, item: Placed, reencoder: AudioReencoder | VideoReencoder | None
                       ) -> None:
        """Encoded silence filling the hole in the sound before ``item``."""
        assert self._audio is not None
        position = round(item.at * AUDIO_CLOCK) - item.silence
        for data in silence_packets(item.silence):
            filler = EncodedFrame("audio", "opus", data, 0, AUDIO_CLOCK, True)
            if reencoder is not None:
                self._mux(reencoder.encode(filler, position))
            else:
                packet = Packet(data)
                packet.pts = packet.dts = position
                packet.time_base = AUDIO_TB
                packet.is_keyframe = True
                packet.stream = self._audio
                self._mux([packet])
            position += opus_samples(data)

    def _mux(self, packets: list[Packet[Stream]]) -> None:
        container = self._container
        if container is None:
            return
        for packet in packets:
            index = packet.stream.index
            last = self._last_pts.get(index)
            if packet.dts is not None and last is not None and packet.dts <= last:
                # never backwards: a clock correction may step back by a few ms
                shift = last + 1 - packet.dts
                packet.dts = last + 1
                if packet.pts is not None:
                    packet.pts += shift
            if packet.dts is not None:
                self._last_pts[index] = packet.dts
            container.mux(packet)


def _picture_size(key: EncodedFrame) -> tuple[int, int]:
    """Width and height a keyframe announces (a VP8 key frame says it in its header;
    H.264 says it in its SPS, which one decode reads for us)."""
    data = key.data
    if key.codec == "vp8" and len(data) >= 10:
        return (data[6] | data[7] << 8) & 0x3FFF, (data[8] | data[9] << 8) & 0x3FFF
    decoder: Any = CodecContext.create(DECODERS[key.codec], "r")
    packet = Packet(data)
    for picture in decoder.decode(packet):
        if isinstance(picture, av.VideoFrame):
            return picture.width, picture.height
    raise MediaError(f"the first {key.codec} keyframe does not decode")

