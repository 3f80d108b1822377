"""One output file: a container with one video and one audio stream.

The video and the audio pipelines encode in their own threads and meet here only to mux,
under one lock (FFmpeg's muxer is not thread-safe; its interleaving queue keeps the file
ordered as long as both threads emit at the same media clock). Both encoders are opened
and the header written at construction, so no thread races another to open a codec.

Kill safety is cheap to prepare here: Matroska/WebM clusters close at least every second
and MP4 is fragmented (``empty_moov`` + a fragment per keyframe or second), with the I/O
buffer flushed per packet, so a killed process leaves a file that plays up to its last
closed cluster or fragment. PyAV reads the duration of such an MP4 from its fragments.
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
    # lag 0 and no alt-ref keep one packet per frame, pts == dts.
    "libvpx": {"deadline": "realtime", "cpu-used": "-6", "lag-in-frames": "0",
               "auto-alt-ref": "0"},
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
    def __init__(self, recording_id: str, path: Path, fmt: Format, preset: Preset) -> None:
        codecs = CODECS[fmt]
        self.recording_id = recording_id
        self.path = path
        self.preset = preset
        self.video_time_base = Fraction(1, preset.fps)
        self.audio_time_base = Fraction(1, AUDIO_RATE)
        self.audio_format = _AUDIO_FORMATS[codecs.audio]
        self._lock = threading.Lock()
        self._closed = False
        try:
            container = av.open(str(path), mode="w", format=codecs.muxer,
                                container_options=_CONTAINER_OPTIONS.get(codecs.muxer, {}))
        except (av.FFmpegError, OSError) as exc:
            raise MediaError(f"cannot create {path.name}: {exc}") from exc
        self._container: OutputContainer = container
        try:
            self.video: VideoStream = self._add_video(codecs.video, preset)
            self.audio: AudioStream = self._add_audio(codecs.audio, preset)
            container.start_encoding()
        except (av.FFmpegError, OSError, ValueError) as exc:
            self._close_quietly()
            raise MediaError(f"cannot open encoders for {path.name}: {exc}") from exc
        logger.info("recording %s: writing %s (%s %dx%d@%d + %s)", recording_id, path.name,
                    codecs.video, preset.width, preset.height, preset.fps, codecs.audio)

    def _add_video(self, codec: str, preset: Preset) -> VideoStream:
        stream = self._container.add_stream(codec, rate=preset.fps,
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

    def _add_audio(self, codec: str, preset: Preset) -> AudioStream:
        stream = self._container.add_stream(codec, rate=AUDIO_RATE)
        if not isinstance(stream, AudioStream):
            raise ValueError(f"{codec} is not an audio encoder")
        stream.layout = AUDIO_LAYOUT
        stream.format = self.audio_format
        stream.bit_rate = preset.audio_bitrate
        return stream

    def write_video(self, frame: VideoFrame | None) -> None:
        """Encode one frame (None flushes) in the calling thread, then mux under the lock."""
        self._mux(self.video.encode(frame))

    def write_audio(self, frame: AudioFrame | None) -> None:
        self._mux(self.audio.encode(frame))

    def _mux(self, packets: list[Packet[Stream]]) -> None:
        if not packets:
            return
        with self._lock:
            if self._closed:
                return
            self._container.mux(packets)

    def close(self) -> None:
        """Write the trailer (duration, index) and close the file. Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._container.close()
            except (av.FFmpegError, OSError) as exc:
                raise MediaError(f"cannot finish {self.path.name}: {exc}") from exc

    def _close_quietly(self) -> None:
        try:
            self.close()
        except MediaError as exc:
            logger.warning("recording %s: %s", self.recording_id, exc)
