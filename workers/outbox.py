"""The webhook outbox in Redis: what is due, what waits for a retry, what was given up.

    {prefix}jobs:webhook          stream, group `webhooks`: events due now (field `job`)
    {prefix}webhooks:delayed      sorted set: jobs waiting for their next attempt, scored by
                                  the unix time it is due
    {prefix}webhooks:dead         list: jobs whose attempts ran out (or whose endpoint is
                                  disabled), newest last
    {prefix}webhooks:disabled     hash: endpoint URL -> JSON {at, status} after a 410
    {prefix}webhooks:deliveries   hash: outcome -> count (all workers, for /metrics)

The state write queues a job straight into the stream (same Lua step). A failed attempt
moves its job into the delayed set and acknowledges the stream entry in one MULTI, so a
worker killed between attempts loses nothing: any worker promotes the job back into the
stream once it is due (one Lua step), keeping its webhook-id and attempt count. A worker
killed during an attempt leaves the entry pending; another claims it after the claim time.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from recorder.core.outbox_status import (
    DeadLetter,
    Endpoint,
    QueueInfo,
    ReplayResult,
    WebhookStatus,
)
from recorder.core.webhooks import WebhookJob
from recorder.state.connection import store_errors
from recorder.state.jobs import ensure_group, read_group
from recorder.state.keys import KeySpace

logger = logging.getLogger(__name__)

GROUP = "webhooks"
FIELD = "job"
LIST_LIMIT = 100  # dead letters shown by the admin route
_PROMOTE_BATCH = 100

# KEYS[1] delayed set, KEYS[2] stream; ARGV[1] now, ARGV[2] batch. Returns jobs moved.
_PROMOTE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, job in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'job', job)
  redis.call('ZREM', KEYS[1], job)
end
return #due
"""

# KEYS[1] dead list, KEYS[2] stream, KEYS[3] disabled hash. ARGV: one reset job per dead
# letter, in order; the list is emptied only of the entries read (LTRIM), so a letter added
# meanwhile stays. Returns how many were queued again.
_REPLAY = """
for i = 1, #ARGV do
  redis.call('XADD', KEYS[2], '*', 'job', ARGV[i])
end
redis.call('LTRIM', KEYS[1], #ARGV, -1)
redis.call('DEL', KEYS[3])
return #ARGV
"""


class WebhookOutbox:
    def __init__(self, redis: aioredis.Redis, keys: KeySpace) -> None:
        self._redis = redis
        self.key = keys.jobs_webhook()
        self.delayed_key = f"{keys.prefix}webhooks:delayed"
        self.dead_key = keys.webhooks_dead()
        self.disabled_key = f"{keys.prefix}webhooks:disabled"
        self.stats_key = f"{keys.prefix}webhooks:deliveries"
        self._promote = redis.register_script(_PROMOTE)
        self._replay = redis.register_script(_REPLAY)

    async def ensure_group(self) -> None:
        await ensure_group(self._redis, self.key, GROUP)

    # ---- consumers --------------------------------------------------------------------------

    async def promote_due(self, now: float | None = None) -> int:
        with store_errors():
            moved: Any = await self._promote(keys=[self.delayed_key, self.key],
                                             args=[now if now is not None else time.time(),
                                                   _PROMOTE_BATCH])
        return int(moved)

    async def next_due(self) -> float | None:
        with store_errors():
            first: Any = await self._redis.zrange(self.delayed_key, 0, 0, withscores=True)
        return float(first[0][1]) if first else None

    async def read(self, consumer: str, block_ms: int) -> tuple[str, WebhookJob | None] | None:
        reply: Any = await read_group(
            self._redis, self.key, GROUP,
            lambda: self._redis.xreadgroup(GROUP, consumer, {self.key: ">"}, count=1,
                                           block=block_ms))
        for _, entries in reply or []:
            for entry_id, fields in entries:
                return entry_id, _parse(entry_id, fields)
        return None

    async def claim_stale(self, consumer: str, min_idle_ms: int
                          ) -> tuple[str, WebhookJob | None] | None:
        reply: Any = await read_group(
            self._redis, self.key, GROUP,
            lambda: self._redis.xautoclaim(self.key, GROUP, consumer, min_idle_ms,
                                           start_id="0-0", count=1))
        entries = reply[1] if reply and len(reply) > 1 else []
        for entry_id, fields in entries:
            if fields:
                logger.info("claimed webhook entry %s idle for over %d ms", entry_id,
                            min_idle_ms)
                return entry_id, _parse(entry_id, fields)
        return None

    async def delivered(self, entry_id: str, outcome: str = "delivered") -> None:
        with store_errors():
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.xack(self.key, GROUP, entry_id)
                pipe.xdel(self.key, entry_id)
                pipe.hincrby(self.stats_key, outcome, 1)
                await pipe.execute()

    async def retry_later(self, entry_id: str, job: WebhookJob, due: float) -> None:
        with store_errors():
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zadd(self.delayed_key, {job.to_json(): due})
                pipe.xack(self.key, GROUP, entry_id)
                pipe.xdel(self.key, entry_id)
                pipe.hincrby(self.stats_key, "retried", 1)
                await pipe.execute()

    async def bury(self, entry_id: str, job: WebhookJob, outcome: str = "dead") -> None:
        with store_errors():
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.rpush(self.dead_key, job.to_json())
                pipe.xack(self.key, GROUP, entry_id)
                pipe.xdel(self.key, entry_id)
                pipe.hincrby(self.stats_key, outcome, 1)
                await pipe.execute()

    async def disable(self, url: str, status: int) -> None:
        with store_errors():
            await self._redis.hset(self.disabled_key, url,
                                   json.dumps({"at": time.time(), "status": status}))

    async def is_disabled(self, url: str) -> bool:
        with store_errors():
            return bool(await self._redis.hexists(self.disabled_key, url))

    # ---- administration ---------------------------------------------------------------------

    async def status(self, configured: list[str]) -> WebhookStatus:
        now = time.time()
        with store_errors():
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.xlen(self.key)
                pipe.zcard(self.delayed_key)
                pipe.xrange(self.key, count=1)
                pipe.zrange(self.delayed_key, 0, 999)
                pipe.llen(self.dead_key)
                pipe.lrange(self.dead_key, -LIST_LIMIT, -1)
                pipe.hgetall(self.disabled_key)
                pipe.hgetall(self.stats_key)
                ready, delayed, first, waiting, dead, letters, disabled, stats = (
                    await pipe.execute())
            try:
                pending: Any = await self._redis.xpending(self.key, GROUP)
                in_progress = int(pending.get("pending", 0)) if isinstance(pending, dict) else 0
            except ResponseError:
                in_progress = 0
        created = [WebhookJob.model_validate_json(m).created for m in waiting]
        for _, fields in first:
            job = _parse("first", fields)
            if job is not None:
                created.append(job.created)
        endpoints = {url: Endpoint(url=url, disabled=False) for url in configured}
        for url, raw in disabled.items():
            info = json.loads(raw)
            endpoints[url] = Endpoint(url=url, disabled=True, disabled_at=info.get("at"),
                                      status=info.get("status"))
        return WebhookStatus(
            endpoints=sorted(endpoints.values(), key=lambda e: e.url),
            queue=QueueInfo(ready=ready, delayed=delayed, in_progress=in_progress,
                            depth=ready + delayed,
                            oldest_age_seconds=round(now - min(created), 3) if created else None),
            dead=dead,
            dead_letters=[_letter(raw) for raw in letters],
            deliveries={k: int(v) for k, v in stats.items()},
        )

    async def replay(self) -> ReplayResult:
        """Every dead letter back to the stream with its attempts reset (same webhook-id),
        and every disabled endpoint enabled again."""
        with store_errors():
            letters: Any = await self._redis.lrange(self.dead_key, 0, -1)
            disabled: Any = await self._redis.hkeys(self.disabled_key)
            jobs = []
            for raw in letters:
                job = WebhookJob.model_validate_json(raw)
                jobs.append(job.model_copy(update={"attempts": 0}).to_json())
            count: Any = await self._replay(
                keys=[self.dead_key, self.key, self.disabled_key], args=jobs)
        logger.info("webhooks: %d dead letter(s) replayed, endpoint(s) enabled: %s", count,
                    sorted(disabled))
        return ReplayResult(replayed=int(count), endpoints_enabled=sorted(disabled))


def _letter(raw: str) -> DeadLetter:
    job = WebhookJob.model_validate_json(raw)
    return DeadLetter(id=job.id, url=job.url, event=job.event, recording_id=job.recording_id,
                      attempts=job.attempts, last_status=job.last_status,
                      last_error=job.last_error, created_at=job.created)


def _parse(entry_id: str, fields: dict[str, str]) -> WebhookJob | None:
    try:
        return WebhookJob.model_validate_json(fields.get(FIELD, ""))
    except ValueError:
        logger.warning("webhook entry %s is malformed: %s", entry_id, fields)
        return None
