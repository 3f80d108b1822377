"""The room sessions this node runs, one per room with publishers or recordings."""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiortc import RTCIceServer

from recorder.config.settings import Settings
from recorder.room.messages import RoomCommand, RoomEvent, RoomReply
from recorder.room.session import RoomConfig, RoomSession

logger = logging.getLogger(__name__)


class RoomRegistry:
    """Creates room sessions on demand and closes idle ones.

    Each session reports through `emit(room_id, event)`; the registry is the only place that
    knows whether a room runs in this process (today) or in a child process (later).
    """

    def __init__(self, settings: Settings, emit: Callable[[str, RoomEvent], None]) -> None:
        self._config = RoomConfig(
            max_publishers=settings.max_publishers_per_room,
            ice_servers=[
                RTCIceServer(urls=s.urls, username=s.username, credential=s.credential)
                for s in settings.ice_servers
            ],
        )
        self._emit = emit
        self._rooms: dict[str, RoomSession] = {}
        self._busy: dict[str, int] = {}  # commands in flight per room: not idle meanwhile

    def _room(self, room_id: str) -> RoomSession:
        room = self._rooms.get(room_id)
        if room is None:
            room = RoomSession(room_id, self._config, lambda event: self._emit(room_id, event))
            self._rooms[room_id] = room
            logger.info("room %s: session opened", room_id)
        return room

    async def send(self, room_id: str, command: RoomCommand) -> RoomReply:
        room = self._room(room_id)
        self._busy[room_id] = self._busy.get(room_id, 0) + 1
        try:
            return await room.handle(command)
        finally:
            self._busy[room_id] -= 1
            if not self._busy[room_id]:
                del self._busy[room_id]

    async def close_idle(self) -> None:
        for room_id, room in list(self._rooms.items()):
            if room.idle and room_id not in self._busy:
                del self._rooms[room_id]
                await room.close()
                logger.info("room %s: session closed (idle)", room_id)

    async def close(self) -> None:
        rooms, self._rooms = self._rooms, {}
        for room in rooms.values():
            await room.close()

    def publisher_count(self) -> int:
        return sum(room.publisher_count for room in self._rooms.values())
