"""Outgoing webhooks (docs/operations.md), the pure parts: which events, what body, which URL,
the Standard Webhooks signature, and the retry schedule.

The body is built once, when the status change is written, and stored as the exact text that
every attempt sends: the event keeps the time it happened and its ``webhook-id`` however late
it is delivered. Only ``webhook-timestamp`` and the signature are computed per attempt.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from recorder.core.manifest import manifest
from recorder.core.models import RecordingState
from recorder.core.urls import AllowList

SECRET_PREFIX = "whsec_"
DEFAULT_SCHEDULE = "0,5,300,1800,7200,18000,36000,36000"
MAX_RETRY_AFTER_SECONDS = 86400.0  # a Retry-After beyond a day is treated as a day

# pub/sub `type` -> webhook `event`; `recording_pending` has none.
WEBHOOK_EVENTS: dict[str, str] = {
    "recording_started": "recording.started",
    "recording_paused": "recording.paused",
    "recording_resumed": "recording.resumed",
    "recording_stopped": "recording.stopped",
    "recording_completed": "recording.complete",
    "recording_failed": "recording.failed",
    "recording_cancelled": "recording.cancelled",
    "recording_ready": "recording.ready",
}

MANIFEST_EVENTS = frozenset({"recording.complete", "recording.ready"})  # carry data.manifest


@dataclass(frozen=True)
class Notice:
    """An event that is not a status change (Stream's playback outcome): its pub/sub type
    and the `data.error` its webhook carries instead of the state's."""

    type: str
    error: str | None = None


def webhook_event(pubsub_type: str) -> str | None:
    return WEBHOOK_EVENTS.get(pubsub_type)


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def stream_url(customer_code: str | None, stream_id: str | None) -> str | None:
    """The video's HLS manifest (signed videos need a token in place of the id to play)."""
    if not customer_code or not stream_id:
        return None
    return f"https://customer-{customer_code}.cloudflarestream.com/{stream_id}/manifest/video.m3u8"


def payload(event: str, state: RecordingState, at: datetime, *, error: str | None = None,
            customer_code: str | None = None) -> dict[str, Any]:
    """The webhook body: the hosted recorder's shape, camelCase, times in ISO 8601 UTC."""
    when = iso(at)
    files = [{
        "name": f.name, "kind": f.kind, "size": f.size, "sha256": f.sha256,
        "duration": f.duration_seconds, "s3Key": f.s3_key, "streamId": f.stream_id,
        "streamUrl": stream_url(customer_code, f.stream_id),
        "playback": f.playback.model_dump() if f.playback is not None else None,
    } for f in state.files]
    return {
        "event": event,
        "timestamp": when,
        "data": {
            "recordingId": state.recording_id,
            "roomId": state.room_id,
            "userId": state.user_id,
            "status": state.status.value,
            "format": state.format.value,
            "quality": state.quality.value,
            "duration": state.duration_seconds,
            "fileSize": state.file_size_bytes,
            "sha256": state.sha256,
            "s3Key": state.s3_key,
            "streamId": state.stream_id,
            "streamUrl": stream_url(customer_code, state.stream_id),
            "files": files,
            "error": error if error is not None else state.error,
            "timestamp": when,
            **({"manifest": manifest(state)} if event in MANIFEST_EVENTS else {}),
        },
    }


def body_text(body: dict[str, Any]) -> str:
    """The exact text sent (and signed): compact, key order as built."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def new_message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


class WebhookJob(BaseModel):
    """One event on its way: everything a worker needs, stored as JSON in the outbox."""

    id: str  # webhook-id, the same on every attempt
    url: str
    event: str
    recording_id: str
    body: str  # the exact text sent
    created: float  # unix time the event was queued
    attempts: int = 0  # made so far
    last_status: int | None = None
    last_error: str | None = None

    def to_json(self) -> str:
        return self.model_dump_json()


def build_job(url: str, event: str, state: RecordingState, at: datetime, *,
              error: str | None = None, customer_code: str | None = None) -> WebhookJob:
    body = payload(event, state, at, error=error, customer_code=customer_code)
    return WebhookJob(id=new_message_id(), url=url, event=event,
                      recording_id=state.recording_id, body=body_text(body),
                      created=at.timestamp())


# ---- signing (Standard Webhooks) ------------------------------------------------------------

def parse_secret(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` + base64 secret; ValueError when it is not one."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"must start with {SECRET_PREFIX!r} followed by base64")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"the part after {SECRET_PREFIX!r} is not valid base64") from exc
    if len(key) < 16:
        raise ValueError("the key must be at least 16 bytes (24 base64 characters)")
    return key


def sign(key: bytes, message_id: str, timestamp: int, body: str) -> str:
    """``v1,<base64 HMAC-SHA256 of id.timestamp.body>``."""
    signed = f"{message_id}.{timestamp}.{body}".encode()
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(key: bytes, message_id: str, timestamp: int, body: str) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(key, message_id, timestamp, body),
    }


# ---- where to --------------------------------------------------------------------------------

@dataclass(frozen=True)
class WebhookRouting:
    """Which URL a recording's events go to: its own `webhook_url` while
    RECORDER_WEBHOOK_ALLOWED_URLS allows it (matched parsed, see :mod:`recorder.core.urls`),
    else the node's RECORDER_WEBHOOK_URL, else none (nothing is queued)."""

    default_url: str | None = None
    allowed_urls: tuple[str, ...] = ()  # RECORDER_WEBHOOK_ALLOWED_URLS, validated at start-up
    customer_code: str | None = None

    @functools.cached_property
    def allowed(self) -> AllowList:
        return AllowList.parse(self.allowed_urls)

    def url_for(self, state: RecordingState) -> str | None:
        own = state.webhook_url
        if own and self.allowed.allows(own):
            return own
        return self.default_url or None

    def trusted(self, url: str) -> bool:
        """The operator's own URL: delivered without the allow-list."""
        return bool(self.default_url) and url == self.default_url


# ---- retries ---------------------------------------------------------------------------------

def parse_schedule(text: str) -> tuple[float, ...]:
    """``0,5,300``: the delay before each attempt, after the previous one."""
    try:
        delays = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise ValueError("must be comma-separated seconds, like 0,5,300") from exc
    if not delays or any(d < 0 for d in delays):
        raise ValueError("must list at least one delay, none negative")
    return delays


@dataclass(frozen=True)
class RetrySchedule:
    delays: Sequence[float]

    @property
    def attempts(self) -> int:
        return len(self.delays)

    def next_delay(self, attempts_made: int, retry_after: float | None = None) -> float | None:
        """Seconds from the failed attempt to the next one, or None when none is left. A
        Retry-After the receiver sent wins when it asks for longer."""
        if attempts_made >= len(self.delays):
            return None
        delay = self.delays[attempts_made]
        if retry_after is not None:
            delay = max(delay, min(retry_after, MAX_RETRY_AFTER_SECONDS))
        return delay
