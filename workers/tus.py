"""A small tus 1.0.0 client (core protocol and creation) on aiohttp.

Our own rather than tuspy because tuspy blocks the event loop and hides the creation
response's headers (Cloudflare's video id comes in ``stream-media-id``). A chunk is streamed
from the file in small blocks, so no chunk is ever held in memory whole.

After any failed PATCH the server, not we, knows how far the upload got: the client asks
with HEAD and continues from that ``Upload-Offset``. Statuses, as the tus specification
defines them: 409 the offset was not the server's (HEAD, continue), 412 the server does not
speak our version (give up), 415 we sent the wrong content type (a bug: give up),
460 a checksum did not match (send the chunk again), 404/410 the upload is gone (the caller
creates a new one); 408, 429 and 5xx are transient.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import aiohttp

from workers.errors import (
    OffsetMismatch,
    PermanentError,
    TransientError,
    UploadError,
    UploadGone,
    retry_after_seconds,
    transient_status,
)
from workers.retry import RetryPolicy

logger = logging.getLogger(__name__)

TUS_VERSION = "1.0.0"
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
READ_BLOCK = 1 << 20  # bytes read from the file at a time while streaming a chunk
STATUS_CHECKSUM_MISMATCH = 460


def encode_metadata(items: Mapping[str, str | None]) -> str:
    """``Upload-Metadata``: comma-separated ``key base64(value)``; a None value sends the
    key alone (tus allows keys without values; Cloudflare reads `requiresignedurls` so)."""
    parts: list[str] = []
    for key, value in items.items():
        if not key or any(c in key for c in " ,") or not key.isascii():
            raise ValueError(f"invalid tus metadata key {key!r}")
        if value is None:
            parts.append(key)
        else:
            parts.append(f"{key} {base64.b64encode(value.encode()).decode('ascii')}")
    return ",".join(parts)


def creation_headers(length: int, metadata: Mapping[str, str | None]) -> dict[str, str]:
    headers = {"Tus-Resumable": TUS_VERSION, "Upload-Length": str(length)}
    if metadata:
        headers["Upload-Metadata"] = encode_metadata(metadata)
    return headers


def patch_headers(offset: int, length: int) -> dict[str, str]:
    return {"Tus-Resumable": TUS_VERSION, "Upload-Offset": str(offset),
            "Content-Type": OFFSET_CONTENT_TYPE, "Content-Length": str(length)}


def status_error(status: int, what: str, body: str = "",
                 retry_after: str | None = None) -> UploadError:
    """The error a tus server means by an unexpected status."""
    detail = f"{what}: HTTP {status}" + (f" {body.strip()[:200]}" if body.strip() else "")
    if status in (404, 410):
        return UploadGone(detail)
    if status in (409, STATUS_CHECKSUM_MISMATCH):
        return OffsetMismatch(detail)
    if status == 412:
        return PermanentError(f"{detail} (the server does not support tus {TUS_VERSION})")
    if status == 415:
        return PermanentError(f"{detail} (bug: refused {OFFSET_CONTENT_TYPE})")
    if transient_status(status):
        return TransientError(detail, retry_after_seconds(retry_after))
    return PermanentError(detail)


@dataclass(frozen=True)
class Created:
    url: str  # absolute upload URL
    headers: Mapping[str, str]  # the creation response's headers (server-specific ids)


class TusClient:
    """Talks tus to one server; `headers` (authorization) go with every request."""

    def __init__(self, session: aiohttp.ClientSession, policy: RetryPolicy, chunk_bytes: int,
                 headers: Mapping[str, str] | None = None) -> None:
        self._session = session
        self._policy = policy
        self._chunk = chunk_bytes
        self._headers = dict(headers or {})

    async def create(self, endpoint: str, length: int, metadata: Mapping[str, str | None],
                     log_prefix: str) -> Created:
        async for attempt in self._policy.retrying("tus creation", log_prefix):
            with attempt:
                async with _errors("tus creation"), self._session.post(
                        endpoint, headers={**self._headers, **creation_headers(length, metadata)},
                ) as response:
                    body = await response.text()
                    if response.status != 201:
                        raise status_error(response.status, "tus creation", body,
                                           response.headers.get("Retry-After"))
                    location = response.headers.get("Location")
                    if not location:
                        raise PermanentError("tus creation: 201 without a Location")
                    return Created(urljoin(endpoint, location), dict(response.headers))
        raise AssertionError("unreachable: tenacity raises or returns")

    async def offset(self, url: str, log_prefix: str) -> int:
        """The server's offset of the upload (HEAD), retried while transient."""
        async for attempt in self._policy.retrying("tus HEAD", log_prefix):
            with attempt:
                return await self._head(url)
        raise AssertionError("unreachable: tenacity raises or returns")

    async def send(self, url: str, path: Path, length: int, offset: int, log_prefix: str,
                   on_chunk: Callable[[int], Awaitable[None]]) -> int:
        """PATCH the file from `offset` to `length`, chunk by chunk; returns the final offset.
        `on_chunk` hears every offset the server confirmed.

        Each chunk has its own retry budget: a long upload over a flaky network only fails
        when one chunk cannot get through within the policy's attempts.
        """
        resync = False
        while offset < length:
            size = min(self._chunk, length - offset)
            async for attempt in self._policy.retrying("tus PATCH", log_prefix):
                with attempt:
                    if resync:
                        offset = await self._head(url)
                        resync = False
                        await on_chunk(offset)
                        if offset >= length:
                            break
                        size = min(self._chunk, length - offset)
                    try:
                        offset = await self._patch(url, path, offset, size)
                    except TransientError:
                        resync = True  # the server may hold part of the chunk: ask
                        raise
            await on_chunk(offset)
        return offset

    async def _head(self, url: str) -> int:
        async with _errors("tus HEAD"), self._session.head(
                url, headers={**self._headers, "Tus-Resumable": TUS_VERSION}) as response:
            if response.status not in (200, 204):
                raise status_error(response.status, "tus HEAD", "",
                                   response.headers.get("Retry-After"))
            value = response.headers.get("Upload-Offset")
            if value is None or not value.isdigit():
                raise PermanentError(f"tus HEAD: bad Upload-Offset {value!r}")
            return int(value)

    async def _patch(self, url: str, path: Path, offset: int, size: int) -> int:
        async with _errors("tus PATCH"), self._session.patch(
                url, data=_stream(path, offset, size),
                headers={**self._headers, **patch_headers(offset, size)}) as response:
            body = await response.text()
            if response.status != 204:
                raise status_error(response.status, "tus PATCH", body,
                                   response.headers.get("Retry-After"))
            value = response.headers.get("Upload-Offset", "")
            if not value.isdigit():
                raise PermanentError(f"tus PATCH: bad Upload-Offset {value!r}")
            new = int(value)
            if new <= offset:
                raise OffsetMismatch(f"tus PATCH: the offset did not advance ({new})")
            return new


async def _stream(path: Path, offset: int, size: int) -> AsyncIterator[bytes]:
    """`size` bytes of the file from `offset`, read off the loop in small blocks."""
    with path.open("rb") as f:
        await asyncio.to_thread(f.seek, offset)
        left = size
        while left > 0:
            block = await asyncio.to_thread(f.read, min(READ_BLOCK, left))
            if not block:
                raise PermanentError(f"{path.name} ended {left} bytes early")
            left -= len(block)
            yield block


class _errors:
    """Transport failures (refused, reset, timed out, cut mid-body) as TransientError."""

    def __init__(self, what: str) -> None:
        self._what = what

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: object) -> None:
        if isinstance(exc, aiohttp.ClientError | TimeoutError | ConnectionError):
            raise TransientError(f"{self._what}: {type(exc).__name__}: {exc}") from exc
