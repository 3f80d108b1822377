"""Who may act on what: the caller from a verified token, and the pure checks on it."""

from __future__ import annotations

from dataclasses import dataclass

from recorder.core.errors import Forbidden


@dataclass(frozen=True)
class Caller:
    user_id: str  # the token's `sub`
    is_admin: bool  # `role: admin`
    rooms: frozenset[str] | None  # the token's `rooms`; None = any room

    @property
    def visible_rooms(self) -> frozenset[str] | None:
        """The rooms whose recordings this caller may see; None = any (admins, or no claim)."""
        return None if self.is_admin else self.rooms

    def check_room(self, room_id: str) -> None:
        if self.rooms is not None and room_id not in self.rooms and not self.is_admin:
            raise Forbidden(f"this token may not act in room {room_id}")

    def check_recording(self, recording_id: str, room_id: str, owner_user_id: str) -> None:
        """May this caller see or act on a stored recording: its room is in the token's
        `rooms`, then it is the caller's own. The refusal names neither the room nor the owner,
        so it says no more than that the id exists (docs/security.md)."""
        if self.rooms is not None and room_id not in self.rooms and not self.is_admin:
            raise Forbidden(f"recording {recording_id} is not in a room this token may act in")
        self.check_owner(owner_user_id)

    def check_owner(self, owner_user_id: str) -> None:
        if not self.is_admin and owner_user_id != self.user_id:
            raise Forbidden("this recording belongs to another user")
