"""Who may act on what: the caller from a verified token, and the pure checks on it."""

from __future__ import annotations

from dataclasses import dataclass

from recorder.core.errors import Forbidden


@dataclass(frozen=True)
class Caller:
    user_id: str  # the token's `sub`
    is_admin: bool  # `role: admin`
    rooms: frozenset[str] | None  # the token's `rooms`; None = any room

    def check_room(self, room_id: str) -> None:
        if self.rooms is not None and room_id not in self.rooms and not self.is_admin:
            raise Forbidden(f"this token may not act in room {room_id}")

    def check_owner(self, owner_user_id: str) -> None:
        if not self.is_admin and owner_user_id != self.user_id:
            raise Forbidden("this recording belongs to another user")
