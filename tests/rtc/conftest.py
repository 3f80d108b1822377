from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import pytest

from recorder.room.messages import Publish, PublishAnswer, RoomEvent
from recorder.room.session import RoomConfig, RoomSession
from tests.support.publisher import SyntheticPublisher

E = TypeVar("E")
WAIT = 60.0  # a hang guard on a busy machine, not a measurement


class EventLog:
    """What a room emitted, with a way to wait for the next event of interest."""

    def __init__(self) -> None:
        self.events: list[RoomEvent] = []
        self._changed = asyncio.Event()

    def __call__(self, event: RoomEvent) -> None:
        self.events.append(event)
        self._changed.set()

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]

    async def wait_for(self, kind: type[E], where: Callable[[E], bool] = lambda _: True,
                       count: int = 1) -> list[E]:
        async def matched() -> list[E]:
            while True:
                found = [e for e in self.of(kind) if where(e)]
                if len(found) >= count:
                    return found
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(matched(), WAIT)


class Room:
    def __init__(self, session: RoomSession, log: EventLog) -> None:
        self.session = session
        self.log = log
        self.publishers: list[SyntheticPublisher] = []

    async def publish(self, session_id: str, publisher: SyntheticPublisher,
                      setup: str | None = None, publisher_id: str = "user-1",
                      munge: Callable[[str], str] = lambda sdp: sdp) -> str:
        """Offer, answer, connect; returns the answer SDP."""
        self.publishers.append(publisher)
        offer = munge(await publisher.offer(setup))
        reply = await self.session.handle(
            Publish(session_id, publisher_id, publisher_id, "camera", offer))
        assert isinstance(reply, PublishAnswer)
        await publisher.accept(reply.answer_sdp)
        await publisher.wait_connected()
        return reply.answer_sdp


@pytest.fixture
async def make_room() -> AsyncIterator[Callable[..., Room]]:
    rooms: list[Room] = []

    def make(**config: Any) -> Room:
        log = EventLog()
        settings: dict[str, Any] = {"max_publishers": 4, "ice_servers": []}
        settings.update(config)
        room = Room(RoomSession("room-1", RoomConfig(**settings), log), log)
        rooms.append(room)
        return room

    yield make
    for room in rooms:
        await room.session.close()
        for publisher in room.publishers:
            await publisher.close()
