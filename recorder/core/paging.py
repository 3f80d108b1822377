"""Pages of recording lists: newest first, a bounded page size, and opaque cursors.

A cursor is a position (the last item's `created_at` and `recording_id`), not a stored
object: the next page is everything strictly older than it, so a page never repeats or skips
an item even when recordings are added or expire between two requests, and the server keeps
nothing per listing. It is opaque to clients (base64url of a small JSON array) so its form can
change; anything that does not decode to a position is refused as an unknown cursor.
See docs/security.md, "Who holds tokens and what a token can do".
"""

from __future__ import annotations

import base64
import binascii
import heapq
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from recorder.core.errors import InvalidInput

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_CURSOR_LENGTH = 256

_RECORDING_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")

T = TypeVar("T")


@dataclass(frozen=True, order=True)
class Position:
    """Where an item sorts: by creation time, ties broken by id (both ascending)."""

    created_at: datetime
    recording_id: str

    def encode(self) -> str:
        raw = json.dumps([self.created_at.isoformat(), self.recording_id], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str) -> Position:
        """The position a cursor names; InvalidInput for anything this server did not make."""
        try:
            if len(cursor) > MAX_CURSOR_LENGTH:
                raise ValueError("too long")
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            created, recording_id = json.loads(raw)
            at = datetime.fromisoformat(created)
            if at.tzinfo is None or not _RECORDING_ID.match(recording_id):
                raise ValueError("not a position")
        except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
            raise InvalidInput("unknown cursor: pass next_cursor from a previous page") from exc
        return cls(at, recording_id)

    @classmethod
    def of(cls, fields: dict[str, Any]) -> Position:
        """The position of a stored state (its JSON fields)."""
        return cls(datetime.fromisoformat(str(fields["created_at"])), str(fields["recording_id"]))


@dataclass(frozen=True)
class PageRequest:
    limit: int = DEFAULT_LIMIT
    after: Position | None = None  # the previous page's last item; None = the first page

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise InvalidInput(f"limit must be 1 to {MAX_LIMIT}")


@dataclass(frozen=True)
class ListFilter:
    """Which stored states a listing keeps, judged on their JSON fields before parsing."""

    user_id: str | None = None  # only this owner's
    status: str | None = None  # only this status
    rooms: frozenset[str] | None = None  # only these rooms (a token's `rooms`)
    node_id: str | None = None  # only recordings of this node

    def keeps(self, fields: dict[str, Any]) -> bool:
        return ((self.user_id is None or fields.get("user_id") == self.user_id)
                and (self.status is None or fields.get("status") == self.status)
                and (self.rooms is None or fields.get("room_id") in self.rooms)
                and (self.node_id is None or fields.get("node_id") == self.node_id))


@dataclass
class Page(Generic[T]):
    items: list[T]
    next: Position | None  # None: this is the last page

    @property
    def next_cursor(self) -> str | None:
        return None if self.next is None else self.next.encode()


@dataclass
class Newest(Generic[T]):
    """Collects the page a request asks for from items offered in any order, holding at most
    `limit + 1` of them, so a listing's memory does not grow with the index it reads."""

    request: PageRequest
    _heap: list[tuple[Position, int, T]] = field(default_factory=list)
    _held: set[Position] = field(default_factory=set)  # the positions in _heap
    _seq: int = 0

    def offer(self, position: Position, item: T) -> None:
        """Keep `item` if it belongs on the page; an item offered twice (a SCAN may return a
        key twice) is kept once: a repeat that was dropped is dropped again."""
        after = self.request.after
        if after is not None and not position < after:
            return
        if position in self._held:
            return
        self._seq += 1
        entry = (position, self._seq, item)
        if len(self._heap) <= self.request.limit:
            heapq.heappush(self._heap, entry)
        elif position > self._heap[0][0]:
            self._held.discard(heapq.heapreplace(self._heap, entry)[0])
        else:
            return
        self._held.add(position)

    def page(self) -> Page[tuple[Position, T]]:
        ordered = sorted(self._heap, key=lambda e: (e[0], e[1]), reverse=True)
        kept = [(position, item) for position, _, item in ordered[: self.request.limit]]
        more = len(ordered) > self.request.limit
        return Page(kept, kept[-1][0] if more else None)
