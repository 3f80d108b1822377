"""What can go wrong while storing a file at its target.

    UploadError
    ├── TransientError     worth trying again: timeouts, dropped connections, 5xx, 429
    │   └── OffsetMismatch tus 409/460: the server's offset is not ours; HEAD and go on
    ├── UploadGone         the resumable upload no longer exists (tus 404/410, S3
    │                      NoSuchUpload): start a new one
    └── PermanentError     trying again cannot help (auth, a missing bucket, a version or
                           media type the server refuses, verification that fails)

Foreign errors (botocore, aiohttp) become these at the edge of each target module, with
``raise ... from exc``, so the retry policy and the job handler decide on our types only.
"""

from __future__ import annotations


class UploadError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TransientError(UploadError):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # seconds the server asked us to wait (429/503)


class OffsetMismatch(TransientError):
    pass


class UploadGone(UploadError):
    pass


class PermanentError(UploadError):
    pass


def transient_status(status: int) -> bool:
    """HTTP statuses that a later try may turn into a success."""
    return status in (408, 429) or status >= 500


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header in seconds (its HTTP-date form is rare here and ignored)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
