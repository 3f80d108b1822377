"""The one place a Redis client is made, and where its failures become ours.

``embedded`` is an in-process fakeredis (with Lua, so the store's scripts run unchanged). Every
``connect("embedded")`` in a process shares one fake server, so the API, the in-process upload
worker and the webhook sender see the same data, as they would with a real Redis.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from typing import Any

import fakeredis
import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

from recorder.core.errors import Unavailable
from recorder.core.sentinel import SentinelStore

logger = logging.getLogger(__name__)

EMBEDDED = "embedded"
# fakeredis shares one server between clients created with the same host name.
_EMBEDDED_HOST = "recorder-embedded"
_CONNECT_TIMEOUT_SECONDS = 5.0
_HEALTH_CHECK_SECONDS = 30
_MAX_CONNECTIONS = 100  # per process; concurrent commands beyond it wait for one
_POOL_WAIT_SECONDS = 5.0  # then the store counts as unreachable (503)


async def connect(redis_url: str, sentinel: SentinelStore | None = None) -> aioredis.Redis:
    """A client that decodes responses to `str`; connects lazily (a down Redis is not fatal).

    With `sentinel` the primary is asked of the Sentinels, again after every failed
    connection, so a failover is a short outage (docs/operations.md, "Redis with Sentinel").
    """
    if sentinel is not None:
        return _through_sentinels(sentinel)
    if redis_url == EMBEDDED:
        logger.info("state store: embedded (in-process, nothing survives a restart)")
        client: aioredis.Redis = fakeredis.FakeAsyncRedis(
            host=_EMBEDDED_HOST, decode_responses=True
        )
        return client
    # A burst of requests waits a moment for a free connection instead of failing at once
    # with "Too many connections" (docs/security.md, "Live-status streams").
    pool = aioredis.BlockingConnectionPool.from_url(
        redis_url,
        max_connections=_MAX_CONNECTIONS,
        timeout=_POOL_WAIT_SECONDS,
        decode_responses=True,
        socket_connect_timeout=_CONNECT_TIMEOUT_SECONDS,
        health_check_interval=_HEALTH_CHECK_SECONDS,
    )
    return aioredis.Redis.from_pool(pool)


def _through_sentinels(where: SentinelStore) -> aioredis.Redis:
    logger.info("state store: primary %r through Sentinels %s", where.master,
                ", ".join(f"{host}:{port}" for host, port in where.sentinels))
    asked: dict[str, Any] = {"socket_connect_timeout": _CONNECT_TIMEOUT_SECONDS,
                             "socket_timeout": _CONNECT_TIMEOUT_SECONDS,
                             "decode_responses": True}
    if where.sentinel_password:
        asked["password"] = where.sentinel_password
    if where.tls:
        asked["ssl"] = True
    sentinels = Sentinel(where.sentinels, sentinel_kwargs=asked)
    primary: dict[str, Any] = {"db": where.db, "decode_responses": True,
                               "socket_connect_timeout": _CONNECT_TIMEOUT_SECONDS,
                               "health_check_interval": _HEALTH_CHECK_SECONDS,
                               "max_connections": _MAX_CONNECTIONS}
    if where.password:
        primary["password"] = where.password
    if where.tls:
        primary["ssl"] = True
    client: aioredis.Redis = sentinels.master_for(where.master, **primary)
    return client


@contextmanager
def store_errors() -> Iterator[None]:
    """Turn an unreachable Redis into `Unavailable` (503) so callers handle one error type
    (a primary that became a replica in a failover, READONLY, is unreachable too)."""
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError, ReadOnlyError) as exc:
        _raise_if_cancelling(exc)
        raise Unavailable(f"store unreachable: {exc}") from exc
    _raise_if_cancelling(None)


def _raise_if_cancelling(cause: BaseException | None) -> None:
    """End a task whose cancellation the client lost.

    On Python 3.11 a cancellation that meets redis-py's own socket timeout can come out as a
    timeout, which redis-py retries: the command then succeeds (or fails as "unreachable")
    and the cancelled task would carry on forever. A task that is being cancelled ends here.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from cause


async def awaited(value: Awaitable[Any] | Any) -> Any:
    """redis-py types some commands as `Awaitable[T] | T`; the asyncio client awaits."""
    return await value
