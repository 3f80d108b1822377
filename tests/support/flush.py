"""Emptying the test Redis between tests while recorderd nodes keep running on it.

FLUSHDB under a running node is what a Redis restarted empty looks like to it: the node
writes back what it runs and refuses starts until the nodes have (docs/operations.md, "When
the store fails"). Tests that only want a clean slate keep the epoch keys, so the nodes
see the same store and admit at once.
"""

from __future__ import annotations

import redis.asyncio as aioredis

EPOCH_SUFFIX = "epoch"


async def flush_keeping_epochs(client: aioredis.Redis) -> None:
    doomed = [key async for key in client.scan_iter(count=1000)
              if not str(key).endswith(EPOCH_SUFFIX)]
    for start in range(0, len(doomed), 1000):
        await client.unlink(*doomed[start:start + 1000])
