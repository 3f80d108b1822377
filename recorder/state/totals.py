"""Running totals of the whole cluster, for /metrics: every process that finishes something
adds to them (HINCRBY, no read-modify-write), every node exports them.

    {prefix}totals   hash: ``uploaded_bytes:{target}`` bytes sent and verified,
                     ``upload_failures:{target}`` recordings whose upload was given up,
                     ``finished:{status}`` recordings that reached a terminal status

Uploads are also counted per UTC day, in ``{prefix}totals:{YYYY-MM-DD}`` (same fields,
kept DAY_KEEP_DAYS), for the admin storage route's bytes uploaded per target and day.

They are exported as counters (``recorder_uploaded_bytes_total{target}``,
``recorder_upload_failures_total{target}``, ``recorder_recordings_finished_total{status}``).
A total only grows, so a restarted exporter loses nothing; a flushed Redis starts again at
zero, which Prometheus reads as a counter reset. A store outage loses a count, never the
work it counts: callers use :meth:`ClusterTotals.add` best-effort.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import redis.asyncio as aioredis

from recorder.core.errors import Unavailable
from recorder.state.connection import store_errors
from recorder.state.keys import KeySpace

logger = logging.getLogger(__name__)

UPLOADED_BYTES = "uploaded_bytes"
UPLOAD_FAILURES = "upload_failures"
FINISHED = "finished"
DAILY = frozenset({UPLOADED_BYTES, UPLOAD_FAILURES})  # also counted per UTC day
DAY_KEEP_DAYS = 32
MAX_DAYS = 31  # the most days one read returns


@dataclass(frozen=True)
class Totals:
    uploaded_bytes: dict[str, int] = field(default_factory=dict)  # target -> bytes
    upload_failures: dict[str, int] = field(default_factory=dict)  # target -> recordings
    finished: dict[str, int] = field(default_factory=dict)  # status -> recordings


class ClusterTotals:
    def __init__(self, redis: aioredis.Redis, keys: KeySpace) -> None:
        self._redis = redis
        self._keys = keys
        self._key = f"{keys.prefix}totals"

    async def add(self, kind: str, label: str, amount: int = 1,
                  now: datetime | None = None) -> None:
        """Count `amount` more of `kind` for `label` (uploads also in today's key); a store
        outage is logged, not raised."""
        name = f"{kind}:{label}"
        try:
            with store_errors():
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.hincrby(self._key, name, amount)
                    if kind in DAILY:
                        day = self._keys.totals_day(_day(now or datetime.now(UTC)))
                        pipe.hincrby(day, name, amount)
                        pipe.expire(day, DAY_KEEP_DAYS * 86400)
                    await pipe.execute()
        except Unavailable as exc:
            logger.warning("%s %s not counted: %s", kind, label, exc.detail)

    async def read(self) -> Totals:
        with store_errors():
            raw = await self._redis.hgetall(self._key)
        return _parse(raw)

    async def read_days(self, days: int, today: date | None = None) -> list[tuple[str, Totals]]:
        """The last `days` UTC days (1 to MAX_DAYS), newest first, each with its uploads."""
        days = max(1, min(days, MAX_DAYS))
        first = today or datetime.now(UTC).date()
        names = [(first - timedelta(days=n)).isoformat() for n in range(days)]
        with store_errors():
            async with self._redis.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.hgetall(self._keys.totals_day(name))
                raws = await pipe.execute()
        return [(name, _parse(raw)) for name, raw in zip(names, raws, strict=True)]


def _day(at: datetime) -> str:
    return at.astimezone(UTC).date().isoformat()


def _parse(raw: dict[str | bytes, str | bytes]) -> Totals:
    totals = Totals()
    by_kind = {UPLOADED_BYTES: totals.uploaded_bytes,
               UPLOAD_FAILURES: totals.upload_failures, FINISHED: totals.finished}
    for key, value in raw.items():
        name = key.decode() if isinstance(key, bytes) else key
        kind, _, label = name.partition(":")
        if kind in by_kind:
            by_kind[kind][label] = int(value)
    return totals
