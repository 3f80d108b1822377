"""Webhook delivery: the consumers of the `{prefix}jobs:webhook` outbox (group `webhooks`).

Each attempt POSTs the stored body with its own ``webhook-timestamp`` and signature (the
``webhook-id`` never changes). A 2xx settles the job. A 410 disables the endpoint (until an
admin replays) and sends the job, and every later one for that URL, to the dead letters.
Anything else (another status, a timeout, a refused connection) schedules the next attempt
RECORDER_WEBHOOK_RETRY_SCHEDULE's next delay after this one, later if the receiver's
Retry-After asks; after the last attempt the job goes to the dead letters. Delivery is at
least once: a job is settled only after its outcome is known.

A start's own ``webhook_url`` is checked again before every attempt: it must still match
RECORDER_WEBHOOK_ALLOWED_URLS (else the job is a dead letter, never sent), and it is
requested through :class:`recorder.outbound.Outbound`, whose resolver refuses a name that
now resolves to an internal address. RECORDER_WEBHOOK_URL, the operator's, is trusted.
Redirects are never followed; a failed attempt records its status code or a fixed reason,
never what the receiver sent.

Several consumers run per process (one slow endpoint does not hold up the rest); events of
one recording may therefore arrive out of order when some were retried: receivers order
them by the body's ``timestamp``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver

from recorder.core.errors import Unavailable
from recorder.core.urls import UrlRefused
from recorder.core.webhooks import RetrySchedule, WebhookJob, WebhookRouting, headers
from recorder.outbound import Outbound, failure_reason
from workers.errors import retry_after_seconds
from workers.outbox import WebhookOutbox
from workers.polling import entries, wait_for_group

logger = logging.getLogger(__name__)

READ_BLOCK_MS = 1000  # also how often delayed jobs are promoted
CONSUMERS = 4
USER_AGENT = "recorder-webhooks/1"


class WebhookDeliverer:
    def __init__(self, outbox: WebhookOutbox, key: bytes, schedule: RetrySchedule, *,
                 routing: WebhookRouting, name: str, timeout_seconds: float,
                 consumers: int = CONSUMERS, resolver: AbstractResolver | None = None) -> None:
        self._outbox = outbox
        self._routing = routing
        self._resolver = resolver  # None: the system's (tests give one that maps names)
        self._key = key
        self._schedule = schedule
        self.name = name
        self._timeout = timeout_seconds
        self._consumers = consumers
        # A consumer that died mid-attempt held its entry at most one timeout: after two
        # (and some slack) it is surely gone.
        self._claim_ms = round((2 * timeout_seconds + 5) * 1000)
        self.delivered = 0

    async def run(self, stop: asyncio.Event) -> None:
        logger.info("webhook consumer %s: %d consumer(s), schedule %s", self.name,
                    self._consumers, list(self._schedule.delays))
        await wait_for_group(self._outbox.ensure_group, stop, "webhook consumer")
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        options: dict[str, Any] = {"timeout": timeout, "headers": {"User-Agent": USER_AGENT}}
        outbound = Outbound(self._routing.allowed, self._resolver, **options)
        try:
            async with (aiohttp.ClientSession(**options) as http,
                        asyncio.TaskGroup() as group):
                for n in range(self._consumers):
                    group.create_task(self._consume(http, outbound, f"{self.name}-{n}", stop))
        finally:
            await outbound.close()

    async def _consume(self, http: aiohttp.ClientSession, outbound: Outbound, consumer: str,
                       stop: asyncio.Event) -> None:
        async def next_entry() -> tuple[str, WebhookJob | None] | None:
            await self._outbox.promote_due()
            got = await self._outbox.claim_stale(consumer, self._claim_ms)
            return got if got is not None else await self._outbox.read(consumer, READ_BLOCK_MS)

        async for entry_id, job in entries(next_entry, stop, READ_BLOCK_MS, "webhook consumer"):
            try:
                if job is None:
                    await self._outbox.delivered(entry_id, "malformed")
                else:
                    await self._attempt(http, outbound, entry_id, job)
            except Unavailable as exc:  # the entry stays pending and is claimed again
                logger.warning("webhook entry %s not settled: %s", entry_id, exc.detail)

    async def _attempt(self, http: aiohttp.ClientSession, outbound: Outbound,
                       entry_id: str, job: WebhookJob) -> None:
        trusted = self._routing.trusted(job.url)
        if await self._refused(entry_id, job, trusted):
            return
        attempt = job.attempts + 1
        status, retry_after, error = await self._post(http if trusted else None, outbound, job)
        job = job.model_copy(update={"attempts": attempt, "last_status": status,
                                     "last_error": error or (f"HTTP {status}"
                                                             if status and status >= 300
                                                             else None)})
        await self._settle(entry_id, job, retry_after)

    async def _refused(self, entry_id: str, job: WebhookJob, trusted: bool) -> bool:
        """Bury a job whose URL is no longer allowed or whose endpoint is disabled."""
        rid = job.recording_id
        if not trusted and not self._routing.allowed.allows(job.url):
            job = job.model_copy(update={"last_error": "URL not allowed by "
                                                       "RECORDER_WEBHOOK_ALLOWED_URLS"})
            await self._outbox.bury(entry_id, job, "refused")
            logger.warning("recording %s: webhook %s %s not sent: %s", rid, job.event, job.id,
                           job.last_error)
            return True
        if await self._outbox.is_disabled(job.url):
            job = job.model_copy(update={"last_error": "endpoint disabled (410)"})
            await self._outbox.bury(entry_id, job, "disabled")
            logger.warning("recording %s: webhook %s %s not sent: endpoint %s is disabled",
                           rid, job.event, job.id, job.url)
            return True
        return False

    async def _post(self, trusted: aiohttp.ClientSession | None, outbound: Outbound,
                    job: WebhookJob) -> tuple[int | None, float | None, str | None]:
        """One signed POST: (status, Retry-After seconds, why it failed before a status).
        A trusted URL goes through `trusted` as it is, any other through the checked
        session."""
        sent_at = int(time.time())
        try:
            target = job.url if trusted else outbound.check(job.url).url
            client = trusted or outbound.session
            async with client.post(target, data=job.body.encode(),
                                   headers=headers(self._key, job.id, sent_at, job.body),
                                   allow_redirects=False) as response:
                await response.read()
                return (response.status,
                        retry_after_seconds(response.headers.get("Retry-After")), None)
        except TimeoutError:
            return None, None, f"timed out after {self._timeout:g} s"
        except (aiohttp.ClientError, OSError, UrlRefused) as exc:
            return None, None, failure_reason(exc)

    async def _settle(self, entry_id: str, job: WebhookJob,
                      retry_after: float | None) -> None:
        """Delivered, disabled (410), given up, or retried later: what the attempt means."""
        rid, attempt, status = job.recording_id, job.attempts, job.last_status
        if status is not None and 200 <= status < 300:
            await self._outbox.delivered(entry_id)
            self.delivered += 1
            logger.info("recording %s: webhook %s %s delivered (attempt %d, HTTP %d)", rid,
                        job.event, job.id, attempt, status)
            return
        if status == 410:
            await self._outbox.disable(job.url, status)
            await self._outbox.bury(entry_id, job, "gone")
            logger.error("recording %s: webhook endpoint %s answered 410 Gone: disabled until "
                         "an admin replays; %s %s is a dead letter", rid, job.url, job.event,
                         job.id)
            return
        delay = self._schedule.next_delay(attempt, retry_after)
        if delay is None:
            await self._outbox.bury(entry_id, job)
            logger.error("recording %s: webhook %s %s given up after %d attempt(s): %s", rid,
                         job.event, job.id, attempt, job.last_error)
            return
        # counted from the answer, not from the whole second the attempt was signed in
        await self._outbox.retry_later(entry_id, job, time.time() + delay)
        logger.warning("recording %s: webhook %s %s attempt %d failed (%s); next in %g s", rid,
                       job.event, job.id, attempt, job.last_error, delay)

