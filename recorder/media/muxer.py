"""One output file: a container with one video and one audio stream.

The video and the audio pipelines encode in their own threads and meet here only to mux,
under one lock (FFmpeg's muxer is not thread-safe; its interleaving queue keeps the file
ordered as long as both threads emit at the same media clock). Both encoders are opened
and the header written together, under that lock, so no thread races another to open a
codec: at construction (a composite, whose start must fail at once if the file cannot be
made), or ``lazy``ly on the first frame, in the encoder thread that has it (a
per-publisher file, opened when a publisher joins: opening costs up to ~50 ms, which the
event loop must not pay, and a publisher that never sends leaves no file behind).

Kill safety is cheap to prepare here: Matroska/WebM clusters close at least every second
and MP4 is fragmented (``empty_moov`` + a fragment per keyframe or second), with the I/O
buffer flushed per packet, so a killed process leaves a file that plays up to its last
closed cluster or fragment. PyAV reads the duration of such an MP4 from its fragments.
Fragments are cut on time too (``frag_duration``), not only on keyframes, which come every
2 s. Measured with SIGKILL: at most ~1.3 s lost (a cluster or fragment plus the capture's
latency); :mod:`recorder.media.repair` makes such a file whole after a restart.
"""

from __future__ import annotations

import logging
import os
import threading
from fractions import Fraction
from pathlib import Path

import av
from av.audio.frame import AudioFrame
from av.audio.stream import AudioStream
from av.container import OutputContainer
from av.packet import Packet
from av.stream import Stream
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from recorder.core.errors import MediaError
from recorder.core.presets import CODECS, Format, Preset

logger = logging.getLogger(__name__)

AUDIO_RATE = 48_000
AUDIO_LAYOUT = "stereo"
KEYFRAME_SECONDS = 2

_CONTAINER_OPTIONS: dict[str, dict[str, str]] = {
    "webm": {"cluster_time_limit": "1000", "flush_packets": "1"},
    "matroska": {"cluster_time_limit": "1000", "flush_packets": "1"},
    "mp4": {
        "movflags": "frag_keyframe+empty_moov+default_base_moof",
        "frag_duration": "1000000",
        "flush_packets": "1",
    },
}

_VIDEO_OPTIONS: dict[str, dict[str, str]] = {
    # A negative cpu-used fixes libvpx's speed; a positive one lets realtime mode slow down
    # (and spend more CPU) whenever frames leave time to spare, which makes the cost of a
    # recording unpredictable. -6 is WebRTC's own desktop setting: ~0.2 core at 720p30.
    # lag 0 and no alt-ref keep one packet per frame, pts == dts. A static threshold of 1
    # (WebRTC's own) skips blocks that did not change at all: black bars, the empty tiles
    # of a composite, a still slide cost a third of the CPU (measured, same bitrate).
    "libvpx": {"deadline": "realtime", "cpu-used": "-6", "lag-in-frames": "0",
               "auto-alt-ref": "0", "static-thresh": "1"},
    "libx264": {"preset": "veryfast", "tune": "zerolatency"},
}

# One encoder thread is the cheapest per frame (libvpx with FFmpeg's automatic thread
# count cost 5x the CPU of one thread here) and holds 1080p30 in real time; a node runs
# several recordings on its cores. Only bigger presets split a frame over threads.
_SINGLE_THREAD_PIXEL_RATE = 1920 * 1080 * 30
_MAX_ENCODER_THREADS = 4


def _encoder_threads(preset: Preset) -> int:
    if preset.width * preset.height * preset.fps <= _SINGLE_THREAD_PIXEL_RATE:
        return 1
    return max(1, min(_MAX_ENCODER_THREADS, os.cpu_count() or 1))


# Sample format each audio encoder takes; the mixer produces float32 either way.
_AUDIO_FORMATS = {"libopus": "flt", "aac": "fltp"}


class MediaWriter:
    def __init__(self, recording_id: str, path: Path, fmt: Format, preset: Preset,
                 lazy: bool = False) -> None:
        self.recording_id = recording_id
        self.path = path
        self.preset = preset
        self.video_time_base = Fraction(1, preset.fps)
        self.audio_time_base = Fraction(1, AUDIO_RATE)
        self._codecs = CODECS[fmt]
        self.audio_format = _AUDIO_FORMATS[self._codecs.audio]
        self._lock = threading.Lock()
        self._closed = False
        self._container: OutputContainer | None = None
        self._video: VideoStream | None = None
        self._audio: AudioStream | None = None
        if not lazy:
            with self._lock:
                self._open()

    @property
    def opened(self) -> bool:
        """Whether the file exists (a lazy writer makes it with its first frame)."""
        return self._container is not None

    def _open(self) -> None:
        """Create the file, open both encoders, write the header. Holds the lock."""
        codecs, preset, path = self._codecs, self.preset, self.path
        try:
            container = av.open(str(path), mode="w", format=codecs.muxer,
                                container_options=_CONTAINER_OPTIONS.get(codecs.muxer, {}))
        except (av.FFmpegError, OSError) as exc:
            raise MediaError(f"cannot create {path.name}: {exc}") from exc
        self._container = container
        try:
            self._video = self._add_video(container, codecs.video, preset)
            self._audio = self._add_audio(container, codecs.audio, preset)
            container.start_encoding()
        except (av.FFmpegError, OSError, ValueError) as exc:
            self._closed = True
            try:
                container.close()
            except (av.FFmpegError, OSError) as close_exc:
                logger.warning("recording %s: %s", self.recording_id, close_exc)
            raise MediaError(f"cannot open encoders for {path.name}: {exc}") from exc
        logger.info("recording %s: writing %s (%s %dx%d@%d + %s)", self.recording_id,
                    path.name, codecs.video, preset.width, preset.height, preset.fps,
                    codecs.audio)

    def _streams(self) -> tuple[VideoStream, AudioStream] | None:
        """Both streams, opening the file first if it is lazy; None once closed unopened."""
        video, audio = self._video, self._audio
        if video is None or audio is None:
            with self._lock:
                if self._closed:
                    return None
                if self._container is None:
                    self._open()
                video, audio = self._video, self._audio
            if video is None or audio is None:
                return None
        return video, audio

    def _add_video(self, container: OutputContainer, codec: str, preset: Preset) -> VideoStream:
        stream = container.add_stream(codec, rate=preset.fps,
                                      options=dict(_VIDEO_OPTIONS.get(codec, {})))
        if not isinstance(stream, VideoStream):
            raise ValueError(f"{codec} is not a video encoder")
        stream.width = preset.width
        stream.height = preset.height
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = preset.video_bitrate
        stream.codec_context.time_base = self.video_time_base
        stream.codec_context.gop_size = preset.fps * KEYFRAME_SECONDS
        stream.codec_context.thread_count = _encoder_threads(preset)
        return stream

    def _add_audio(self, container: OutputContainer, codec: str, preset: Preset) -> AudioStream:
        stream = container.add_stream(codec, rate=AUDIO_RATE)
        if not isinstance(stream, AudioStream):
            raise ValueError(f"{codec} is not an audio encoder")
        stream.layout = AUDIO_LAYOUT
        stream.format = self.audio_format
        stream.bit_rate = preset.audio_bitrate
        return stream

    def write_video(self, frame: VideoFrame | None) -> None:
        """Encode one frame (None flushes) in the calling thread, then mux under the lock."""
        streams = self._streams()
        if streams is not None:
            self._mux(streams[0].encode(frame))

    def write_audio(self, frame: AudioFrame | None) -> None:
        streams = self._streams()
        if streams is not None:
            self._mux(streams[1].encode(frame))

    def _mux(self, packets: list[Packet[Stream]]) -> None:
        if not packets:
            return
        with self._lock:
            if self._closed or self._container is None:
                return
            self._container.mux(packets)

    def close(self) -> None:
        """Write the trailer (duration, index) and close the file. Safe to call twice;
        a lazy writer that never got a frame makes no file."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._container is None:
                return
            try:
                self._container.close()
            except (av.FFmpegError, OSError) as exc:
                raise MediaError(f"cannot finish {self.path.name}: {exc}") from exc
