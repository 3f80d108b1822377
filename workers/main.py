"""`recorder-worker`: upload the finished recordings of this node until SIGTERM/SIGINT.

It runs beside the `recorderd` whose disk it reads, with the same settings (RECORDER_NODE_ID
above all: it names the stream the worker consumes). Several may run side by side. With
RECORDER_REDIS_URL=embedded there is no shared store to consume from: `recorderd` then runs
the same loop itself (:func:`serve`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable

import redis.asyncio as aioredis
import uvloop

from recorder.config.loading import SettingsError, load_settings
from recorder.config.settings import Settings
from recorder.core.models import UploadTarget
from recorder.core.webhooks import RetrySchedule, parse_secret
from recorder.logs import configure_logging
from recorder.state import KeySpace, StateStore, connect
from recorder.state.jobs import UploadQueue
from workers.cloudflare_stream import StreamTarget
from workers.consumer import UploadConsumer, consumer_name
from workers.outbox import WebhookOutbox
from workers.retention import run_retention
from workers.retry import RetryPolicy
from workers.s3 import S3Target
from workers.target import Target, Targets
from workers.upload import Uploader
from workers.webhooks import WebhookDeliverer

logger = logging.getLogger("workers")

EMBEDDED_RESTART_SECONDS = 5.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="recorder-worker", description=__doc__)
    parser.add_argument("--config", help="TOML settings file (else RECORDER_CONFIG)")
    args = parser.parse_args(argv)
    configure_logging(os.environ.get("RECORDER_LOG_LEVEL", "INFO"))
    try:
        settings = load_settings(args.config)
    except SettingsError as exc:
        print(f"recorder-worker: {exc}", file=sys.stderr)
        return 2
    if settings.embedded:
        print("recorder-worker: invalid setting RECORDER_REDIS_URL: a worker needs a shared "
              "Redis; with 'embedded', recorderd runs the uploads itself", file=sys.stderr)
        return 2
    return uvloop.run(run(settings))


async def run(settings: Settings) -> int:
    redis = await connect(settings.redis_url, settings.sentinel)
    store = StateStore(redis, KeySpace(settings.key_prefix), settings.state_ttl_seconds,
                       settings.index_ttl_seconds, webhooks=settings.webhook_routing)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await serve(settings, redis, store, stop)
    finally:
        await redis.aclose()
    logger.info("stopped")
    return 0


def build_targets(settings: Settings, policy: RetryPolicy, redis: aioredis.Redis,
                  keys: KeySpace) -> Targets:
    factories: dict[str, Callable[[], Target]] = {}
    if not settings.upload_target_missing(UploadTarget.S3):
        factories[UploadTarget.S3.value] = lambda: S3Target(settings, policy)
    if not settings.upload_target_missing(UploadTarget.CLOUDFLARE_STREAM):
        factories[UploadTarget.CLOUDFLARE_STREAM.value] = (
            lambda: StreamTarget(settings, policy, redis, keys))
    return Targets(factories)


async def serve_embedded(settings: Settings, redis: aioredis.Redis, store: StateStore,
                         stop: asyncio.Event) -> None:
    """:func:`serve` inside `recorderd`: a failure of the upload loop is logged and the loop
    started again, never allowed to end the recordings that share its process."""
    while not stop.is_set():
        try:
            await serve(settings, redis, store, stop)
        except Exception:
            logger.exception("embedded upload worker failed; restarting it in %g s",
                             EMBEDDED_RESTART_SECONDS)
            try:
                await asyncio.wait_for(stop.wait(), EMBEDDED_RESTART_SECONDS)
            except TimeoutError:
                continue


async def serve(settings: Settings, redis: aioredis.Redis, store: StateStore,
                stop: asyncio.Event, *, name: str | None = None) -> None:
    """Consume this node's upload jobs and sweep its retention until `stop` is set."""
    policy = RetryPolicy(attempts=settings.upload_retry_attempts,
                         cap=settings.upload_retry_max_seconds)
    targets = build_targets(settings, policy, redis, store.keys)
    uploader = Uploader(store, redis, store.keys, targets,
                        record_ttl_seconds=settings.state_ttl_seconds,
                        keep_local=settings.keep_local_after_upload)
    consumer = UploadConsumer(UploadQueue(redis, store.keys, settings.node), uploader, redis,
                              store.keys, name=name or consumer_name(),
                              claim_seconds=settings.job_claim_seconds)
    try:
        async with asyncio.TaskGroup() as group:
            sweeper = group.create_task(run_retention(settings.storage,
                                                      settings.retention_days))
            if settings.webhook_secret:
                deliverer = WebhookDeliverer(
                    WebhookOutbox(redis, store.keys), parse_secret(settings.webhook_secret),
                    RetrySchedule(settings.webhook_schedule),
                    routing=settings.webhook_routing, name=consumer.name,
                    timeout_seconds=settings.webhook_timeout_seconds)
                group.create_task(deliverer.run(stop))
            await consumer.run(stop)
            sweeper.cancel()
    finally:
        await targets.close()
