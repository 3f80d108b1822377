"""Where a request must act: this node, or the node that owns the room (docs/operations.md).

The HTTP edge asks before it runs a publish, a start or a control request. The answers are
built to cost nothing or one round trip on a single node: a claim is one Lua step, a
recording or WHIP session this node runs is known without asking Redis at all, and only a
recording this node does not run costs a GET of its state.

Rooms this node claimed are renewed with the heartbeat while they have publishers or
recordings here and released when they have none; a fresh claim is kept for a few
heartbeats so a publish still negotiating is not released under its feet.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Protocol

from recorder.core.errors import NotFound, Unavailable
from recorder.core.lifecycle import ACTIVE
from recorder.state.owners import Owner, RoomOwners
from recorder.state.store import StateStore

logger = logging.getLogger(__name__)

CLAIM_GRACE_HEARTBEATS = 3


class LocalWork(Protocol):
    """What this node runs right now (the recording service)."""

    def runs(self, recording_id: str) -> bool: ...

    def has_session(self, session_id: str) -> bool: ...

    def rooms_in_use(self) -> set[str]: ...


class RoomPlacement:
    def __init__(self, owners: RoomOwners, store: StateStore, local: LocalWork,
                 heartbeat_seconds: float, orphan_timeout: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._owners = owners
        self._store = store
        self._local = local
        self._grace = heartbeat_seconds * CLAIM_GRACE_HEARTBEATS
        self._orphan_timeout = orphan_timeout
        self._clock = clock
        self._claimed: dict[str, float] = {}  # room id -> when this node last claimed it

    @property
    def node_id(self) -> str:
        return self._owners.node_id

    async def room(self, room_id: str) -> Owner | None:
        """Claim the room for a publish or start; None when it acts here, else its owner.

        With the store unreachable the request acts here: a start then fails on its own
        (503), and a publisher is not refused for what only the store can tell.
        """
        try:
            owner = await self._owners.claim(room_id)
        except Unavailable as exc:
            logger.warning("room %s: ownership not checked: %s", room_id, exc.detail)
            return None
        if owner is None:
            if room_id not in self._claimed:
                logger.info("room %s: owned by this node (%s)", room_id, self.node_id)
            self._claimed[room_id] = self._clock()
        return owner

    async def recording(self, recording_id: str) -> Owner | None:
        """The live node that runs an active recording, when it is not this one.

        A recording whose node stopped beating answers 503 until a node takes it over.
        """
        if self._local.runs(recording_id):
            return None
        try:
            state = await self._store.get(recording_id)
        except NotFound:
            return None  # the handler answers 404
        if state.node_id == self.node_id or state.status not in ACTIVE:
            return None  # not running anywhere: this node answers (409, or the change)
        owner = await self._owners.live_node(state.node_id)
        if owner is None:
            raise Unavailable(
                f"recording {recording_id} runs on node {state.node_id}, which stopped "
                f"answering; another node takes it over after "
                f"{self._orphan_timeout:g} s", retry_after=math.ceil(self._orphan_timeout))
        return owner

    async def files(self, recording_id: str) -> Owner | None:
        """The live node whose disk holds the recording's files, when it is not this one
        (None too when that node is gone: this node answers with what it can read)."""
        if self._local.runs(recording_id):
            return None
        try:
            state = await self._store.get(recording_id)
        except NotFound:
            return None
        if state.node_id == self.node_id:
            return None
        return await self._owners.live_node(state.node_id)

    async def session(self, room_id: str, session_id: str) -> Owner | None:
        """The owner of a WHIP session this node does not hold (its room's owner)."""
        if self._local.has_session(session_id):
            return None
        return await self._owners.owner(room_id)

    async def renew(self) -> None:
        """Renew the rooms that live here, release the others (called every heartbeat)."""
        now = self._clock()
        live = self._local.rooms_in_use()
        for room_id in sorted(live | set(self._claimed)):
            fresh = now - self._claimed.get(room_id, -math.inf) < self._grace
            if room_id in live or fresh:
                owner = await self._owners.claim(room_id)
                if owner is not None:
                    logger.warning("room %s: owned by node %s although it lives here too",
                                   room_id, owner.node_id)
                self._claimed.setdefault(room_id, now)
            else:
                del self._claimed[room_id]
                if await self._owners.release(room_id):
                    logger.info("room %s: released (nothing left on this node)", room_id)

    async def release_all(self) -> None:
        """At shutdown: every room this node still holds is free for others at once."""
        for room_id in sorted(set(self._claimed) | self._local.rooms_in_use()):
            try:
                await self._owners.release(room_id)
            except Unavailable as exc:
                logger.warning("room %s: not released: %s", room_id, exc.detail)
                return
        self._claimed.clear()
