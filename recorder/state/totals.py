"""Running totals of the whole cluster, for /metrics: every process that finishes something
adds to them (HINCRBY, no read-modify-write), every node exports them.

    {prefix}totals   hash: ``uploaded_bytes:{target}`` bytes sent and verified,
                     ``upload_failures:{target}`` recordings whose upload was given up,
                     ``finished:{status}`` recordings that reached a terminal status

They are exported as counters (``recorder_uploaded_bytes_total{target}``,
``recorder_upload_failures_total{target}``, ``recorder_recordings_finished_total{status}``).
A total only grows, so a restarted exporter loses nothing; a flushed Redis starts again at
zero, which Prometheus reads as a counter reset. A store outage loses a count, never the
work it counts: callers use :meth:`ClusterTotals.add` best-effort.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from recorder.core.errors import Unavailable
from recorder.state.connection import store_errors
from recorder.state.keys import KeySpace

logger = logging.getLogger(__name__)

UPLOADED_BYTES = "uploaded_bytes"
UPLOAD_FAILURES = "upload_failures"
FINISHED = "finished"


@dataclass(frozen=True)
class Totals:
    uploaded_bytes: dict[str, int] = field(default_factory=dict)  # target -> bytes
    upload_failures: dict[str, int] = field(default_factory=dict)  # target -> recordings
    finished: dict[str, int] = field(default_factory=dict)  # status -> recordings


class ClusterTotals:
    def __init__(self, redis: aioredis.Redis, keys: KeySpace) -> None:
        self._redis = redis
        self._key = f"{keys.prefix}totals"

    async def add(self, kind: str, label: str, amount: int = 1) -> None:
        """Count `amount` more of `kind` for `label`; a store outage is logged, not raised."""
        try:
            with store_errors():
                await self._redis.hincrby(self._key, f"{kind}:{label}", amount)
        except Unavailable as exc:
            logger.warning("%s %s not counted: %s", kind, label, exc.detail)

    async def read(self) -> Totals:
        with store_errors():
            raw = await self._redis.hgetall(self._key)
        totals = Totals()
        by_kind = {UPLOADED_BYTES: totals.uploaded_bytes,
                   UPLOAD_FAILURES: totals.upload_failures, FINISHED: totals.finished}
        for key, value in raw.items():
            name = key.decode() if isinstance(key, bytes) else key
            kind, _, label = name.partition(":")
            if kind in by_kind:
                by_kind[kind][label] = int(value)
        return totals
