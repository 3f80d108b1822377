"""This node's WHIP publishers: who publishes in which room, and the slots they hold.

A publish is checked here in the documented order (docs/security.md, "Caps"): the room's
publisher limit and the CPU of its live recordings (503), then the user's cluster-wide
publisher slots and this node's room cap (429); only then does the room hear of the offer.
A session ends once, whoever ends it (a DELETE, its peer closing, its room process lost),
and its slot goes back then.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from recorder.core.access import Caller
from recorder.core.errors import LimitReached, NotFound, Unavailable
from recorder.room import messages as msg
from recorder.room.session import PUBLISHER_RETRY_AFTER_SECONDS
from recorder.service.caps import PublisherSlots, RoomCap
from recorder.service.rooms import RoomRegistry

logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class WhipSession:
    room_id: str
    user_id: str
    slot: bool = False  # holds one of the user's publisher slots (admins hold none)


class Publishers:
    def __init__(self, rooms: RoomRegistry, room_cap: RoomCap, slots: PublisherSlots,
                 cpu_refuses: Callable[[str], float | None]) -> None:
        """`cpu_refuses(room_id)` is the node's capacity when one more publisher in that room
        would take its live recordings past it, else None."""
        self._rooms = rooms
        self._room_cap = room_cap
        self._slots = slots
        self._cpu_refuses = cpu_refuses
        self._sessions: dict[str, WhipSession] = {}

    def __contains__(self, session_id: str) -> bool:
        return session_id in self._sessions

    def rooms(self) -> set[str]:
        return {session.room_id for session in self._sessions.values()}

    def per_room(self) -> Counter[str]:
        return Counter(session.room_id for session in self._sessions.values())

    async def publish(self, caller: Caller, room_id: str, role: str,
                      offer_sdp: str) -> tuple[str, str]:
        capacity = self._cpu_refuses(room_id)
        if capacity is not None:
            raise Unavailable(f"room {room_id}: one more publisher would take its live "
                              f"recordings past this node's CPU capacity ({capacity:g} cores)",
                              retry_after=PUBLISHER_RETRY_AFTER_SECONDS)
        self._rooms.check_publisher_room(room_id)  # 503 before the per-user caps' 429
        session_id = uuid.uuid4().hex
        await self._slots.claim(caller, session_id)
        try:
            with self._room_cap.opening(room_id) as rooms_refused:
                if rooms_refused is not None:
                    raise LimitReached("max_rooms", rooms_refused)
                publisher_id = caller.user_id + ("-screen" if role == "screen" else "")
                reply = await self._rooms.send(
                    room_id, msg.Publish(session_id, publisher_id, role, offer_sdp))
        except BaseException:
            await self._slots.release(caller.user_id, session_id)
            raise
        if not isinstance(reply, msg.PublishAnswer):
            raise TypeError(f"a room answered Publish with {type(reply).__name__}")
        self._sessions[session_id] = WhipSession(room_id, caller.user_id, not caller.is_admin)
        return session_id, reply.answer_sdp

    async def unpublish(self, caller: Caller, room_id: str, session_id: str) -> None:
        session = self._sessions.get(session_id)
        if session is None or session.room_id != room_id:
            raise NotFound(f"no WHIP session {session_id} in room {room_id}")
        caller.check_owner(session.user_id)
        await self.ended(session_id)
        await self._rooms.send(room_id, msg.Unpublish(session_id))

    async def ended(self, session_id: str) -> None:
        """Forget a session and give its publisher slot back (once, whoever ends it)."""
        session = self._sessions.pop(session_id, None)
        if session is not None and session.slot:
            await self._slots.release(session.user_id, session_id)

    async def room_lost(self, room_id: str) -> None:
        """The room's process died: its sessions died with it."""
        for session_id in [sid for sid, s in self._sessions.items() if s.room_id == room_id]:
            await self.ended(session_id)

    async def close(self) -> None:
        for session_id in list(self._sessions):
            await self.ended(session_id)
