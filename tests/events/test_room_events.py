"""A room's event refusals: 409 before the first frame and while paused, 429 `event_rate`
over the cap; each refusal counted as a drop under `api`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import pytest

from recorder.core.errors import InvalidTransition, LimitReached
from recorder.core.events import EventCounts, Incoming
from recorder.core.tracks import TrackInfo
from recorder.room.capture_run import CaptureRun
from recorder.room.event_log import EventLog
from recorder.room.messages import RecordEvent, TrackAdded
from recorder.room.room_events import record_api_event


class StillCapture:
    """A capture that only says its media time; its first frame starts the recording."""

    media_seconds = 4.2
    last_frame_at = None
    frames: Any = None

    def add_source(self, source_id: str, kind: str, *args: Any) -> None: ...
    def remove_source(self, source_id: str) -> None: ...
    def push(self, source_id: str, frame: Any, arrival: float) -> bool:
        return True
    def pause(self, at: float) -> None: ...
    def resume(self, at: float) -> None: ...
    def stop(self) -> Any: ...
    def abort(self) -> None: ...


def test_events_are_refused_unless_recording_and_over_the_rate(tmp_path: Path) -> None:
    capture = StillCapture()
    run = CaptureRun("rec", tmp_path, capture, lambda event: None, 1.0,
                     events=EventLog("rec", tmp_path, lambda: capture.media_seconds, 2))
    command = RecordEvent("rec", Incoming("api", "api", "chat", user="a", text="b", sub="s"))
    with pytest.raises(InvalidTransition, match="pending"):
        record_api_event(run, command, 2)  # no frame yet
    run.add_source("p/video", "video", TrackAdded("p", TrackInfo("p", "video", "vp8")))
    run.push("p/video", av.VideoFrame(16, 16, "yuv420p"), 0.0)
    record_api_event(run, command, 2)
    record_api_event(run, command, 2)
    with pytest.raises(LimitReached) as refused:
        record_api_event(run, command, 2)
    assert refused.value.limit == "event_rate"
    run.hold("pause", 0.0)
    with pytest.raises(InvalidTransition, match="paused"):
        record_api_event(run, command, 2)
    assert run.events.counts == {"api": EventCounts(recorded=2, dropped=3)}
    assert [p.position_seconds for p in run.pauses] == [4.2]
