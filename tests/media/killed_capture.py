"""A capture that runs until it is killed: the child process of the kill-safety tests.

``python -m tests.media.killed_capture PATH FORMAT LAYOUT`` records synthetic camera and
microphone frames in real time with the real :class:`Capture` (for ``tracks``, two
publishers into the folder PATH) and never stops on its own. Once the first frame has
started the recording it prints ``started <monotonic seconds>``, so the parent knows the
media time at the moment it sends SIGKILL (CLOCK_MONOTONIC is shared by processes).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from recorder.core.presets import Format, Layout, Quality
from recorder.media.capture import Capture, CaptureSpec
from recorder.media.sources import Publisher
from tests.support.synth import AUDIO_FRAME, AUDIO_RATE, audio_frame, tone, video_frame

FPS = 30
LIMIT_SECONDS = 120.0  # an orphan never outlives a failed test by much


def run(path: Path, fmt: Format, layout: Layout) -> None:
    capture = Capture(CaptureSpec("rec-killed", path, fmt, Quality.LOW, layout))
    publishers = ["alice", "bob"] if layout is Layout.TRACKS else ["alice"]
    for name in publishers:
        who = Publisher(f"session-{name}", name)
        capture.add_source(f"{name}-mic", "audio", who)
        capture.add_source(f"{name}-cam", "video", who)
    origin = time.monotonic()
    video_sent = audio_sent = 0
    while time.monotonic() - origin < LIMIT_SECONDS:
        now = time.monotonic()
        elapsed = now - origin
        while video_sent / FPS <= elapsed:
            luma = 40 + (video_sent * 4) % 180  # a moving brightness: real bits per frame
            for name in publishers:
                frame = video_frame(640, 360, luma, round(video_sent * 90_000 / FPS))
                if capture.push(f"{name}-cam", frame, now) and video_sent == 0:
                    print(f"started {now:.6f}", flush=True)
            video_sent += 1
        while audio_sent * AUDIO_FRAME / AUDIO_RATE <= elapsed:
            first = audio_sent * AUDIO_FRAME
            for name in publishers:
                capture.push(f"{name}-mic", audio_frame(tone(440, first, AUDIO_FRAME),
                                                        first), now)
            audio_sent += 1
        time.sleep(0.005)


def main() -> None:
    run(Path(sys.argv[1]), Format(sys.argv[2]), Layout(sys.argv[3]))


if __name__ == "__main__":
    main()
