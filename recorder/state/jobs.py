"""The upload job stream ``{prefix}jobs:upload:{node_id}`` and its consumer group
(docs/operations.md).

`recorderd` produces (a finished recording's id), workers consume with the group
``uploaders``. The message is deliberately tiny: the recording's state holds everything a
worker needs, so a job is only "look at this recording", and running it twice is harmless.

An entry lives from XADD until the worker that finished it acknowledges and deletes it, so
XLEN is the queue depth and an entry that is still there is a job nobody finished: that is
how `recorderd` decides after a restart whether a recording's job must be queued again.
A consumer that dies keeps its entries pending; another one claims them (XAUTOCLAIM) once
they were idle for the claim time, which a live consumer prevents by renewing (XCLAIM).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from pydantic import BaseModel
from redis.exceptions import ResponseError

from recorder.state.connection import store_errors
from recorder.state.keys import KeySpace

logger = logging.getLogger(__name__)

GROUP = "uploaders"


async def ensure_group(redis: aioredis.Redis, key: str, group: str) -> None:
    """Create a consumer group reading from the stream's start, so no earlier entry is
    missed; an existing group is left as it is."""
    with store_errors():
        try:
            await redis.xgroup_create(key, group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise


async def read_group(redis: aioredis.Redis, key: str, group: str,
                     read: Callable[[], Awaitable[Any]]) -> Any:
    """`read()`, an XREADGROUP or XAUTOCLAIM of `group`; None when the store had lost the
    group (it restarted empty: docs/operations.md, "When the store fails"), which is then
    made again, so a consumer waits and resumes instead of failing."""
    try:
        with store_errors():
            return await read()
    except ResponseError as exc:
        if "NOGROUP" not in str(exc):
            raise
    logger.warning("%s: the store lost the consumer group %s; made again", key, group)
    await ensure_group(redis, key, group)
    return None


_SCAN_BATCH = 500


class UploadJob(BaseModel):
    """One job: upload the finished files of `recording_id` from `node_id`'s disk."""

    recording_id: str
    node_id: str
    queued_at: datetime
    reason: str = "finished"  # finished, requeued (restart), retry (admin), handover (stop)

    @classmethod
    def new(cls, recording_id: str, node_id: str, reason: str = "finished") -> UploadJob:
        return cls(recording_id=recording_id, node_id=node_id, queued_at=datetime.now(UTC),
                   reason=reason)

    def fields(self) -> dict[str, str]:
        return {name: str(value) if not isinstance(value, datetime) else value.isoformat()
                for name, value in self.model_dump().items()}

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> UploadJob:
        return cls.model_validate(fields)


class UploadQueue:
    """One node's upload stream, for its producer and its consumers."""

    def __init__(self, redis: aioredis.Redis, keys: KeySpace, node_id: str) -> None:
        self._redis = redis
        self.node_id = node_id
        self.key = keys.jobs_upload(node_id)

    async def ensure_group(self) -> None:
        await ensure_group(self._redis, self.key, GROUP)

    async def enqueue(self, recording_id: str, reason: str = "finished") -> str:
        job = UploadJob.new(recording_id, self.node_id, reason)
        await self.ensure_group()
        with store_errors():
            entry_id = str(await self._redis.xadd(self.key, job.fields()))  # type: ignore[arg-type]
        logger.info("recording %s: upload job %s queued (%s)", recording_id, entry_id, reason)
        return entry_id

    async def queued_recordings(self) -> set[str]:
        """Recording ids of every entry still in the stream (waiting or being worked on)."""
        ids: set[str] = set()
        start = "-"
        with store_errors():
            while True:
                entries: Any = await self._redis.xrange(self.key, min=start, count=_SCAN_BATCH)
                for _, fields in entries:
                    if "recording_id" in fields:
                        ids.add(fields["recording_id"])
                if len(entries) < _SCAN_BATCH:
                    return ids
                start = "(" + entries[-1][0]

    async def depth(self) -> tuple[int, int]:
        """(entries in the stream, entries delivered to a consumer and not acknowledged)."""
        with store_errors():
            length: int = await self._redis.xlen(self.key)
            try:
                pending: Any = await self._redis.xpending(self.key, GROUP)
            except ResponseError:  # no group yet
                return length, 0
        return length, int(pending.get("pending", 0)) if isinstance(pending, dict) else 0

    async def oldest_age(self) -> float:
        """Seconds the oldest unfinished entry has waited (0 when none); the entry id is
        the time it was queued."""
        with store_errors():
            entries: Any = await self._redis.xrange(self.key, count=1)
        if not entries:
            return 0.0
        queued_ms = int(str(entries[0][0]).split("-")[0])
        return max(0.0, datetime.now(UTC).timestamp() - queued_ms / 1000)

    # ---- consumers --------------------------------------------------------------------------

    async def read(self, consumer: str, block_ms: int) -> tuple[str, UploadJob | None] | None:
        """The next new entry for `consumer`, waiting up to `block_ms` (its job is None when
        the entry is malformed: the consumer drops it)."""
        reply: Any = await read_group(
            self._redis, self.key, GROUP,
            lambda: self._redis.xreadgroup(GROUP, consumer, {self.key: ">"}, count=1,
                                           block=block_ms))
        for _, entries in reply or []:
            for entry_id, fields in entries:
                return entry_id, self._parse(entry_id, fields)
        return None

    async def claim_stale(self, consumer: str, min_idle_ms: int
                          ) -> tuple[str, UploadJob | None] | None:
        """One entry another consumer left idle for `min_idle_ms` (it died), now ours."""
        reply: Any = await read_group(
            self._redis, self.key, GROUP,
            lambda: self._redis.xautoclaim(self.key, GROUP, consumer, min_idle_ms,
                                           start_id="0-0", count=1))
        entries = reply[1] if reply and len(reply) > 1 else []
        for entry_id, fields in entries:
            if fields:  # None when the entry was deleted meanwhile
                logger.info("claimed upload job %s idle for over %d ms", entry_id, min_idle_ms)
                return entry_id, self._parse(entry_id, fields)
        return None

    async def renew(self, consumer: str, entry_id: str) -> bool:
        """Reset the entry's idle time so nobody claims it; False when it is no longer ours."""
        with store_errors():
            owned = await self._redis.xpending_range(self.key, GROUP, min=entry_id,
                                                     max=entry_id, count=1, consumername=consumer)
            if not owned:
                return False
            await self._redis.xclaim(self.key, GROUP, consumer, 0, [entry_id], justid=True)
        return True

    async def defer(self, consumer: str, entry_id: str, claim_ms: int, delay_ms: int) -> None:
        """Let the entry be claimed again in `delay_ms` rather than after the whole claim
        time (its recording is busy elsewhere: look again soon)."""
        idle = max(0, claim_ms - delay_ms)
        with store_errors():
            await self._redis.xclaim(self.key, GROUP, consumer, 0, [entry_id], idle=idle,
                                     justid=True)

    async def done(self, entry_id: str) -> None:
        """Acknowledge and delete: the stream keeps only jobs nobody has finished."""
        with store_errors():
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.xack(self.key, GROUP, entry_id)
                pipe.xdel(self.key, entry_id)
                await pipe.execute()

    async def hand_back(self, entry_id: str, job: UploadJob) -> None:
        """Give an unfinished job back at once (a worker stopping), instead of after the
        claim time: queue a copy, then drop the original, so the job is never absent."""
        await self.enqueue(job.recording_id, "handover")
        await self.done(entry_id)

    def _parse(self, entry_id: str, fields: dict[str, str]) -> UploadJob | None:
        try:
            return UploadJob.from_fields(fields)
        except ValueError:
            logger.warning("upload job %s is malformed: %s", entry_id, fields)
            return None
