"""The node's Prometheus metrics, on a registry of their own.

A registry per :class:`Metrics` object (never prometheus-client's global one) so tests and
several apps in one process do not share counters, and whoever builds the node decides what
is exported. The HTTP edge counts requests, starts, refusals and WHIP sessions; the service
sets the gauges and counts what only it sees (frames, finished recordings).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

# Prometheus text format 0.0.4: what every Prometheus server version scrapes.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
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
            "recorder_admissions_refused", "Starts refused because a limit was reached",
            ["limit"], registry=r)
        self.recordings_finished = Counter(
            "recorder_recordings_finished", "Recordings that reached a terminal status",
            ["status"], registry=r)
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

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in HTTP_METHODS else "other"
        self.http_requests.labels(method, route, str(status)).inc()
        self.http_request_seconds.labels(method, route).observe(seconds)

    def recording_started(self, fmt: str, quality: str) -> None:
        self.recordings_started.labels(fmt, quality).inc()

    def admission_refused(self, limit: str) -> None:
        self.admissions_refused.labels(limit).inc()

    def recording_finished(self, status: str) -> None:
        self.recordings_finished.labels(status).inc()

    def set_active_recordings(self, count: int) -> None:
        self.active_recordings.set(count)

    def set_whip_publishers(self, count: int) -> None:
        self.whip_publishers.set(count)

    def count_frames(self, received: int, dropped: int) -> None:
        self.frames_received.inc(received)
        self.frames_dropped.inc(dropped)

    def render(self) -> bytes:
        return generate_latest(self.registry)
