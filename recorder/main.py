"""`recorderd`: build the settings, then run the node until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import ipaddress
import logging
import os
import resource
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import redis.asyncio as aioredis
import uvloop
from aiohttp import web
from redis.exceptions import RedisError

from recorder.api.app import build_app
from recorder.api.auth import Authenticator, load_or_create_dev_secret, mint_token
from recorder.api.metrics import Metrics
from recorder.config.loading import SettingsError, load_settings
from recorder.config.settings import Settings
from recorder.config.storage import prepare_storage
from recorder.core.errors import RecorderError, Unavailable
from recorder.core.fleet import NodeDisk
from recorder.logs import configure_logging
from recorder.notify import Notifier
from recorder.rtc.ice import restrict_host_addresses
from recorder.service.cluster import Cluster
from recorder.service.fleet import Fleet
from recorder.service.playback import PlaybackService
from recorder.service.reassertion import NodeReassertion
from recorder.service.recordings import RecordingService
from recorder.state import KeySpace, NodeInfo, StateStore, connect
from recorder.state.feed import EventFeed
from recorder.state.jobs import UploadQueue
from recorder.state.reassert import StoreReassertion
from recorder.state.totals import ClusterTotals
from workers.main import serve_embedded as serve_uploads
from workers.outbox import WebhookOutbox
from workers.retention import disk_usage

logger = logging.getLogger("recorder")

DEV_TOKEN_SECONDS = 7 * 24 * 3600
FORCED_EXIT = 128 + signal.SIGINT  # a drain cut short, as a shell reports an interrupt
UNREACHABLE_RETRY_SECONDS = 0.5  # heartbeat retries while the store cannot be reached


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="recorderd", description=__doc__)
    parser.add_argument("--config", help="TOML settings file (else RECORDER_CONFIG)")
    args = parser.parse_args(argv)
    configure_logging(os.environ.get("RECORDER_LOG_LEVEL", "INFO"))
    _raise_open_files()
    try:
        settings = load_settings(args.config)
        auth, dev_secret = _authenticator(settings)
    except SettingsError as exc:
        print(f"recorderd: {exc}", file=sys.stderr)
        return 2
    return uvloop.run(run(settings, auth, dev_secret))


def _raise_open_files() -> None:
    """Soft open-file limit up to the hard one: every live-status stream, publisher and
    room process link holds descriptors, and distributions default the soft limit to 1024
    (docs/security.md, "Live-status streams": 1,000 watchers must fit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            logger.warning("open files: soft limit stays %d (hard %d): %s", soft, hard, exc)
    logger.info("open files: soft limit %d", soft)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _authenticator(settings: Settings) -> tuple[Authenticator, str | None]:
    """Configured JWT auth, or a development secret that only a loopback node may use."""
    if settings.jwt_secret or settings.jwt_public_key:
        return Authenticator(settings), None
    if not _is_loopback(settings.host):
        raise SettingsError(
            "invalid setting RECORDER_JWT_SECRET: required (or RECORDER_JWT_PUBLIC_KEY) when "
            f"RECORDER_HOST={settings.host} is not a loopback address")
    prepare_storage(settings.storage, holds_secret=True)
    secret = load_or_create_dev_secret(settings.storage)
    return Authenticator(settings, dev_secret=secret), secret


async def _open_store(settings: Settings) -> tuple[aioredis.Redis, StateStore]:
    redis = await connect(settings.redis_url, settings.sentinel)
    store = StateStore(redis, KeySpace(settings.key_prefix), settings.state_ttl_seconds,
                       settings.index_ttl_seconds, webhooks=settings.webhook_routing,
                       epoch_gated=True)
    try:  # slots a previous run under this node id left (a restart within 3 heartbeats)
        await store.slots.release_node(settings.node)
    except Unavailable as exc:
        logger.warning("slots of an earlier run not released: %s", exc.detail)
    return redis, store


@dataclass
class _Measured:
    """What the gauges measured last, for the heartbeat to announce (no second disk walk)."""

    disk: NodeDisk | None = None


@dataclass(frozen=True)
class _Node:
    """The parts of a running node the background duties share."""

    settings: Settings
    redis: aioredis.Redis
    store: StateStore
    service: RecordingService
    metrics: Metrics
    outbox: WebhookOutbox
    cluster: Cluster | None
    reassertion: NodeReassertion
    measured: _Measured = field(default_factory=_Measured)


async def run(settings: Settings, auth: Authenticator, dev_secret: str | None) -> int:
    restrict_host_addresses(settings.ice_host_addresses)
    if dev_secret is None:  # else prepared with the secret, in _authenticator
        prepare_storage(settings.storage, holds_secret=False)
    redis, store = await _open_store(settings)
    service = RecordingService(settings, store,
                               lambda node_id: UploadQueue(redis, store.keys, node_id))
    cluster = None if settings.embedded else Cluster(
        settings, redis, store, service, lambda node_id: UploadQueue(redis, store.keys, node_id))
    reassertion = NodeReassertion(
        settings.node, store, StoreReassertion(redis, store.keys, settings.state_ttl_seconds,
                                               settings.index_ttl_seconds),
        service.restore_gate, settings.heartbeat_seconds, service.running_states,
        service.handed_off, UploadQueue(redis, store.keys, settings.node),
        service.unwritten, service.written, service.finished)
    node = _Node(settings, redis, store, service, Metrics(), WebhookOutbox(redis, store.keys),
                 cluster, reassertion)
    url_secret = settings.url_signing_secret or settings.jwt_secret or dev_secret or ""
    app = build_app(service, auth, settings, node.metrics, uploads=service,
                    playback=PlaybackService(settings, store, redis, url_secret),
                    webhook_admin=node.outbox,
                    status_feed=EventFeed(redis, store.keys, store.slots, settings.node,
                                          settings.max_watchers_per_user),
                    locator=cluster.placement if cluster is not None else None,
                    fleet_admin=Fleet(store, redis, node.outbox.status, settings.webhook_url))
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        forced = await _serve(node, web.TCPSite(runner, settings.host, settings.port),
                              dev_secret)
    finally:
        await runner.cleanup()
        await service.close()
        await redis.aclose()
    logger.info("stopped")
    return FORCED_EXIT if forced else 0


async def _serve(node: _Node, site: web.TCPSite, dev_secret: str | None) -> bool:
    """Serve until SIGTERM/SIGINT, then drain; returns whether the drain was forced."""
    settings, service = node.settings, node.service
    stop, uploads_stop, notifier = asyncio.Event(), asyncio.Event(), Notifier()
    _on_signals(stop.set)
    try:  # the epoch before the first start: admission waits for it
        await node.reassertion.run_once()
    except Unavailable as exc:
        logger.warning("store not reached at start-up (starts answer 503 until it is): %s",
                       exc.detail)
    except (RecorderError, RedisError):
        logger.exception("re-assertion failed at start-up; tried again at the next heartbeat")
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(service.run())]
        await site.start()
        _announce(settings, dev_secret)
        notifier.ready(f"listening on {settings.public_url}")
        tasks += [group.create_task(_watchdog(notifier, node.store, service)),
                  group.create_task(_heartbeat(node, datetime.now(UTC))),
                  group.create_task(_gauges(node))]
        if node.cluster is not None:
            tasks.append(group.create_task(node.cluster.run()))
        if settings.embedded:  # no shared store: this process is the node's worker
            group.create_task(serve_uploads(settings, node.redis, node.store, uploads_stop))
        await stop.wait()
        logger.info("shutting down: draining for at most %g s", settings.drain_seconds)
        notifier.stopping(f"draining {service.active_count} active recording(s)")
        forced = await _drain(service, settings.drain_seconds)
        uploads_stop.set()
        for task in tasks:
            task.cancel()
        if node.cluster is not None:
            await node.cluster.close()
    return forced


def _on_signals(act: Callable[[], object]) -> None:
    """SIGTERM and SIGINT call `act` (each call replaces what they did before)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, act)


async def _drain(service: RecordingService, deadline: float) -> bool:
    """Drain; a second SIGTERM/SIGINT meanwhile cancels it (the operator will not wait).

    Returns whether it was forced: the recordings it left are finished by crash recovery at
    the next start.
    """
    task = asyncio.create_task(service.drain(deadline))
    _on_signals(task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
        logger.warning("drain forced by a second signal: what it left is finished by the "
                       "next start")
        return True
    return False


def _announce(settings: Settings, dev_secret: str | None) -> None:
    print(f"recorderd listening on {settings.public_url}", flush=True)
    print(f"recordings are written to {settings.storage}", flush=True)
    if settings.embedded:
        print("store: embedded (in-process; state does not survive a restart, files do)",
              flush=True)
    if dev_secret is not None:
        token = mint_token(dev_secret, sub="admin", role="admin", rooms=None,
                           ttl_seconds=DEV_TOKEN_SECONDS)
        print("development admin token (valid 7 days):", flush=True)
        print(token, flush=True)


async def _gauges(node: _Node) -> None:
    """The gauges of /metrics, refreshed with the heartbeat."""
    settings, store, metrics, service = node.settings, node.store, node.metrics, node.service
    queue = UploadQueue(node.redis, store.keys, settings.node)
    totals = ClusterTotals(node.redis, store.keys)
    configured = [settings.webhook_url] if settings.webhook_url else []
    while True:
        metrics.set_active_recordings(service.active_count)
        metrics.set_whip_publishers(service.publisher_count)
        metrics.set_cpu(service.cpu_used, settings.cpu)
        workers = await asyncio.to_thread(service.room_hosts.workers)
        metrics.set_room_workers(((w.index, w.rooms, w.pss_bytes) for w in workers),
                                 service.room_hosts.restarts)
        metrics.observe_frames(*service.frame_totals())
        try:
            metrics.set_cluster_active(len(await store.active_ids()))
            metrics.set_upload_queue_age(await queue.oldest_age())
            usage = await asyncio.to_thread(disk_usage, settings.storage)
            metrics.set_storage(usage.free_bytes, usage.used_bytes, usage.total_bytes)
            node.measured.disk = NodeDisk(
                used_bytes=usage.used_bytes, free_bytes=usage.free_bytes,
                total_bytes=usage.total_bytes, kept_uploaded=usage.kept_uploaded,
                kept_uploaded_bytes=usage.kept_uploaded_bytes)
            metrics.set_totals(await totals.read())
            metrics.set_upload_queue(*await queue.depth())
            hooks = await node.outbox.status(configured)
            metrics.set_webhooks(hooks.queue.depth, hooks.queue.oldest_age_seconds or 0.0,
                                 hooks.dead, hooks.deliveries,
                                 {e.url: e.disabled for e in hooks.endpoints})
        except (OSError, Unavailable) as exc:
            logger.warning("metrics not refreshed: %s", exc)
        await asyncio.sleep(settings.heartbeat_seconds)


def _version() -> str:
    try:
        return importlib.metadata.version("recorder")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout never installed
        return "unknown"


async def _heartbeat(node: _Node, started_at: datetime) -> None:
    settings, store, service = node.settings, node.store, node.service
    version = _version()
    reachable = True
    while True:
        info = NodeInfo(
            node_id=settings.node, public_url=settings.public_url or "", pid=os.getpid(),
            started_at=started_at, active=service.active_count,
            cpu_used=round(service.cpu_used, 2), cpu_capacity=settings.cpu,
            version=version, sent_at=datetime.now(UTC),
            heartbeat_seconds=settings.heartbeat_seconds, rooms=len(service.rooms_in_use()),
            room_workers=service.room_hosts.process_count, draining=service.draining,
            disk=node.measured.disk,
        )
        try:
            await store.heartbeat(info, settings.heartbeat_seconds)
            # the node is the source of truth for what it runs (docs/operations.md)
            await node.reassertion.run_once()
            if not reachable:
                logger.warning("store reachable again: this node's recordings re-asserted")
            reachable = True
        except Unavailable as exc:  # the store may be down for a while; keep beating
            logger.warning("heartbeat failed: %s", exc)
            reachable = False
        except (RecorderError, RedisError):  # a bug or an odd answer must not end the node
            logger.exception("re-assertion failed; tried again at the next heartbeat")
            reachable = False
        # while the store is away, look for it more often: the first beat after it returns
        # re-asserts what this node runs
        await asyncio.sleep(settings.heartbeat_seconds if reachable
                            else min(settings.heartbeat_seconds, UNREACHABLE_RETRY_SECONDS))


async def _watchdog(notifier: Notifier, store: StateStore, service: RecordingService) -> None:
    """WATCHDOG=1 while the event loop turns (a blocked loop gets the node restarted).

    An unreachable store is not a reason to be killed: captures are local and keep going, so
    it only shows in STATUS= (and /readyz).
    """
    period = (notifier.watchdog_seconds or 30.0) / 3
    while True:
        notifier.watchdog()
        try:
            await store.ping()
            store_state = ""
        except Unavailable as exc:
            store_state = f", {exc.detail}"
        notifier.status(f"{service.active_count} active recording(s){store_state}")
        await asyncio.sleep(period)
