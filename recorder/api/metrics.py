"""The node's Prometheus metrics, on a registry of their own.

A registry per :class:`Metrics` object (never prometheus-client's global one) so tests and
several apps in one process do not share counters, and whoever builds the node decides what
is exported. The HTTP edge counts requests, starts, refusals and WHIP sessions; the service
sets the gauges and counts what only it sees (frames, finished recordings).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

from recorder.state.totals import Totals

# Prometheus text format 0.0.4: what every Prometheus server version scrapes.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def endpoint_label(url: str) -> str:
    """How /metrics names a webhook endpoint: a URL may carry a token in its query or
    userinfo, and labels are scraped and kept by anyone who reads the metrics, so the label is
    a short digest an operator can match against the URL (docs/security.md)."""
    return hashlib.sha256(url.encode()).hexdigest()[:12]


class ClusterCounters(Collector):
    """The cluster's running totals (kept in Redis by every process, recorder/state/totals.py)
    as counters: their values are read from the store, not counted here, which a Counter
    object cannot express."""

    def __init__(self) -> None:
        self.totals = Totals()

    def collect(self) -> Iterator[Metric]:
        families = (
            ("recorder_uploaded_bytes", "Bytes uploaded and verified, by target (the whole "
             "cluster)", "target", self.totals.uploaded_bytes),
            ("recorder_upload_failures", "Recordings whose upload was given up, by target "
             "(the whole cluster)", "target", self.totals.upload_failures),
            ("recorder_recordings_finished", "Recordings that reached a terminal status, by "
             "status (the whole cluster)", "status", self.totals.finished),
        )
        for name, documentation, label, values in families:
            family = CounterMetricFamily(name, documentation, labels=[label])
            for key, value in sorted(values.items()):
                family.add_metric([key], value)
            yield family


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._frames_seen = (0, 0)
        self.totals = ClusterCounters()
        self.registry.register(self.totals)
        self._declare_requests(self.registry)
        self._declare_media(self.registry)
        self._declare_node(self.registry)
        self._declare_queues(self.registry)
        self._declare_workers(self.registry)

    def _declare_requests(self, r: CollectorRegistry) -> None:
        self.http_requests = Counter(
            "recorder_http_requests", "HTTP requests answered, by route template and status",
            ["method", "route", "status"], registry=r)
        self.http_request_seconds = Histogram(
            "recorder_http_request_duration_seconds",
            "Time until the response headers were ready, by route template",
            ["method", "route"], registry=r)
        self.recordings_started = Counter(
            "recorder_recordings_started", "Recordings admitted, by format and quality",
            ["format", "quality"], registry=r)
        self.admissions_refused = Counter(
            "recorder_admissions_refused",
            "Starts, WHIP publishers and live-status streams refused because a limit was "
            "reached, by the limit's name",
            ["limit"], registry=r)
        self.requests_forwarded = Counter(
            "recorder_requests_forwarded",
            "Requests for another node's room or recording, by how (forward or redirect)",
            ["how"], registry=r)

    def _declare_media(self, r: CollectorRegistry) -> None:
        self.active_recordings = Gauge(
            "recorder_active_recordings", "Recordings pending, recording or paused on this node",
            registry=r)
        self.whip_sessions_started = Counter(
            "recorder_whip_sessions_started", "WHIP publishers accepted", registry=r)
        self.whip_publishers = Gauge(
            "recorder_whip_publishers", "WHIP publishers connected to this node", registry=r)
        self.frames_received = Counter(
            "recorder_frames_received", "Media frames received from publishers", registry=r)
        self.frames_dropped = Counter(
            "recorder_frames_dropped", "Media frames received but not written", registry=r)
        self.cluster_active_recordings = Gauge(
            "recorder_cluster_active_recordings",
            "Recordings pending, recording or paused on all nodes sharing the Redis",
            registry=r)

    def _declare_node(self, r: CollectorRegistry) -> None:
        self.storage_free_bytes = Gauge(
            "recorder_storage_free_bytes",
            "Free bytes on the filesystem of the storage directory", registry=r)
        self.storage_used_bytes = Gauge(
            "recorder_storage_used_bytes", "Bytes the files in the storage directory take",
            registry=r)
        self.cpu_used = Gauge(
            "recorder_cpu_used_cores",
            "Cores this node's live media is priced at (what CPU admission counts)", registry=r)
        self.cpu_capacity = Gauge(
            "recorder_cpu_capacity_cores",
            "Cores this node may spend on live media (RECORDER_CPU_CAPACITY)", registry=r)
        self.storage_total_bytes = Gauge(
            "recorder_storage_total_bytes",
            "Size in bytes of the filesystem of the storage directory", registry=r)

    def _declare_workers(self, r: CollectorRegistry) -> None:
        self.room_worker_rooms = Gauge(
            "recorder_room_worker_rooms", "Rooms each room worker hosts (pool isolation)",
            ["worker"], registry=r)
        self.room_worker_pss = Gauge(
            "recorder_room_worker_pss_bytes",
            "Proportional set size of each room worker (its share of memory)", ["worker"],
            registry=r)
        self.room_worker_restarts = Counter(
            "recorder_room_worker_restarts",
            "Room workers started again after one died (pool isolation)", registry=r)
        self._restarts_seen = 0

    def _declare_queues(self, r: CollectorRegistry) -> None:
        self.upload_queue_depth = Gauge(
            "recorder_upload_queue_depth",
            "Upload jobs of this node not finished yet (waiting or being worked on)", registry=r)
        self.upload_queue_age = Gauge(
            "recorder_upload_queue_oldest_age_seconds",
            "How long the oldest unfinished upload job of this node has waited", registry=r)
        self.upload_jobs_in_progress = Gauge(
            "recorder_upload_jobs_in_progress",
            "Upload jobs of this node delivered to a worker and not finished", registry=r)
        self.webhook_queue_depth = Gauge(
            "recorder_webhook_queue_depth",
            "Webhook events not delivered yet (due now or waiting for a retry)", registry=r)
        self.webhook_queue_age = Gauge(
            "recorder_webhook_queue_oldest_age_seconds",
            "How long the oldest undelivered webhook event has waited", registry=r)
        self.webhook_dead = Gauge(
            "recorder_webhook_dead_letters", "Webhook events given up (until replayed)",
            registry=r)
        self.webhook_deliveries = Gauge(
            "recorder_webhook_deliveries",
            "Webhook attempts by outcome, all workers sharing the Redis (running totals)",
            ["outcome"], registry=r)
        self.webhook_endpoint_disabled = Gauge(
            "recorder_webhook_endpoint_disabled",
            "1 while an endpoint is disabled after a 410 (until an admin replays); `endpoint`"
            " is the first 12 hex digits of the SHA-256 of its URL", ["endpoint"], registry=r)

    def set_webhooks(self, depth: int, oldest_age: float, dead: int,
                     deliveries: dict[str, int], endpoints: dict[str, bool]) -> None:
        self.webhook_queue_depth.set(depth)
        self.webhook_queue_age.set(oldest_age)
        self.webhook_dead.set(dead)
        for outcome, count in deliveries.items():
            self.webhook_deliveries.labels(outcome).set(count)
        self.webhook_endpoint_disabled.clear()  # a replayed endpoint's label goes away
        for url, disabled in endpoints.items():
            self.webhook_endpoint_disabled.labels(endpoint_label(url)).set(1 if disabled else 0)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in HTTP_METHODS else "other"
        self.http_requests.labels(method, route, str(status)).inc()
        self.http_request_seconds.labels(method, route).observe(seconds)

    def recording_started(self, fmt: str, quality: str) -> None:
        self.recordings_started.labels(fmt, quality).inc()

    def admission_refused(self, limit: str) -> None:
        self.admissions_refused.labels(limit).inc()

    def set_active_recordings(self, count: int) -> None:
        self.active_recordings.set(count)

    def set_cpu(self, used: float, capacity: float) -> None:
        self.cpu_used.set(used)
        self.cpu_capacity.set(capacity)

    def set_whip_publishers(self, count: int) -> None:
        self.whip_publishers.set(count)

    def count_frames(self, received: int, dropped: int) -> None:
        self.frames_received.inc(received)
        self.frames_dropped.inc(dropped)

    def observe_frames(self, received: int, dropped: int) -> None:
        """Count what the node's recordings received and dropped since the last look, from
        the totals so far."""
        seen_received, seen_dropped = self._frames_seen
        self.count_frames(max(0, received - seen_received), max(0, dropped - seen_dropped))
        self._frames_seen = (received, dropped)

    def set_cluster_active(self, count: int) -> None:
        self.cluster_active_recordings.set(count)

    def set_upload_queue_age(self, seconds: float) -> None:
        self.upload_queue_age.set(seconds)

    def request_forwarded(self, how: str) -> None:
        self.requests_forwarded.labels(how).inc()

    def set_storage(self, free_bytes: int, used_bytes: int, total_bytes: int) -> None:
        self.storage_free_bytes.set(free_bytes)
        self.storage_used_bytes.set(used_bytes)
        self.storage_total_bytes.set(total_bytes)

    def set_totals(self, totals: Totals) -> None:
        self.totals.totals = totals

    def set_upload_queue(self, depth: int, in_progress: int) -> None:
        self.upload_queue_depth.set(depth)
        self.upload_jobs_in_progress.set(in_progress)

    def set_room_workers(self, workers: Iterable[tuple[int, int, int | None]],
                         restarts: int) -> None:
        """(index, rooms, PSS bytes or None) per worker, and restarts so far."""
        for index, rooms, pss in workers:
            self.room_worker_rooms.labels(str(index)).set(rooms)
            if pss is not None:
                self.room_worker_pss.labels(str(index)).set(pss)
        self.room_worker_restarts.inc(max(0, restarts - self._restarts_seen))
        self._restarts_seen = max(self._restarts_seen, restarts)

    def render(self) -> bytes:
        return generate_latest(self.registry)
