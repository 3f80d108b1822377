"""A room in a real child process, driven through recorderd's handle on it (no daemon):
the same commands, replies, refusals and events as in-process, and what its death does."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from recorder.core.errors import (
    InvalidInput,
    InvalidTransition,
    LimitReached,
    NotFound,
    SourceFailed,
    Unavailable,
)
from recorder.core.presets import Format, Quality
from recorder.room import messages as msg
from recorder.room.process import RemoteRoom, RoomProcess
from recorder.room.wire import ErrorInfo, ProcessConfig
from tests.support.media import probe
from tests.support.publisher import SyntheticPublisher


class Room:
    """A RoomProcess hosting `room_id` (and maybe more rooms), and what it reported."""

    def __init__(self, room_id: str, max_publishers: int = 4) -> None:
        self.room_id = room_id
        self.events: list[tuple[str, msg.RoomEvent]] = []
        self.arrived = asyncio.Event()
        self.exited = asyncio.Event()
        config = ProcessConfig(max_publishers=max_publishers, ice_host_addresses=["127.0.0.1"])
        self.process = RoomProcess(config, room_id, self._on_event,
                                   lambda _: self.exited.set())
        self.remote = self.process.room(room_id)

    def _on_event(self, room_id: str, event: msg.RoomEvent) -> None:
        self.events.append((room_id, event))
        self.arrived.set()

    async def next_event(self, kind: type[msg.RoomEvent], within: float = 60,
                         room_id: str | None = None) -> msg.RoomEvent:
        async def wait() -> msg.RoomEvent:
            while True:
                for room, event in self.events:
                    if isinstance(event, kind) and room == (room_id or self.room_id):
                        return event
                self.arrived.clear()
                await self.arrived.wait()
        return await asyncio.wait_for(wait(), within)

    async def publish(self, session_id: str,
                      remote: RemoteRoom | None = None) -> SyntheticPublisher:
        publisher = SyntheticPublisher(video=(320, 180), fps=15)
        reply = await (remote or self.remote).handle(
            msg.Publish(session_id, f"user-{session_id}", "camera", await publisher.offer()))
        assert isinstance(reply, msg.PublishAnswer)
        await publisher.accept(reply.answer_sdp)
        await publisher.wait_connected()
        return publisher


@pytest.fixture
async def room() -> AsyncIterator[Room]:
    room = Room("room-proc")
    room.process.start()
    yield room
    await room.process.close()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_refusals_keep_their_class_and_attributes() -> None:
    cases = [InvalidTransition("paused", "pause"), LimitReached("max_per_user", 3, 7),
             SourceFailed("upstream said 401", 401, "rec-1"),
             Unavailable("room is full", retry_after=10), NotFound("no such session")]
    for original in cases:
        again = ErrorInfo.of(original).to_exception()
        assert type(again) is type(original)
        assert again.detail == original.detail
        assert vars(again) == vars(original)
    foreign = ErrorInfo.of(ValueError("bad")).to_exception()
    assert foreign.title == "Media error"
    assert "ValueError: bad" in foreign.detail


async def test_a_room_process_records_and_reports_like_a_session(room: Room,
                                                                 tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no publisher session nope in room room-proc"):
        await room.remote.handle(msg.Unpublish("nope"))
    with pytest.raises(InvalidInput):
        await room.remote.handle(msg.Publish("s0", "user-0", "camera", "not an sdp"))
    pid = room.process.pid
    assert pid is not None
    assert pid != os.getpid()

    os.kill(pid, signal.SIGINT)  # ctrl-c in a terminal: the room does not die of it
    publisher = await room.publish("s1")
    assert room.remote.publisher_count == 1
    try:
        await room.remote.handle(msg.StartCapture(
            recording_id="rec-a", directory=str(tmp_path / "rec-a"), file_name="rec-a.webm",
            format=Format.WEBM, quality=Quality.LOW))
        await room.next_event(msg.MediaStarted)
        await asyncio.sleep(2.0)
        await room.remote.handle(msg.StopCapture("rec-a"))
        finished = await room.next_event(msg.CaptureFinished)
    finally:
        await publisher.close()
    assert isinstance(finished, msg.CaptureFinished)
    info = await asyncio.to_thread(probe, Path(finished.files[0].path))
    assert info.video_codec == "vp8"
    assert info.video_seconds > 1.0
    assert {e.kind for _, e in room.events if isinstance(e, msg.TrackAdded)} == {
        "audio", "video"}
    await room.next_event(msg.PublisherLeft)
    assert room.remote.publisher_count == 0
    assert room.remote.idle

    await room.process.close()
    assert room.process.exitcode == 0
    assert not _alive(pid)
    assert not any(isinstance(e, msg.RoomLost) for _, e in room.events)


async def test_a_killed_room_process_reports_its_recordings_and_fails_waiting_commands(
        room: Room, tmp_path: Path) -> None:
    publisher = await room.publish("s1")
    try:
        await room.remote.handle(msg.StartCapture(
            recording_id="rec-k", directory=str(tmp_path / "rec-k"), file_name="rec-k.mkv",
            format=Format.MKV, quality=Quality.LOW))
        await room.next_event(msg.MediaStarted)
        pid = room.process.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)  # a command sent now is certainly still in flight
        waiting = asyncio.create_task(room.remote.handle(msg.PauseCapture("rec-k")))
        await asyncio.sleep(0.2)
        assert not waiting.done()
        os.kill(pid, signal.SIGKILL)
        lost = await room.next_event(msg.RoomLost)
        with pytest.raises(Unavailable, match="killed by SIGKILL"):
            await waiting
    finally:
        await publisher.close()
    assert lost == msg.RoomLost(("rec-k",), -signal.SIGKILL)
    left = [e for _, e in room.events if isinstance(e, msg.PublisherLeft)]
    assert [e.session_id for e in left] == ["s1"]  # the service forgets the WHIP session
    assert room.exited.is_set()
    assert not room.process.alive
    with pytest.raises(Unavailable):
        await room.remote.handle(msg.Unpublish("s1"))


async def test_a_room_process_whose_parent_goes_away_finalises_and_exits(
        room: Room, tmp_path: Path) -> None:
    publisher = await room.publish("s1")
    try:
        await room.remote.handle(msg.StartCapture(
            recording_id="rec-o", directory=str(tmp_path / "rec-o"), file_name="rec-o.webm",
            format=Format.WEBM, quality=Quality.LOW))
        await room.next_event(msg.MediaStarted)
        await asyncio.sleep(1.5)
        channel = room.process._channel  # what a dead recorderd leaves: EOF on the socket
        assert channel is not None
        await channel.close()
        await asyncio.wait_for(room.exited.wait(), 60)
    finally:
        await publisher.close()
    assert room.process.exitcode == 0
    path = tmp_path / "rec-o" / "rec-o.webm"
    info = await asyncio.to_thread(probe, path)  # finalised: whole without recovery
    assert info.video_seconds > 1.0


async def test_rooms_sharing_a_process_record_close_and_are_lost_apart(
        room: Room, tmp_path: Path) -> None:
    other = room.process.room("room-other")
    idle = room.process.room("room-idle")
    assert room.process.rooms == {"room-proc", "room-other", "room-idle"}
    with pytest.raises(NotFound, match="in room room-idle"):  # its session opened, empty
        await idle.handle(msg.Unpublish("nope"))
    assert not room.process.release("room-idle")  # closed in the process, which goes on
    publishers = [await room.publish("s1"), await room.publish("s2", other)]
    try:
        for remote, rid in ((room.remote, "rec-1"), (other, "rec-2")):
            await remote.handle(msg.StartCapture(
                recording_id=rid, directory=str(tmp_path / rid), file_name=f"{rid}.mkv",
                format=Format.MKV, quality=Quality.LOW))
        await room.next_event(msg.MediaStarted)
        await room.next_event(msg.MediaStarted, room_id="room-other")
        assert (room.remote.publisher_count, other.publisher_count) == (1, 1)
        await asyncio.sleep(1.5)
        await room.remote.handle(msg.StopCapture("rec-1"))
        finished = await room.next_event(msg.CaptureFinished)
        assert isinstance(finished, msg.CaptureFinished)
        assert not other.idle  # its recording goes on in the same process
        pid = room.process.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        lost = await room.next_event(msg.RoomLost, room_id="room-other")
        first = await room.next_event(msg.RoomLost)
    finally:
        for publisher in publishers:
            await publisher.close()
    assert lost == msg.RoomLost(("rec-2",), -signal.SIGKILL)
    assert first == msg.RoomLost((), -signal.SIGKILL)  # its recording had finished
    assert not [e for r, e in room.events if r == "room-idle" and isinstance(e, msg.RoomLost)]
    info = await asyncio.to_thread(probe, Path(finished.files[0].path))
    assert info.video_seconds > 0.5
