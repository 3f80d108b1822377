"""The read loop both stream consumers share: stale entries first, then new ones.

A consumer group's entries come from three places in order: entries another consumer left
idle too long (it died), then new ones (XREADGROUP with a block), and nothing. Redis may be
down for a while: the loop says so and tries again, it never ends on its own. The embedded
store does not block on XREADGROUP, so an empty read waits out the block here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from recorder.core.errors import Unavailable

logger = logging.getLogger(__name__)

STORE_RETRY_SECONDS = 2.0  # pause after Redis failed, before trying again

T = TypeVar("T")


async def wait_for_group(ensure: Callable[[], Awaitable[None]], stop: asyncio.Event,
                         what: str) -> None:
    """Create the consumer group, retrying while the store is unreachable (or until stop)."""
    while not stop.is_set():
        try:
            await ensure()
            return
        except Unavailable as exc:
            logger.warning("%s: %s", what, exc.detail)
            await sleep_or_stop(stop, STORE_RETRY_SECONDS)


async def entries(fetch: Callable[[], Awaitable[T | None]], stop: asyncio.Event,
                  block_ms: int, what: str) -> AsyncIterator[T]:
    """Yield what `fetch` finds (a claimed or new entry) until stop is set."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        started = loop.time()
        try:
            got = await fetch()
        except Unavailable as exc:
            logger.warning("%s: %s", what, exc.detail)
            await sleep_or_stop(stop, STORE_RETRY_SECONDS)
            continue
        if got is None:
            await sleep_or_stop(stop, block_ms / 1000 - (loop.time() - started))
            continue
        yield got


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    if seconds <= 0:
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
