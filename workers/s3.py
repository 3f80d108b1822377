"""S3 (and S3-compatible stores) as an upload target: resumable multipart, verified.

Every part carries its Content-MD5, which S3, R2 and MinIO check before accepting it. The
client is told to compute and validate its own checksums only "when required": boto3 1.36+
otherwise adds CRC headers that some S3-compatible stores refuse. Our SHA-256 of the whole
file goes into the object's metadata (``sha256``): verification is HeadObject's size and
that value against the state's (docs/operations.md).

Resuming: the upload id and each finished part's ETag are kept in the file's upload record
in Redis as they happen; after a restart ListParts says what S3 really holds, and a part is
kept only if its size is the planned one and its ETag is the one recorded (or, for a part
finished just before a crash and not recorded, the MD5 of our bytes). boto3 blocks, so every
call runs in a small thread pool of this target; part bytes never pass through the loop.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
)

from recorder.config.settings import MIB, MIN_PART_BYTES, Settings
from workers.errors import (
    PermanentError,
    TransientError,
    UploadError,
    UploadGone,
    retry_after_seconds,
    transient_status,
)
from workers.retry import RetryPolicy
from workers.target import FileJob, Stored

logger = logging.getLogger(__name__)

MAX_PARTS = 10_000
PARTS_IN_FLIGHT = 4
MAX_RESTARTS = 3  # times an upload may vanish (NoSuchUpload) before the job gives up
CONTENT_TYPES = {".webm": "video/webm", ".mp4": "video/mp4", ".mkv": "video/x-matroska"}
_TRANSIENT_CODES = frozenset({"RequestTimeout", "SlowDown", "InternalError",
                              "ServiceUnavailable", "Throttling", "ThrottlingException",
                              "RequestTimeTooSkewed"})
_PERMANENT_BOTO = (NoCredentialsError, PartialCredentialsError, ParamValidationError)

T = TypeVar("T")


@dataclass(frozen=True)
class Part:
    number: int  # 1-based
    offset: int
    length: int


def part_size(file_size: int, preferred: int = 8 * MIB) -> int:
    """`preferred` bytes, unless 10,000 such parts cannot hold the file: then the smallest
    whole number of MiB that fits. Never under S3's 5 MiB minimum."""
    needed = -(-file_size // MAX_PARTS)
    needed = -(-needed // MIB) * MIB
    return max(preferred, needed, MIN_PART_BYTES)


def plan(file_size: int, size: int) -> list[Part]:
    """The parts of a file; an empty file is one empty part (S3 needs at least one)."""
    if file_size == 0:
        return [Part(1, 0, 0)]
    return [Part(i + 1, offset, min(size, file_size - offset))
            for i, offset in enumerate(range(0, file_size, size))]


def object_key(prefix: str, room_id: str, recording_id: str, file_name: str) -> str:
    return f"{prefix}{room_id}/{recording_id}/{file_name}"


def _md5(data: bytes) -> hashlib._Hash:
    return hashlib.md5(data, usedforsecurity=False)


def _read(path: Path, part: Part) -> bytes:
    with path.open("rb") as f:
        f.seek(part.offset)
        data = f.read(part.length)
    if len(data) != part.length:
        raise PermanentError(f"{path.name} is shorter than its recorded size")
    return data


def _convert(exc: Exception, what: str) -> UploadError:
    """botocore's errors as ours; the caller raises the result `from exc`."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        meta = exc.response.get("ResponseMetadata", {})
        status = int(meta.get("HTTPStatusCode", 0) or 0)
        detail = f"{what}: {code or status} {error.get('Message', '')}".strip()
        if code == "NoSuchUpload":
            return UploadGone(detail)
        if code in _TRANSIENT_CODES or transient_status(status):
            headers = meta.get("HTTPHeaders", {})
            return TransientError(detail, retry_after_seconds(headers.get("retry-after")))
        return PermanentError(detail)
    if isinstance(exc, _PERMANENT_BOTO):
        return PermanentError(f"{what}: {exc}")
    if isinstance(exc, BotoCoreError | ConnectionError | TimeoutError):
        return TransientError(f"{what}: {exc}")
    return PermanentError(f"{what}: {type(exc).__name__}: {exc}")


class S3Target:
    def __init__(self, settings: Settings, policy: RetryPolicy) -> None:
        if not settings.s3_bucket:
            raise ValueError("RECORDER_S3_BUCKET is not set")
        self._bucket = settings.s3_bucket
        self._prefix = settings.s3_prefix
        self._preferred = settings.s3_part_bytes
        self._policy = policy
        self._pool = ThreadPoolExecutor(PARTS_IN_FLIGHT + 2, thread_name_prefix="s3")
        config = Config(
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            retries={"total_max_attempts": 1},  # tenacity decides, with our backoff
            connect_timeout=10,
            read_timeout=120,
            max_pool_connections=PARTS_IN_FLIGHT + 2,
        )
        self._client: Any = boto3.session.Session().client(
            "s3", endpoint_url=settings.s3_endpoint_url, region_name=settings.s3_region,
            config=config)

    def key_for(self, job: FileJob) -> str:
        return object_key(self._prefix, job.room_id, job.recording_id, job.info.name)

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        await asyncio.to_thread(self._client.close)

    # ---- Target ---------------------------------------------------------------------------

    async def store(self, job: FileJob) -> Stored:
        key = self.key_for(job)
        for _ in range(MAX_RESTARTS):
            if await self._verified(job, key):
                logger.info("recording %s: s3://%s/%s already stored and verified",
                            job.recording_id, self._bucket, key)
                await job.record.clear()
                job.on_progress(job.info.size)
                return Stored(s3_key=key)
            try:
                await self._upload(job, key)
            except UploadGone as exc:
                logger.warning("recording %s: multipart upload of %s is gone (%s); starting "
                               "over", job.recording_id, job.info.name, exc.message)
                await job.record.clear()
                continue
            if not await self._verified(job, key):
                raise PermanentError(f"s3://{self._bucket}/{key} does not match the file after "
                                     "upload (size or sha256 metadata)")
            await job.record.clear()
            logger.info("recording %s: s3://%s/%s stored and verified (%d bytes)",
                        job.recording_id, self._bucket, key, job.info.size)
            return Stored(s3_key=key)
        raise PermanentError(f"the multipart upload of {job.info.name} vanished "
                             f"{MAX_RESTARTS} times")

    async def stored(self, job: FileJob) -> Stored | None:
        key = self.key_for(job)
        return Stored(s3_key=key) if await self._verified(job, key) else None

    async def abandon(self, job: FileJob) -> None:
        fields = await job.record.load()
        upload_id, key = fields.get("upload_id"), fields.get("key")
        if upload_id and key:
            try:
                await self._call(job, "AbortMultipartUpload", self._client.abort_multipart_upload,
                                 Bucket=self._bucket, Key=key, UploadId=upload_id)
                logger.info("recording %s: multipart upload of %s aborted", job.recording_id,
                            job.info.name)
            except UploadError as exc:
                logger.warning("recording %s: could not abort the multipart upload of %s: %s",
                               job.recording_id, job.info.name, exc.message)
        await job.record.clear()

    # ---- steps ----------------------------------------------------------------------------

    async def _verified(self, job: FileJob, key: str) -> bool:
        """HeadObject: the object's size and sha256 metadata are the file's (docs/operations.md)."""
        def head() -> dict[str, Any] | None:
            try:
                reply: dict[str, Any] = self._client.head_object(Bucket=self._bucket, Key=key)
            except ClientError as exc:
                if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                    return None  # not stored (yet)
                raise
            return reply

        found = await self._call(job, f"HeadObject {key}", head)
        if found is None:
            return False
        size = int(found.get("ContentLength", -1))
        sha256 = found.get("Metadata", {}).get("sha256")
        if size == job.info.size and sha256 == job.info.sha256:
            return True
        logger.info("recording %s: s3 object %s differs (%s bytes, sha256 %s)",
                    job.recording_id, key, size, sha256)
        return False

    async def _upload(self, job: FileJob, key: str) -> None:
        fields = await job.record.load()
        upload_id = fields.get("upload_id") if fields.get("key") == key else None
        size = int(fields.get("part_size") or 0) or part_size(job.info.size, self._preferred)
        parts = plan(job.info.size, size)
        done: dict[int, str] = {}
        if upload_id is not None:
            done = await self._reconcile(job, key, upload_id, parts, fields)
        else:
            created = await self._call(
                job, "CreateMultipartUpload", self._client.create_multipart_upload,
                Bucket=self._bucket, Key=key, Metadata={"sha256": job.info.sha256},
                ContentType=CONTENT_TYPES.get(job.path.suffix, "application/octet-stream"))
            upload_id = str(created["UploadId"])
            await job.record.start(target="s3", key=key, upload_id=upload_id, part_size=size)
            logger.info("recording %s: multipart upload of %s started (%d parts of %d MiB)",
                        job.recording_id, job.info.name, len(parts), size // MIB)
        sent = sum(p.length for p in parts if p.number in done)
        job.on_progress(sent)
        todo = deque(p for p in parts if p.number not in done)
        if done:
            logger.info("recording %s: resuming %s: %d of %d parts already stored",
                        job.recording_id, job.info.name, len(done), len(parts))

        async def worker() -> None:
            nonlocal sent
            while todo:
                part = todo.popleft()
                done[part.number] = await self._put(job, key, upload_id, part)
                await job.record.part_done(part.number, done[part.number])
                sent += part.length
                job.on_progress(sent)

        await _first_error(worker() for _ in range(min(PARTS_IN_FLIGHT, len(todo))))
        listing = [{"PartNumber": n, "ETag": done[n]} for n in sorted(done)]
        try:
            await self._call(job, "CompleteMultipartUpload", self._client.complete_multipart_upload,
                             Bucket=self._bucket, Key=key, UploadId=upload_id,
                             MultipartUpload={"Parts": listing})
        except UploadGone:
            # A completion whose answer was lost leaves no upload but a stored object.
            if not await self._verified(job, key):
                raise

    async def _put(self, job: FileJob, key: str, upload_id: str, part: Part) -> str:
        """Upload one part. Before a retry, ListParts says whether the upload still exists
        (a store that lost it may answer UploadPart with a 5xx rather than NoSuchUpload)
        and whether the failed try in fact got through (its answer lost): then it is not
        sent again."""
        tries = 0

        def put() -> str:
            nonlocal tries
            tries += 1
            if tries > 1 and (held := self._listed_part(key, upload_id, part)) is not None:
                return held
            data = _read(job.path, part)
            digest = base64.b64encode(_md5(data).digest()).decode()
            reply = self._client.upload_part(
                Bucket=self._bucket, Key=key, UploadId=upload_id, PartNumber=part.number,
                Body=data, ContentMD5=digest, ContentLength=part.length)
            return str(reply["ETag"])

        return await self._call(job, f"UploadPart {part.number}", put)

    def _listed_part(self, key: str, upload_id: str, part: Part) -> str | None:
        """The part's ETag if S3 already holds it whole (raises NoSuchUpload if the upload
        is gone)."""
        reply = self._client.list_parts(Bucket=self._bucket, Key=key, UploadId=upload_id,
                                        PartNumberMarker=part.number - 1, MaxParts=1)
        for item in reply.get("Parts", []):
            if int(item["PartNumber"]) == part.number and int(item["Size"]) == part.length:
                return str(item["ETag"])
        return None

    async def _reconcile(self, job: FileJob, key: str, upload_id: str, parts: list[Part],
                         fields: dict[str, str]) -> dict[int, str]:
        """The planned parts S3 holds intact, from ListParts and what we recorded."""
        recorded = type(job.record).parts(fields)
        listed: dict[int, tuple[str, int]] = {}
        marker = 0
        while True:
            reply = await self._call(job, "ListParts", self._client.list_parts, Bucket=self._bucket,
                                     Key=key, UploadId=upload_id, PartNumberMarker=marker)
            for item in reply.get("Parts", []):
                listed[int(item["PartNumber"])] = (str(item["ETag"]), int(item["Size"]))
            if not reply.get("IsTruncated"):
                break
            marker = int(reply["NextPartNumberMarker"])
        done: dict[int, str] = {}
        for part in parts:
            if part.number not in listed:
                continue
            etag, size = listed[part.number]
            if size != part.length:
                continue
            if recorded.get(part.number) == etag or await self._etag_matches(job, part, etag):
                done[part.number] = etag
        return done

    async def _etag_matches(self, job: FileJob, part: Part, etag: str) -> bool:
        def md5_hex() -> str:
            return _md5(_read(job.path, part)).hexdigest()

        return etag.strip('"') == await asyncio.get_running_loop().run_in_executor(
            self._pool, md5_hex)

    async def _call(self, job: FileJob, what: str, fn: Callable[..., T], **kwargs: Any) -> T:
        """One boto3 call in our pool, as our errors, retried when transient."""
        loop = asyncio.get_running_loop()
        call = functools.partial(fn, **kwargs)
        async for attempt in self._policy.retrying(
                what, f"recording {job.recording_id}: s3 {job.info.name}"):
            with attempt:
                try:
                    return await loop.run_in_executor(self._pool, call)
                except UploadError:
                    raise
                except Exception as exc:
                    raise _convert(exc, what) from exc
        raise AssertionError("unreachable: tenacity raises or returns")


async def _first_error(coros: Any) -> None:
    """Run the coroutines together; on the first failure cancel the rest and raise it."""
    try:
        async with asyncio.TaskGroup() as group:
            for coro in coros:
                group.create_task(coro)
    except BaseExceptionGroup as group_error:
        first = group_error.exceptions[0]
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None
