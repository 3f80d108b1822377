"""What an admin sees of the outgoing webhook outbox (docs/api.md admin routes).

The outbox (workers/outbox.py) builds these from Redis and the API returns them as they
are, so the route's schema and the outbox's answer are one definition.
"""

from __future__ import annotations

from pydantic import BaseModel


class DeadLetter(BaseModel):
    id: str
    url: str
    event: str
    recording_id: str
    attempts: int
    last_status: int | None
    last_error: str | None
    created_at: float


class QueueInfo(BaseModel):
    ready: int  # in the stream (due now, or being delivered)
    delayed: int  # waiting for a retry
    in_progress: int  # delivered to a worker and not settled
    depth: int  # ready + delayed
    oldest_age_seconds: float | None  # how long the oldest undelivered event has waited


class Endpoint(BaseModel):
    url: str
    disabled: bool
    disabled_at: float | None = None
    status: int | None = None


class WebhookStatus(BaseModel):
    endpoints: list[Endpoint]
    queue: QueueInfo
    dead: int
    dead_letters: list[DeadLetter]
    deliveries: dict[str, int]


class ReplayResult(BaseModel):
    replayed: int
    endpoints_enabled: list[str]
