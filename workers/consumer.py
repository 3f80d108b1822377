"""The consumer loop of one worker on its node's upload stream.

One job at a time per consumer (run more workers for more at once). Before reading new
entries it claims entries other consumers left idle for RECORDER_JOB_CLAIM_SECONDS (they
died); while a job runs it renews both its claim on the entry and the recording's lock every
third of that time, so a long upload is never taken over while it makes progress, and a
worker that lost its lock (it stalled longer than the claim time) stops the job.

An entry is acknowledged (and deleted) only when its job has nothing left to do: done,
given up (the recording is `failed`), or the recording no longer waits for an upload. A job
that hit a Redis outage or a bug stays pending and is claimed again later; a duplicate job
(its recording is being uploaded by another worker, which holds the lock) is made claimable
again a few seconds later, and acknowledged once the recording no longer waits. A stopping
worker hands its running job back to the stream at once, instead of after the claim time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid

import redis.asyncio as aioredis

from recorder.core.errors import Unavailable
from recorder.state.jobs import UploadJob, UploadQueue
from recorder.state.keys import KeySpace
from workers.polling import entries, wait_for_group
from workers.upload import Uploader
from workers.upload_record import RecordingLock

logger = logging.getLogger(__name__)

READ_BLOCK_MS = 2000  # how long one XREADGROUP waits (also how soon a stop is noticed)
BUSY_RETRY_MS = 3000  # a job whose recording another worker uploads is looked at again then


def consumer_name() -> str:
    """Unique per process: host, pid and a random part (pids are reused after restarts)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class UploadConsumer:
    def __init__(self, queue: UploadQueue, uploader: Uploader, redis: aioredis.Redis,
                 keys: KeySpace, *, name: str, claim_seconds: float) -> None:
        self._queue = queue
        self._uploader = uploader
        self._redis = redis
        self._keys = keys
        self.name = name
        self._claim_seconds = claim_seconds
        self._claim_ms = max(1, round(claim_seconds * 1000))
        self.jobs_done = 0

    async def run(self, stop: asyncio.Event) -> None:
        logger.info("upload consumer %s on %s (claim after %g s)", self.name, self._queue.key,
                    self._claim_seconds)
        await wait_for_group(self._queue.ensure_group, stop, "upload consumer")
        async for entry_id, job in entries(self._next, stop, READ_BLOCK_MS, "upload consumer"):
            if job is None:
                await self._drop(entry_id)
            else:
                await self._run_job(entry_id, job, stop)

    async def _next(self) -> tuple[str, UploadJob | None] | None:
        got = await self._queue.claim_stale(self.name, self._claim_ms)
        return got if got is not None else await self._queue.read(self.name, READ_BLOCK_MS)

    async def _drop(self, entry_id: str) -> None:
        with contextlib.suppress(Unavailable):
            await self._queue.done(entry_id)

    async def _run_job(self, entry_id: str, job: UploadJob, stop: asyncio.Event) -> None:
        rid = job.recording_id
        lock = RecordingLock(self._redis, self._keys, rid, self.name, self._claim_seconds)
        try:
            if not await self._uploader.needs_upload(rid):
                logger.info("recording %s: job %s has nothing to do; acknowledged", rid,
                            entry_id)
                await self._queue.done(entry_id)
                return
            if not await lock.acquire():
                logger.info("recording %s: another worker (%s) is uploading it; job %s looked "
                            "at again in %d ms", rid, await lock.holder(), entry_id,
                            BUSY_RETRY_MS)
                await self._queue.defer(self.name, entry_id, self._claim_ms, BUSY_RETRY_MS)
                return
        except Unavailable as exc:
            logger.warning("recording %s: job %s not started: %s", rid, entry_id, exc.detail)
            return
        work = asyncio.create_task(self._uploader.run(job), name=f"upload {rid}")
        lost: list[str] = []
        keeper = asyncio.create_task(self._keep(entry_id, lock, work, lost))
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({work, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            keeper.cancel()
            stopping.cancel()
            if not work.done():
                work.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await work
        if lost:  # another worker may own the entry now: leave it and the lock alone
            return
        await self._settle(entry_id, job, lock, work)

    async def _settle(self, entry_id: str, job: UploadJob, lock: RecordingLock,
                      work: asyncio.Task[None]) -> None:
        rid = job.recording_id
        try:
            if work.cancelled():
                logger.info("recording %s: upload interrupted; job handed back", rid)
                await self._queue.hand_back(entry_id, job)
            elif (exc := work.exception()) is not None:
                if isinstance(exc, Unavailable):
                    logger.warning("recording %s: upload paused, store unreachable: %s; job %s "
                                   "stays pending", rid, exc.detail, entry_id)
                else:
                    logger.error("recording %s: upload job %s failed unexpectedly; it stays "
                                 "pending", rid, entry_id, exc_info=exc)
            else:
                await self._queue.done(entry_id)
                self.jobs_done += 1
            await lock.release()
        except Unavailable as exc:
            logger.warning("recording %s: job %s not settled: %s", rid, entry_id, exc.detail)

    async def _keep(self, entry_id: str, lock: RecordingLock, work: asyncio.Task[None],
                    lost: list[str]) -> None:
        """Renew the claim and the lock while the job runs; stop the job if they are lost."""
        period = self._claim_seconds / 3
        while True:
            await asyncio.sleep(period)
            try:
                held = await lock.renew()
                owned = await self._queue.renew(self.name, entry_id)
            except Unavailable as exc:
                logger.warning("recording %s: claim not renewed: %s", lock.recording_id,
                               exc.detail)
                continue
            if not held or not owned:
                lost.append("lock" if not held else "claim")
                logger.error("recording %s: lost the %s of job %s; stopping it",
                             lock.recording_id, lost[0], entry_id)
                work.cancel()
                return

