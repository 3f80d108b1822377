"""Concurrency limits as data. The store admits atomically; this names them in order."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    max_per_room: int
    max_per_user: int
    max_concurrent: int

    def ordered(self) -> list[tuple[str, int]]:
        """The order in which limits are checked; the first that fails is named (docs/usage.md)."""
        return [
            ("max_per_room", self.max_per_room),
            ("max_per_user", self.max_per_user),
            ("max_concurrent", self.max_concurrent),
        ]


def first_failing(limits: Limits, room: int, user: int, total: int) -> str | None:
    """The first limit that one more active recording would exceed, or None."""
    for (name, limit), count in zip(limits.ordered(), (room, user, total), strict=True):
        if count >= limit:
            return name
    return None
