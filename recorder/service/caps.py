"""What one node lets one user, or everyone together, make it hold (docs/security.md, "Caps").

Two pieces the service uses for starts and WHIP publishers: this node's room cap
(RECORDER_MAX_ROOMS, node-local like the CPU budget: rooms hosted plus rooms being opened
right now, so a burst of requests cannot all see room for one more), and the user's
cluster-wide publisher slots (RECORDER_MAX_PUBLISHERS_PER_USER), held in the store while a
WHIP session lives. Admins are spared the per-user caps, never the node's.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from recorder.core.access import Caller
from recorder.core.errors import Unavailable
from recorder.state.slots import PUBLISHERS, UserSlots

logger = logging.getLogger(__name__)


class RoomCap:
    def __init__(self, max_rooms: int, hosted: Callable[[], set[str]]) -> None:
        self._max_rooms = max_rooms
        self._hosted = hosted
        self._opening: Counter[str] = Counter()

    def refused(self, room_id: str) -> int | None:
        """The cap when `room_id` would be one room too many on this node, else None."""
        rooms = self._hosted() | set(self._opening)
        if room_id in rooms or len(rooms) < self._max_rooms:
            return None
        return self._max_rooms

    @contextmanager
    def opening(self, room_id: str) -> Iterator[int | None]:
        """Yields the cap when `room_id` would be one room too many (see `refused`), else
        None, and then counts the room as hosted while the request may open it."""
        refused = self.refused(room_id)
        if refused is not None:
            yield refused
            return
        self._opening[room_id] += 1
        try:
            yield None
        finally:
            self._opening[room_id] -= 1
            if not self._opening[room_id]:
                del self._opening[room_id]


class PublisherSlots:
    """The user's WHIP sessions counted cluster-wide: claimed before the room hears of a
    publisher, given back whenever the session ends (DELETE, its peer closing, its room lost)."""

    def __init__(self, slots: UserSlots, node_id: str, cap: int) -> None:
        self._slots = slots
        self._node_id = node_id
        self._cap = cap

    async def claim(self, caller: Caller, session_id: str) -> None:
        if not caller.is_admin:
            await self._slots.claim(PUBLISHERS, caller.user_id, session_id, self._node_id,
                                    self._cap)

    async def release(self, user_id: str, session_id: str) -> None:
        """Give a slot back; in a store outage it stays held (logged) until this node restarts."""
        try:
            await self._slots.release(PUBLISHERS, user_id, session_id)
        except Unavailable as exc:
            logger.warning("WHIP session %s: publisher slot of %s not released: %s",
                           session_id, user_id, exc.detail)
