"""Running totals of uploads, shared by every worker of the cluster, for /metrics.

    {prefix}uploads:stats   hash: ``bytes:{target}`` bytes sent and verified,
                            ``failures:{target}`` recordings whose upload was given up

Workers add to it (HINCRBY: no read-modify-write); every node exports the totals as the
counters ``recorder_uploaded_bytes_total{target}`` and ``recorder_upload_failures_total{target}``.
A total only grows, so a restarted exporter loses nothing; a flushed Redis starts again at
zero, which Prometheus reads as a counter reset.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import redis.asyncio as aioredis

from recorder.state.connection import store_errors
from recorder.state.keys import KeySpace


@dataclass(frozen=True)
class UploadTotals:
    bytes_sent: dict[str, int] = field(default_factory=dict)  # target -> bytes
    failures: dict[str, int] = field(default_factory=dict)  # target -> recordings


class UploadStats:
    def __init__(self, redis: aioredis.Redis, keys: KeySpace) -> None:
        self._redis = redis
        self._key = f"{keys.prefix}uploads:stats"

    async def sent(self, target: str, size: int) -> None:
        with store_errors():
            await self._redis.hincrby(self._key, f"bytes:{target}", size)

    async def failed(self, target: str) -> None:
        with store_errors():
            await self._redis.hincrby(self._key, f"failures:{target}", 1)

    async def totals(self) -> UploadTotals:
        with store_errors():
            raw = await self._redis.hgetall(self._key)
        totals = UploadTotals()
        for key, value in raw.items():
            name = key.decode() if isinstance(key, bytes) else key
            kind, _, target = name.partition(":")
            if kind == "bytes":
                totals.bytes_sent[target] = int(value)
            elif kind == "failures":
                totals.failures[target] = int(value)
        return totals
