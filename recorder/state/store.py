"""The recording state store: atomic admission and compare-and-set writes (docs/operations.md).

Every process (main, worker, other nodes) writes states only through :class:`StateStore`.
Admission checks the room, user and total active counts and writes the new state in one Lua
script, so concurrent starts on any number of nodes never exceed a limit. Updates read the
state, apply a pure change (normally :func:`recorder.core.lifecycle.apply`) and write it only
if the stored ``version`` is still the one read; the same script keeps the active sets,
``processing:{node_id}`` and the events channel in step with the status.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis

from recorder.core.errors import InvalidInput, LimitReached, NotFound, Unavailable
from recorder.core.lifecycle import ACTIVE, TERMINAL
from recorder.core.limits import Limits
from recorder.core.models import RecordingState, Status
from recorder.core.paging import ListFilter, Newest, Page, PageRequest, Position
from recorder.core.webhooks import Notice, WebhookRouting, build_job, webhook_event
from recorder.state import scripts
from recorder.state.connection import awaited, store_errors
from recorder.state.events import StatusEvent, iso_utc, status_event
from recorder.state.history import HISTORY_ENTRIES, RecordingHistory
from recorder.state.keys import KeySpace
from recorder.state.nodes import LAST_SEEN_SECONDS, NodeInfo
from recorder.state.slots import UserSlots
from recorder.state.totals import FINISHED, ClusterTotals
from recorder.state.written_webhooks import WrittenWebhooks

logger = logging.getLogger(__name__)

DEFAULT_MAX_ATTEMPTS = 50
_HEARTBEATS_TO_LIVE = 3
_IMMUTABLE = ("recording_id", "room_id", "user_id")
_LIST_CHUNK = 256  # states read per MGET while listing
START_RATE_WINDOW_MS = 60_000

Change = Callable[[RecordingState], RecordingState]


class StateStore:
    def __init__(
        self,
        redis: aioredis.Redis,
        keys: KeySpace,
        state_ttl: int,
        index_ttl: int,
        *,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        webhooks: WebhookRouting | None = None,
        epoch_gated: bool = False,
    ) -> None:
        """`epoch_gated`: admission waits for the store's epoch and its gate (recorderd;
        docs/operations.md, "When the store fails")."""
        self._redis = redis
        self._epoch_gated = epoch_gated
        self.written_webhooks = WrittenWebhooks()
        self._webhooks = webhooks or WebhookRouting()
        self._keys = keys
        self._state_ttl = state_ttl
        self._index_ttl = index_ttl
        self._max_attempts = max_attempts
        self._admit = redis.register_script(scripts.ADMIT)
        self._totals = ClusterTotals(redis, keys)  # finished recordings, for /metrics
        self._update = redis.register_script(scripts.UPDATE)
        self.slots = UserSlots(redis, keys)
        self.history = RecordingHistory(redis, keys, state_ttl)

    @property
    def keys(self) -> KeySpace:
        return self._keys

    async def admit(self, state: RecordingState, limits: Limits,
                    cpu_refused: float | None = None, *, starts_per_minute: int = 0,
                    rooms_refused: int | None = None) -> RecordingState:
        """Write a new `pending` state (version 1) if no limit is reached, else LimitReached.

        `cpu_refused` is this node's CPU capacity when the start would exceed it: `cpu` is
        named only if the shared limits, checked first (docs/usage.md), all pass. Then the user's
        `starts_per_minute` (0: not limited, as for admins) and last `rooms_refused`, this
        node's room cap when the start would open one room too many (docs/security.md).
        """
        if state.status is not Status.PENDING:
            raise ValueError(f"recording {state.recording_id}: admit needs a pending state")
        new = state.model_copy(update={"version": 1})
        k = self._keys
        limited = {
            "max_per_room": k.active_room(new.room_id),
            "max_per_user": k.active_user(new.user_id),
            "max_concurrent": k.active(),
        }
        ordered = limits.ordered()
        script_keys = [k.state(new.recording_id), k.room(new.room_id), k.user(new.user_id),
                       k.starts(new.user_id), k.epoch()]
        script_keys += [limited[name] for name, _ in ordered]
        args = self._admit_args(new, ordered, "" if cpu_refused is None else "cpu",
                                starts_per_minute, "" if rooms_refused is None else "max_rooms")
        with store_errors():
            result = await self._run(self._admit, script_keys, args)
            if (result[0] == "limit" and str(result[1]) in limited
                    and await self._prune(limited[str(result[1])])):
                result = await self._run(self._admit, script_keys, args)
        if result[0] == "restoring":
            raise _restoring(int(result[1]))
        if result[0] == "exists":
            raise InvalidInput(f"recording {new.recording_id} already exists")
        if result[0] == "limit":
            raise self._refusal(new, str(result[1]), result[2:], dict(ordered), cpu_refused,
                                starts_per_minute, rooms_refused)
        logger.info("recording %s admitted (room %s, user %s, node %s)", new.recording_id,
                    new.room_id, new.user_id, new.node_id)
        return new

    def _admit_args(self, new: RecordingState, ordered: list[tuple[str, int]], cpu: str,
                    starts_per_minute: int, rooms: str) -> list[str | int]:
        """The ADMIT script's arguments (state/scripts.py names them); `cpu` and `rooms` are
        the limit's name when this node refuses, else empty."""
        event = status_event(None, new, datetime.now(UTC))
        args: list[str | int] = [
            new.recording_id, new.to_json(), self._state_ttl, self._index_ttl,
            self._keys.events(), event.model_dump_json(), cpu, starts_per_minute,
            round(time.time() * 1000), START_RATE_WINDOW_MS, rooms,
            "1" if self._epoch_gated else "",
        ]
        for name, limit in ordered:
            args += [name, limit]
        return args

    @staticmethod
    def _refusal(new: RecordingState, name: str, extra: list[Any], shared: dict[str, int],
                 cpu_refused: float | None, starts_per_minute: int,
                 rooms_refused: int | None) -> LimitReached:
        values: dict[str, float] = {**shared, "cpu": cpu_refused or 0.0,
                                    "start_rate": starts_per_minute,
                                    "max_rooms": rooms_refused or 0}
        value = values.get(name, 0.0)
        logger.info("recording %s refused: %s (%g) reached", new.recording_id, name, value)
        if name == "start_rate" and extra:  # the oldest counted start leaves the window then
            seconds = math.ceil(float(extra[0]) / 1000)
            return LimitReached(name, value,
                                retry_after=min(START_RATE_WINDOW_MS // 1000, max(1, seconds)))
        return LimitReached(name, value)

    async def get(self, recording_id: str) -> RecordingState:
        with store_errors():
            raw = await self._redis.get(self._keys.state(recording_id))
        if raw is None:
            raise NotFound(f"recording {recording_id} not found")
        return RecordingState.from_json(raw)

    async def update(self, recording_id: str, change: Change, *,
                     notice: Notice | None = None) -> RecordingState:
        """Apply `change` with compare-and-set on `version`, retrying on concurrent writes.

        `change` must be pure: it may run several times, and whatever it raises (for example
        InvalidTransition) propagates with nothing written. A status change publishes its
        event and queues its webhook in the same atomic write; `notice` does so for a write
        that changes no status (Stream's playback outcome).
        """
        for attempt in range(1, self._max_attempts + 1):
            before = await self.get(recording_id)
            after = change(before.model_copy(deep=True))
            for field in _IMMUTABLE:
                if getattr(after, field) != getattr(before, field):
                    raise ValueError(f"recording {recording_id}: {field} cannot change")
            after = after.model_copy(update={"version": before.version + 1})
            gain, lose = self._set_changes(before, after)
            changed = after.status is not before.status
            at = datetime.now(UTC)
            event, job = self._event_and_job(before, after, at, notice)
            args: list[str | int] = [
                before.version,
                after.to_json(),
                self._state_ttl,
                recording_id,
                len(gain),
                self._keys.events(),
                event,
                job,
                HISTORY_ENTRIES,
            ]
            script_keys = [self._keys.state(recording_id), self._keys.jobs_webhook(),
                           self._keys.history(recording_id), *gain, *lose]
            with store_errors():
                result = await self._run(self._update, script_keys, args)
            if result == "missing":
                raise NotFound(f"recording {recording_id} not found")
            if result == "ok":
                if changed and after.status in TERMINAL:
                    await self._totals.add(FINISHED, after.status.value)
                if changed:
                    logger.info("recording %s %s -> %s", recording_id, before.status, after.status)
                if job:
                    self.written_webhooks.record(recording_id, after.version, job)
                    logger.info("recording %s: webhook queued", recording_id)
                return after
            # Someone wrote in between: back off a little so a burst of writers spreads out.
            await asyncio.sleep(random.uniform(0, 0.001 * min(attempt, 20)))
        raise Unavailable(
            f"recording {recording_id}: not written after {self._max_attempts} conflicting writes"
        )

    def _event_and_job(self, before: RecordingState, after: RecordingState, at: datetime,
                       notice: Notice | None) -> tuple[str, str]:
        """The pub/sub message and the webhook job of a write ('' when there is none)."""
        error: str | None = None
        if after.status is not before.status:
            message = status_event(before.status, after, at)
        elif notice is not None:
            message = StatusEvent(type=notice.type, recording_id=after.recording_id,
                                  room_id=after.room_id, user_id=after.user_id,
                                  status=after.status, at=iso_utc(at))
            error = notice.error
        else:
            return "", ""
        name = webhook_event(message.type)
        url = self._webhooks.url_for(after)
        if name is None or url is None:
            return message.model_dump_json(), ""
        job = build_job(url, name, after, at, error=error,
                        customer_code=self._webhooks.customer_code)
        return message.model_dump_json(), job.to_json()

    async def list_room(self, room_id: str, page: PageRequest,
                        only: ListFilter | None = None) -> Page[RecordingState]:
        return await self._list(self._keys.room(room_id), page, only or ListFilter())

    async def list_user(self, user_id: str, page: PageRequest,
                        only: ListFilter | None = None) -> Page[RecordingState]:
        return await self._list(self._keys.user(user_id), page, only or ListFilter())

    async def active_ids(self) -> set[str]:
        with store_errors():
            members: set[str] = await awaited(self._redis.smembers(self._keys.active()))
        return members

    async def processing_ids(self, node_id: str) -> set[str]:
        """This node's recordings in `processing`, resumed after a restart (docs/operations.md)."""
        with store_errors():
            members: set[str] = await awaited(
                self._redis.smembers(self._keys.processing(node_id))
            )
        return members

    async def heartbeat(self, info: NodeInfo, heartbeat_seconds: float) -> None:
        """Announce this node; the key lives three heartbeats, so two may be missed. The
        same JSON is kept a day as the node's last-seen record."""
        ttl_ms = max(1, round(heartbeat_seconds * _HEARTBEATS_TO_LIVE * 1000))
        raw = info.model_dump_json()
        with store_errors():
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(self._keys.node(info.node_id), raw, px=ttl_ms)
                pipe.set(self._keys.node_seen(info.node_id), raw, ex=LAST_SEEN_SECONDS)
                await pipe.execute()

    async def node(self, node_id: str) -> NodeInfo | None:
        """The node's last heartbeat, or None once it has missed three."""
        with store_errors():
            raw = await self._redis.get(self._keys.node(node_id))
        return None if raw is None else NodeInfo.model_validate_json(raw)

    async def nodes(self) -> list[NodeInfo]:
        """Every node with a live heartbeat."""
        with store_errors():
            names = [n async for n in self._redis.scan_iter(match=self._keys.node_pattern())]
            raws = await self._redis.mget(names) if names else []
        return sorted(
            (NodeInfo.model_validate_json(r) for r in raws if r is not None),
            key=lambda n: n.node_id,
        )

    async def ping(self) -> None:
        with store_errors():
            await awaited(self._redis.ping())

    def membership(self, state: RecordingState) -> tuple[list[str], list[str]]:
        """The sets that hold the id of a recording in `state`, and those that must not."""
        k = self._keys
        active_sets = [k.active(), k.active_room(state.room_id), k.active_user(state.user_id)]
        if state.status in ACTIVE:
            return [*active_sets], [k.processing(state.node_id)]
        if state.status is Status.PROCESSING:
            return [k.processing(state.node_id)], active_sets
        return [], [*active_sets, k.processing(state.node_id)]

    def _set_changes(
        self, before: RecordingState, after: RecordingState
    ) -> tuple[list[str], list[str]]:
        """Which sets gain and which lose the id when `before` is replaced by `after`."""
        k = self._keys
        active_sets = [k.active(), k.active_room(after.room_id), k.active_user(after.user_id)]
        gain: list[str] = []
        lose: list[str] = []
        (gain if after.status in ACTIVE else lose).extend(active_sets)
        if after.status is Status.PROCESSING:
            gain.append(k.processing(after.node_id))
        if before.status is Status.PROCESSING and (
            after.status is not Status.PROCESSING or after.node_id != before.node_id
        ):
            lose.append(k.processing(before.node_id))
        return gain, lose

    async def list_cluster(self, page: PageRequest,
                           only: ListFilter | None = None) -> Page[RecordingState]:
        """Every stored state of the cluster (admins), read by SCAN in chunks: the cost
        grows with the number of states, the memory only with the page."""
        newest: Newest[str | bytes] = Newest(page)
        chunk: list[str] = []
        with store_errors():
            async for key in self._redis.scan_iter(match=self._keys.state_pattern(),
                                                   count=_LIST_CHUNK):
                chunk.append(key)
                if len(chunk) == _LIST_CHUNK:
                    self._offer(newest, await self._redis.mget(chunk), only or ListFilter())
                    chunk = []
            if chunk:
                self._offer(newest, await self._redis.mget(chunk), only or ListFilter())
        found = newest.page()
        return Page([RecordingState.from_json(raw) for _, raw in found.items], found.next)

    async def _list(self, index_key: str, page: PageRequest,
                    only: ListFilter) -> Page[RecordingState]:
        """One page of an index's states, newest first; ids whose state expired are dropped
        from the index. States are read in chunks and only the page's are kept and parsed,
        so memory stays bounded by the page size however large the index is."""
        newest: Newest[str | bytes] = Newest(page)
        with store_errors():
            ids = sorted(await awaited(self._redis.smembers(index_key)))
            for start in range(0, len(ids), _LIST_CHUNK):
                chunk = ids[start:start + _LIST_CHUNK]
                raws = await self._redis.mget([self._keys.state(i) for i in chunk])
                expired = [i for i, raw in zip(chunk, raws, strict=True) if raw is None]
                if expired:
                    await awaited(self._redis.srem(index_key, *expired))
                self._offer(newest, raws, only)
        found = newest.page()
        return Page([RecordingState.from_json(raw) for _, raw in found.items], found.next)

    @staticmethod
    def _offer(newest: Newest[str | bytes], raws: list[Any], only: ListFilter) -> None:
        for raw in raws:
            if raw is None:
                continue
            fields = json.loads(raw)
            if only.keeps(fields):
                newest.offer(Position.of(fields), raw)

    async def _prune(self, active_key: str) -> bool:
        """Drop ids whose state expired from an active set; True if any was dropped.

        An active recording's state is rewritten at least on every status change, so an id
        without a state only remains after a state outlived its TTL untouched: it must not
        hold a limit slot forever.
        """
        ids = sorted(await awaited(self._redis.smembers(active_key)))
        if not ids:
            return False
        raws = await self._redis.mget([self._keys.state(i) for i in ids])
        stale = [i for i, raw in zip(ids, raws, strict=True) if raw is None]
        if not stale:
            return False
        k = self._keys
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in (k.active(), active_key):
                pipe.srem(key, *stale)
            await pipe.execute()
        logger.warning("dropped %d expired ids from %s: %s", len(stale), active_key, stale)
        return True

    @staticmethod
    async def _run(script: Any, keys: Iterable[str], args: list[str | int]) -> Any:
        return await script(keys=list(keys), args=args)


def _restoring(ms_left: int) -> Unavailable:
    """503 while the store has no epoch yet or the nodes re-assert after it lost its data."""
    if ms_left <= 0:
        return Unavailable("the store lost its data and is being restored by the nodes: "
                           "no start is admitted until they have re-asserted theirs",
                           retry_after=1)
    return Unavailable("the store lost its data; the nodes re-assert their recordings "
                       "before any start is admitted",
                       retry_after=max(1, math.ceil(ms_left / 1000)))
