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
from collections.abc import Callable

from recorder.core.access import Caller
from recorder.core.errors import LimitReached, NotFound, Unavailable
from recorder.room import messages as msg
from recorder.room.session import PUBLISHER_RETRY_AFTER_SECONDS
from recorder.service.caps import PublisherSlots, RoomCap
from recorder.service.room_record import Publisher
from recorder.service.rooms import RoomRegistry

logger = logging.getLogger(__name__)

class Publishers:
    def __init__(self, rooms: RoomRegistry, room_cap: RoomCap, slots: PublisherSlots,
                 cpu_refuses: Callable[[str], float | None]) -> None:
        """`cpu_refuses(room_id)` is the node's capacity when one more publisher in that room
        would take its live recordings past it, else None. The sessions themselves are in
        the rooms' records."""
        self._rooms = rooms
        self._room_cap = room_cap
        self._slots = slots
        self._cpu_refuses = cpu_refuses

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
                reply = await self._rooms.send(room_id, msg.Publish(
                    session_id, publisher_id, caller.user_id, role, offer_sdp))
        except BaseException:
            await self._slots.release(caller.user_id, session_id)
            raise
        if not isinstance(reply, msg.PublishAnswer):
            raise TypeError(f"a room answered Publish with {type(reply).__name__}")
        return session_id, reply.answer_sdp

    async def unpublish(self, caller: Caller, room_id: str, session_id: str) -> None:
        found = self._rooms.publisher(session_id)
        if found is None or found[0] != room_id:
            raise NotFound(f"no WHIP session {session_id} in room {room_id}")
        caller.check_owner(found[1].user_id)
        await self.ended(session_id)
        await self._rooms.send(room_id, msg.Unpublish(session_id))

    async def ended(self, session_id: str) -> Publisher | None:
        """Forget a session and give its publisher slot back (once, whoever ends it: a
        DELETE, its peer closing, its room process lost): the publisher the first time,
        then None. Admins hold no slot: releasing theirs changes nothing."""
        publisher = self._rooms.leave(session_id)
        if publisher is not None:
            await self._slots.release(publisher.user_id, session_id)
        return publisher

    async def close(self) -> None:
        for record in self._rooms.records():
            for session_id in list(record.publishers):
                await self.ended(session_id)
