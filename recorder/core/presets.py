"""Quality presets and container formats (docs/media.md) as plain data."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Format(StrEnum):
    WEBM = "webm"
    MP4 = "mp4"
    MKV = "mkv"


class Quality(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    ULTRA = "ultra"
    SOURCE = "source"


class Layout(StrEnum):
    COMPOSITE = "composite"
    TRACKS = "tracks"


@dataclass(frozen=True)
class Preset:
    width: int
    height: int
    video_bitrate: int  # bits per second
    audio_bitrate: int
    fps: int

    @property
    def resolution(self) -> str:
        return f"{self.width}x{self.height}"


PRESETS: dict[Quality, Preset] = {
    Quality.LOW: Preset(854, 480, 1_000_000, 96_000, 24),
    Quality.MEDIUM: Preset(1280, 720, 2_500_000, 128_000, 30),
    Quality.HIGH: Preset(1920, 1080, 5_000_000, 192_000, 30),
    Quality.ULTRA: Preset(3840, 2160, 15_000_000, 256_000, 60),
}


@dataclass(frozen=True)
class Codecs:
    """FFmpeg names: encoder, container muxer, file extension."""

    video: str
    audio: str
    muxer: str
    extension: str


CODECS: dict[Format, Codecs] = {
    Format.WEBM: Codecs("libvpx", "libopus", "webm", "webm"),
    Format.MP4: Codecs("libx264", "aac", "mp4", "mp4"),
    Format.MKV: Codecs("libx264", "libopus", "matroska", "mkv"),
}


def human_bitrate(bps: int) -> str:
    """2_500_000 -> '2.5M', 128_000 -> '128k' (the state's `quality_settings` style)."""
    if bps >= 1_000_000:
        return f"{bps / 1_000_000:g}M"
    return f"{bps // 1000}k"


def quality_settings(quality: Quality) -> dict[str, str | int]:
    if quality is Quality.SOURCE:
        return {"resolution": "source", "video_bitrate": "source", "audio_bitrate": "source",
                "fps": "source"}
    p = PRESETS[quality]
    return {
        "resolution": p.resolution,
        "video_bitrate": human_bitrate(p.video_bitrate),
        "audio_bitrate": human_bitrate(p.audio_bitrate),
        "fps": p.fps,
    }
