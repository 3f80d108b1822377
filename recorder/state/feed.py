"""Subscriptions to the ``{prefix}events`` channel, for clients that watch a recording live.

One pub/sub connection per subscription: watchers are few (an operator's `recorderctl watch`,
the page) and each lives as long as its HTTP stream, so sharing one connection would only add
fan-out bookkeeping. A message that does not parse is skipped, not fatal: the channel is
shared with other writers and a watcher should outlive one bad publisher.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from pydantic import ValidationError

from recorder.state.connection import store_errors
from recorder.state.events import StatusEvent
from recorder.state.keys import KeySpace

logger = logging.getLogger(__name__)


class Subscription:
    """Status events in the order Redis delivered them."""

    def __init__(self, pubsub: aioredis.client.PubSub) -> None:
        self._pubsub = pubsub

    async def next_event(self, wait_seconds: float) -> StatusEvent | None:
        """The next event, or None when `wait_seconds` pass without one."""
        with store_errors():
            message = await self._pubsub.get_message(
                ignore_subscribe_messages=True, timeout=wait_seconds)
        if message is None or message.get("type") != "message":
            return None
        try:
            return StatusEvent.model_validate_json(message["data"])
        except ValidationError as exc:
            logger.warning("events: skipped a message that is not a status event: %s", exc)
            return None


class EventFeed:
    """Opens subscriptions to the events channel of one key space."""

    def __init__(self, redis: aioredis.Redis, keys: KeySpace) -> None:
        self._redis = redis
        self._keys = keys

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Subscription]:
        pubsub = self._redis.pubsub()
        try:
            with store_errors():
                await pubsub.subscribe(self._keys.events())
            yield Subscription(pubsub)
        finally:
            await pubsub.aclose()
