"""Rooms in real child processes, driven through recorderd's registry of them (no daemon):
the same commands, replies, refusals and events as in-process, and what a death does."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from recorder.config.settings import Settings
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
from recorder.room.wire import ErrorInfo
from recorder.service.room_record import RoomRecord, RunningRecording
from recorder.service.rooms import RoomRegistry
from tests.support.media import probe
from tests.support.publisher import SyntheticPublisher
from tests.support.states import make_state


class Rooms:
    """A registry running rooms in processes, and every event it passed on."""

    def __init__(self, tmp_path: Path, isolation: str = "process") -> None:
        self.events: list[tuple[str, msg.RoomEvent]] = []
        self.arrived = asyncio.Event()
        settings = Settings.model_validate({
            "storage_dir": tmp_path / "storage", "ice_host_addresses": ["127.0.0.1"],
            "room_isolation": isolation, "room_workers": 1})
        self.registry = RoomRegistry(settings, self._on_event)
        self.tmp_path = tmp_path

    def _on_event(self, room_id: str, event: msg.RoomEvent) -> None:
        self.events.append((room_id, event))
        self.arrived.set()

    def record(self, room_id: str) -> RoomRecord:
        return next(r for r in self.registry.records() if r.room_id == room_id)

    def process(self, room_id: str) -> RoomProcess:
        host = self.record(room_id).host
        assert isinstance(host, RemoteRoom)
        return host.process

    async def next_event(self, room_id: str, kind: type[msg.RoomEvent],
                         within: float = 60) -> msg.RoomEvent:
        async def wait() -> msg.RoomEvent:
            while True:
                for room, event in self.events:
                    if isinstance(event, kind) and room == room_id:
                        return event
                self.arrived.clear()
                await self.arrived.wait()
        return await asyncio.wait_for(wait(), within)

    async def publish(self, room_id: str, session_id: str) -> SyntheticPublisher:
        publisher = SyntheticPublisher(video=(320, 180), fps=15)
        reply = await self.registry.send(room_id, msg.Publish(
            session_id, f"user-{session_id}", f"user-{session_id}", "camera",
            await publisher.offer()))
        assert isinstance(reply, msg.PublishAnswer)
        await publisher.accept(reply.answer_sdp)
        await publisher.wait_connected()
        return publisher

    async def record_mkv(self, room_id: str, recording_id: str,
                         fmt: Format = Format.MKV) -> None:
        """Start a recording the way the service does: admitted into the record first."""
        state = make_state(room_id, recording_id=recording_id)
        self.registry.add_recording(RunningRecording(state))
        await self.registry.send(room_id, msg.StartCapture(
            recording_id=recording_id, directory=str(self.tmp_path / recording_id),
            file_name=f"{recording_id}.{fmt.value}", format=fmt, quality=Quality.LOW))


@pytest.fixture
async def rooms(tmp_path: Path) -> AsyncIterator[Rooms]:
    rooms = Rooms(tmp_path)
    yield rooms
    await rooms.registry.close()


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


async def test_a_room_process_records_and_reports_like_a_session(rooms: Rooms) -> None:
    registry = rooms.registry
    with pytest.raises(NotFound, match="no publisher session nope in room room-proc"):
        await registry.send("room-proc", msg.Unpublish("nope"))
    with pytest.raises(InvalidInput):
        await registry.send("room-proc", msg.Publish("s0", "user-0", "user-0", "camera",
                                                     "not an sdp"))
    pid = rooms.process("room-proc").pid
    assert pid is not None
    assert pid != os.getpid()

    os.kill(pid, signal.SIGINT)  # ctrl-c in a terminal: the room does not die of it
    publisher = await rooms.publish("room-proc", "s1")
    assert list(rooms.record("room-proc").publishers) == ["s1"]
    try:
        await rooms.record_mkv("room-proc", "rec-a", Format.WEBM)
        assert rooms.record("room-proc").lost() == ("rec-a",)
        await rooms.next_event("room-proc", msg.MediaStarted)
        await asyncio.sleep(2.0)
        await registry.send("room-proc", msg.StopCapture("rec-a"))
        finished = await rooms.next_event("room-proc", msg.CaptureFinished)
    finally:
        await publisher.close()
    assert isinstance(finished, msg.CaptureFinished)
    assert rooms.record("room-proc").lost() == ()  # finished: a death now takes nothing
    info = await asyncio.to_thread(probe, Path(finished.files[0].path))
    assert info.video_codec == "vp8"
    assert info.video_seconds > 1.0
    assert {e.track.kind for _, e in rooms.events if isinstance(e, msg.TrackAdded)} == {
        "audio", "video"}
    await rooms.next_event("room-proc", msg.PublisherLeft)
    assert registry.leave("s1") is not None  # what the service does with PublisherLeft
    assert registry.forget("rec-a") is not None  # ... and once the files are described
    assert rooms.record("room-proc").idle
    process = rooms.process("room-proc")

    await registry.close_idle()
    assert registry.hosted() == set()
    await asyncio.wait_for(process.exited(), 30)
    assert process.exitcode == 0
    assert not _alive(pid)
    assert not any(isinstance(e, msg.RoomLost) for _, e in rooms.events)


async def test_a_killed_room_process_reports_its_recordings_and_fails_waiting_commands(
        rooms: Rooms) -> None:
    registry = rooms.registry
    publisher = await rooms.publish("room-proc", "s1")
    try:
        await rooms.record_mkv("room-proc", "rec-k")
        await rooms.next_event("room-proc", msg.MediaStarted)
        process = rooms.process("room-proc")
        pid = process.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)  # a command sent now is certainly still in flight
        waiting = asyncio.create_task(registry.send("room-proc", msg.PauseCapture("rec-k")))
        await asyncio.sleep(0.2)
        assert not waiting.done()
        assert not rooms.record("room-proc").idle  # a command in flight
        os.kill(pid, signal.SIGKILL)
        lost = await rooms.next_event("room-proc", msg.RoomLost)
        with pytest.raises(Unavailable, match="killed by SIGKILL"):
            await waiting
    finally:
        await publisher.close()
    assert lost == msg.RoomLost(("rec-k",), -signal.SIGKILL)
    left = [e for _, e in rooms.events if isinstance(e, msg.PublisherLeft)]
    assert [e.session_id for e in left] == ["s1"]  # the service forgets the WHIP session
    assert not process.alive
    assert rooms.record("room-proc").host is None
    assert rooms.record("room-proc").lost() == ()  # reported once
    with pytest.raises(NotFound):  # nothing runs the room now: nothing to unpublish
        await registry.send("room-proc", msg.Unpublish("s1"))


async def test_a_room_process_whose_parent_goes_away_finalises_and_exits(
        rooms: Rooms, tmp_path: Path) -> None:
    publisher = await rooms.publish("room-proc", "s1")
    try:
        await rooms.record_mkv("room-proc", "rec-o", Format.WEBM)
        await rooms.next_event("room-proc", msg.MediaStarted)
        await asyncio.sleep(1.5)
        process = rooms.process("room-proc")
        channel = process._channel  # what a dead recorderd leaves: EOF on the socket
        assert channel is not None
        await channel.close()
        await asyncio.wait_for(process.exited(), 60)
    finally:
        await publisher.close()
    assert process.exitcode == 0
    path = tmp_path / "rec-o" / "rec-o.webm"
    info = await asyncio.to_thread(probe, path)  # finalised: whole without recovery
    assert info.video_seconds > 1.0


async def test_rooms_sharing_a_worker_record_close_and_are_lost_apart(tmp_path: Path) -> None:
    rooms = Rooms(tmp_path, isolation="pool")  # one worker: every room shares it
    registry = rooms.registry
    try:
        with pytest.raises(InvalidInput):  # opens room-idle's session, which stays empty
            await registry.send("room-idle", msg.Publish("s0", "u", "u", "camera", "no sdp"))
        publishers = [await rooms.publish("room-proc", "s1"),
                      await rooms.publish("room-other", "s2")]
        process = rooms.process("room-idle")
        assert rooms.process("room-proc") is process
        assert rooms.process("room-other") is process
        await registry.close_idle()  # closed in the process, which goes on
        assert registry.hosted() == {"room-proc", "room-other"}
        assert process.rooms == {"room-proc", "room-other"}
        try:
            for room_id, rid in (("room-proc", "rec-1"), ("room-other", "rec-2")):
                await rooms.record_mkv(room_id, rid)
            await rooms.next_event("room-proc", msg.MediaStarted)
            await rooms.next_event("room-other", msg.MediaStarted)
            await asyncio.sleep(1.5)
            await registry.send("room-proc", msg.StopCapture("rec-1"))
            finished = await rooms.next_event("room-proc", msg.CaptureFinished)
            assert isinstance(finished, msg.CaptureFinished)
            pid = process.pid
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            lost = await rooms.next_event("room-other", msg.RoomLost)
            first = await rooms.next_event("room-proc", msg.RoomLost)
        finally:
            for publisher in publishers:
                await publisher.close()
        await registry.hosts.ready()  # a new worker took the dead one's place
        (worker,) = registry.hosts.workers()
        assert worker.pid is not None
        assert worker.pid != pid
        assert worker.rooms == 0
        assert registry.hosts.restarts == 1
    finally:
        await registry.close()
    assert lost == msg.RoomLost(("rec-2",), -signal.SIGKILL)
    assert first == msg.RoomLost((), -signal.SIGKILL)  # its recording had finished
    assert not [e for r, e in rooms.events if r == "room-idle" and isinstance(e, msg.RoomLost)]
    info = await asyncio.to_thread(probe, Path(finished.files[0].path))
    assert info.video_seconds > 0.5
