"""What a worker keeps in Redis so another worker can resume its upload, and the lock that
makes one worker at a time work on a recording.

``{prefix}upload:{recording_id}:{file_name}`` (hash, TTL as the state) holds for S3
``target, key, upload_id, part_size`` and one ``part:{n}`` field per finished part (its ETag;
one field each so parts finishing together never overwrite each other), for tus ``target,
url, stream_id, length, offset``.

``{prefix}upload-lock:{recording_id}`` (string: the holder's consumer name) lives as long as
the job claim and is renewed with it; a duplicate job (a re-queue after a restart, an admin
retry) waits while another worker holds it, so one recording is never uploaded twice at once.
"""

from __future__ import annotations

import logging
from typing import Any

import redis.asyncio as aioredis

from recorder.state.connection import store_errors
from recorder.state.keys import KeySpace

logger = logging.getLogger(__name__)

PART_FIELD = "part:"

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class UploadRecord:
    """The resumable state of one file's upload."""

    def __init__(self, redis: aioredis.Redis, keys: KeySpace, recording_id: str,
                 file_name: str, ttl_seconds: int) -> None:
        self._redis = redis
        self.key = keys.upload(recording_id, file_name)
        self._ttl = ttl_seconds

    async def load(self) -> dict[str, str]:
        with store_errors():
            fields: Any = await self._redis.hgetall(self.key)
        return dict(fields)

    async def save(self, **fields: str | int) -> None:
        with store_errors():
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(self.key, mapping={k: str(v) for k, v in fields.items()})
                pipe.expire(self.key, self._ttl)
                await pipe.execute()

    async def start(self, **fields: str | int) -> None:
        """Replace whatever was there (an upload that is gone) with a new one."""
        with store_errors():
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(self.key)
                pipe.hset(self.key, mapping={k: str(v) for k, v in fields.items()})
                pipe.expire(self.key, self._ttl)
                await pipe.execute()

    async def part_done(self, number: int, etag: str) -> None:
        await self.save(**{f"{PART_FIELD}{number}": etag})

    async def clear(self) -> None:
        with store_errors():
            await self._redis.delete(self.key)

    @staticmethod
    def parts(fields: dict[str, str]) -> dict[int, str]:
        """Finished parts of an S3 record: part number -> ETag."""
        return {int(name[len(PART_FIELD):]): value for name, value in fields.items()
                if name.startswith(PART_FIELD)}


class RecordingLock:
    """A lease on one recording's upload, held by one consumer, renewed while it works."""

    def __init__(self, redis: aioredis.Redis, keys: KeySpace, recording_id: str, holder: str,
                 ttl_seconds: float) -> None:
        self._redis = redis
        self.key = f"{keys.prefix}upload-lock:{recording_id}"
        self.recording_id = recording_id
        self._holder = holder
        self._ttl_ms = max(1, round(ttl_seconds * 1000))
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    async def acquire(self) -> bool:
        with store_errors():
            return bool(await self._redis.set(self.key, self._holder, nx=True, px=self._ttl_ms))

    async def renew(self) -> bool:
        """False when the lease expired and someone else may hold it now."""
        with store_errors():
            return bool(await self._renew(keys=[self.key], args=[self._holder, self._ttl_ms]))

    async def release(self) -> None:
        with store_errors():
            await self._release(keys=[self.key], args=[self._holder])

    async def holder(self) -> str | None:
        with store_errors():
            value: Any = await self._redis.get(self.key)
        return None if value is None else str(value)
