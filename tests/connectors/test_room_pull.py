"""A room recording a WHEP pull: what its capture is told across a broken upstream.

The capture is a recorder of calls here (the real one is exercised end to end in
test_pull_e2e.py): what matters is that the timeline is held exactly while the upstream is
gone, that a user's pause and the outage do not end each other, that the new session's
sources replace the old ones, and that the room's WHIP publishers stay out of a pull.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from recorder.core.errors import SourceFailed
from recorder.core.models import WhepSource
from recorder.core.presets import Format, Layout, Quality
from recorder.core.urls import AllowList
from recorder.room.capture_run import CaptureLike
from recorder.room.messages import (
    CancelCapture,
    PauseCapture,
    Publish,
    PublishAnswer,
    ResumeCapture,
    RoomEvent,
    StartCapture,
)
from recorder.room.session import RoomConfig, RoomSession
from recorder.rtc.pull import PullTiming
from tests.connectors.sink import WAIT
from tests.support.publisher import SyntheticPublisher
from tests.support.redis_server import free_port
from tests.support.whep_server import TOKEN, WhepServer, serve_whep

TIMING = PullTiming(connect_timeout=20, stall_seconds=5, backoff_first=0.2, backoff_max=1.0)
WHEP_PORT = free_port()  # the WHEP servers of this module serve here, one at a time
WHEP_ORIGIN = f"http://127.0.0.1:{WHEP_PORT}"  # the room's allow-list


class CallLog:
    received = written = dropped = 0


class FakeCapture:
    """Records what the room asks of a capture."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.pushed: Counter[str] = Counter()
        self.aborted = False
        self._sources: set[str] = set()
        self._last: float | None = None
        self.changed = asyncio.Event()

    def add_source(self, source_id: str, kind: str, *args: Any) -> None:
        self._sources.add(source_id)
        self.calls.append(("add", source_id))

    def remove_source(self, source_id: str) -> None:
        self._sources.discard(source_id)
        self.calls.append(("remove", source_id))

    def push(self, source_id: str, frame: Any, arrival: float) -> bool:
        self.pushed[source_id] += 1
        self._last = arrival
        self.changed.set()
        return sum(self.pushed.values()) == 1

    def pause(self, at: float) -> None:
        self.calls.append(("pause", ""))

    def resume(self, at: float) -> None:
        self.calls.append(("resume", ""))

    def stop(self) -> Any:
        raise AssertionError("not stopped in these tests")

    def abort(self) -> None:
        self.aborted = True

    @property
    def frames(self) -> CallLog:
        return CallLog()

    @property
    def media_seconds(self) -> float:
        return 0.0

    @property
    def last_frame_at(self) -> float | None:
        return self._last

    def timeline_calls(self) -> list[str]:
        return [name for name, _ in self.calls if name in ("pause", "resume")]

    async def until(self, condition: Any) -> None:
        async def wait() -> None:
            while not condition():
                self.changed.clear()
                await self.changed.wait()
        await asyncio.wait_for(wait(), WAIT)


async def wait_for(condition: Any) -> None:
    """Poll a room's state that has no event of its own (a hang guard bounds it)."""
    async def poll() -> None:
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    await asyncio.wait_for(poll(), WAIT)


def room_with(captures: list[FakeCapture]) -> RoomSession:
    def factory(*args: Any) -> CaptureLike:
        capture = FakeCapture()
        captures.append(capture)
        return capture

    events: list[RoomEvent] = []
    return RoomSession("room-1", RoomConfig(max_publishers=4, ice_servers=[],
                                            capture_factory=factory, pull_timing=TIMING,
                                            pull_allowed=AllowList.parse([WHEP_ORIGIN])),
                       events.append)


def start(rid: str, tmp_path: Path, url: str) -> StartCapture:
    return StartCapture(rid, str(tmp_path / rid), f"{rid}.webm", Format.WEBM, Quality.LOW,
                        Layout.COMPOSITE, WhepSource(type="whep", url=url, token=TOKEN))


async def test_the_timeline_waits_for_a_broken_upstream_and_a_pause_is_kept(
    tmp_path: Path,
) -> None:
    captures: list[FakeCapture] = []
    room = room_with(captures)
    server = WhepServer()
    publisher = SyntheticPublisher(video=(320, 180))
    try:
        async with serve_whep(server, WHEP_PORT) as url:
            await room.handle(start("rec-1", tmp_path, url))
            [capture] = captures
            await capture.until(lambda: capture.pushed["rec-1/1/video"] > 5)
            # A WHIP publisher in the same room is not part of a pulled recording.
            reply = await room.handle(Publish("pub-1", "user-1", "user-1", "camera",
                                              await publisher.offer()))
            assert isinstance(reply, PublishAnswer)
            await publisher.accept(reply.answer_sdp)
            await publisher.wait_connected()

            await room.handle(PauseCapture("rec-1"))
            pull = room._pulls["rec-1"]
            await server.cut(3.0)
            await wait_for(lambda: not pull.connected)
            await room.handle(ResumeCapture("rec-1"))  # the upstream is still gone
            assert capture.timeline_calls() == ["pause"]
            await capture.until(lambda: capture.pushed["rec-1/2/video"] > 5)
            assert capture.timeline_calls() == ["pause", "resume"]

            # A pause during an outage is still a pause when the upstream comes back.
            await room.handle(PauseCapture("rec-1"))
            await server.cut(1.0)
            await wait_for(lambda: not pull.connected)
            await capture.until(lambda: capture.pushed["rec-1/3/video"] > 5)
            assert capture.timeline_calls() == ["pause", "resume", "pause"]
            await room.handle(ResumeCapture("rec-1"))
            assert capture.timeline_calls() == ["pause", "resume", "pause", "resume"]

            await room.handle(CancelCapture("rec-1"))
            assert capture.aborted
            assert len(server.deletes) == 3  # every session ended upstream
    finally:
        await room.close()
        await publisher.close()

    adds = [sid for name, sid in capture.calls if name == "add"]
    assert sorted(adds) == sorted(f"rec-1/{n}/{kind}" for n in (1, 2, 3)
                                  for kind in ("audio", "video"))
    assert not any(sid.startswith("pub-1") for sid in capture.pushed)
    # Each new source takes over from the old one (removed first: the same publisher again).
    for old, new in (("rec-1/1/video", "rec-1/2/video"), ("rec-1/2/video", "rec-1/3/video")):
        assert capture.calls.index(("remove", old)) == capture.calls.index(("add", new)) - 1


async def test_a_refused_start_leaves_nothing_behind(tmp_path: Path) -> None:
    captures: list[FakeCapture] = []
    room = room_with(captures)
    server = WhepServer()
    server.refuse = (403, None)
    try:
        async with serve_whep(server, WHEP_PORT) as url:
            with pytest.raises(SourceFailed) as failed:
                await room.handle(start("rec-2", tmp_path, url))
    finally:
        await room.close()
    assert failed.value.upstream_status == 403
    [capture] = captures
    assert capture.aborted
    assert not (tmp_path / "rec-2").exists()
    assert room.idle
