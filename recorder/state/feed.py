"""Live-status streams' status events: one subscription to ``{prefix}events`` per process.

Every stream used to open its own pub/sub connection, so a few hundred streams took the
client's whole connection pool and every other caller of the store got "Too many
connections". Now one connection listens, and each message is parsed once and handed, by
recording id, to the bounded in-memory queue of every stream that watches that recording.
A stream whose queue overflows (a reader that does not keep up) is ended rather than grown;
its client asks again and starts from the whole state. Each stream also holds one of its
user's watcher slots (RECORDER_MAX_WATCHERS_PER_USER, counted across the cluster; admins are
spared), claimed before it subscribes and released when it ends, however it ends.

A message that does not parse is skipped, not fatal: the channel is shared with other writers
and a stream should outlive one bad publisher.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from pydantic import ValidationError

from recorder.core.errors import Unavailable
from recorder.state.connection import store_errors
from recorder.state.events import StatusEvent
from recorder.state.keys import KeySpace
from recorder.state.slots import WATCHERS, UserSlots

logger = logging.getLogger(__name__)

QUEUE_SIZE = 64  # events a stream may be behind before it is ended


class Subscription:
    """One stream's status events of its recording, in the order Redis delivered them."""

    def __init__(self, recording_id: str) -> None:
        self.recording_id = recording_id
        self.ended: str | None = None  # why the feed stopped serving it
        self._queue: asyncio.Queue[StatusEvent | None] = asyncio.Queue(QUEUE_SIZE)

    async def next_event(self, wait_seconds: float) -> StatusEvent | None:
        """The next event, or None when `wait_seconds` pass without one or the feed ended
        this subscription (see `ended`)."""
        if self.ended is not None:
            return None
        try:
            async with asyncio.timeout(wait_seconds):
                return await self._queue.get()
        except TimeoutError:
            return None

    def deliver(self, event: StatusEvent) -> None:
        if self.ended is not None:
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.end(f"more than {QUEUE_SIZE} events behind")

    def end(self, reason: str) -> None:
        if self.ended is None:
            self.ended = reason
            with contextlib.suppress(asyncio.QueueFull):  # a full queue wakes it anyway
                self._queue.put_nowait(None)


class EventFeed:
    """The node's one listener on the events channel, shared by every live-status stream."""

    def __init__(self, redis: aioredis.Redis, keys: KeySpace, slots: UserSlots | None = None,
                 node_id: str = "", max_watchers: int = 0) -> None:
        self._redis = redis
        self._keys = keys
        self._slots = slots
        self._node_id = node_id
        self._max_watchers = max_watchers
        self._watching: dict[str, set[Subscription]] = {}
        self._pubsub: aioredis.client.PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def watchers(self) -> int:
        return sum(len(subs) for subs in self._watching.values())

    @asynccontextmanager
    async def watch(self, user_id: str | None, recording_id: str) -> AsyncIterator[Subscription]:
        """Subscribe to one recording's events, holding one of `user_id`'s watcher slots
        (None: an admin, who holds none). Once this yields, the channel is subscribed: a
        change written after it is delivered (read the state only now)."""
        slot = uuid.uuid4().hex
        if user_id is not None and self._slots is not None:
            await self._slots.claim(WATCHERS, user_id, slot, self._node_id, self._max_watchers)
        subscription = Subscription(recording_id)
        try:
            await self._listening()
            self._watching.setdefault(recording_id, set()).add(subscription)
            yield subscription
        finally:
            subs = self._watching.get(recording_id)
            if subs is not None:
                subs.discard(subscription)
                if not subs:
                    del self._watching[recording_id]
            if user_id is not None and self._slots is not None:
                await self._release(user_id, slot)

    async def close(self) -> None:
        """End every stream and stop listening (the node shuts down)."""
        self._closed = True
        self._end_all("the node is shutting down")
        async with self._lock:
            await self._stop_listening()

    async def _release(self, user_id: str, slot: str) -> None:
        assert self._slots is not None
        try:
            await self._slots.release(WATCHERS, user_id, slot)
        except Unavailable as exc:
            logger.warning("watcher slot of %s not released: %s", user_id, exc.detail)

    async def _listening(self) -> None:
        """Start the shared listener if it is not running, and wait until it is subscribed."""
        async with self._lock:
            if self._closed:
                raise Unavailable("the node is shutting down")
            if self._reader is None or self._reader.done():
                await self._stop_listening()
                self._pubsub = self._redis.pubsub()
                self._ready = asyncio.get_running_loop().create_future()
                with store_errors():
                    await self._pubsub.subscribe(self._keys.events())
                self._reader = asyncio.create_task(self._read(self._pubsub, self._ready))
            ready = self._ready
        assert ready is not None
        await asyncio.shield(ready)

    async def _stop_listening(self) -> None:
        reader, pubsub = self._reader, self._pubsub
        self._reader = self._pubsub = None
        if reader is not None:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def _read(self, pubsub: aioredis.client.PubSub, ready: asyncio.Future[None]) -> None:
        """Dispatch every message until the connection fails; then end every stream (their
        clients ask again, and the next stream starts a new listener)."""
        try:
            with store_errors():
                async for message in pubsub.listen():
                    if message.get("type") == "subscribe" and not ready.done():
                        ready.set_result(None)
                        logger.info("events: listening on %s", self._keys.events())
                    elif message.get("type") == "message":
                        self._dispatch(message)
        except Unavailable as exc:
            logger.warning("events: listener lost: %s", exc.detail)
            if not ready.done():
                ready.set_exception(Unavailable(exc.detail))
            self._end_all(exc.detail)
            return
        if not ready.done():  # listen() ends only when nothing is subscribed any more
            ready.set_exception(Unavailable("events: the subscription ended"))
        self._end_all("the subscription ended")

    def _dispatch(self, message: dict[str, Any]) -> None:
        try:
            event = StatusEvent.model_validate_json(message["data"])
        except ValidationError as exc:
            logger.warning("events: skipped a message that is not a status event: %s", exc)
            return
        for subscription in list(self._watching.get(event.recording_id, ())):
            subscription.deliver(event)
            if subscription.ended is not None:
                logger.info("recording %s: a live-status stream ended: %s",
                            event.recording_id, subscription.ended)

    def _end_all(self, reason: str) -> None:
        for subs in self._watching.values():
            for subscription in subs:
                subscription.end(reason)
