"""The one exception root of the recorder.

    RecorderError
    ├── InvalidInput          400: a request the client can fix
    ├── Unauthorized          401: no, bad or expired token
    ├── Forbidden             403: not yours, or the room is not in the token
    ├── NotFound              404: unknown id, or an id in the wrong room
    ├── InvalidTransition     409: the lifecycle does not allow it from the current status
    ├── LimitReached          429: a concurrency limit (named) is reached
    ├── Unprocessable         422: understood but unusable (no codec we can record)
    ├── Unavailable           503: draining, full, or the store cannot be reached
    │   └── Draining          503: this node stops (SIGTERM): no new work
    ├── SourceFailed          502: a pull source (WHEP, Cloudflare Realtime) refused or failed
    └── MediaError            a capture or peer failed (mapped to `failed` with `error`)

Foreign errors (redis, aiortc, PyAV) are converted at the edge with ``raise ... from exc``.
The API maps each class to its status code; anything else is a bug and answers 500.
"""

from __future__ import annotations


class RecorderError(Exception):
    status = 500
    title = "Internal error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidInput(RecorderError):
    status = 400
    title = "Invalid input"


class Unauthorized(RecorderError):
    status = 401
    title = "Unauthorized"


class Forbidden(RecorderError):
    status = 403
    title = "Forbidden"


class NotFound(RecorderError):
    status = 404
    title = "Not found"


class InvalidTransition(RecorderError):
    status = 409
    title = "Transition not allowed"

    def __init__(self, current: str, action: str) -> None:
        super().__init__(f"cannot {action} a recording that is {current}")
        self.current = current
        self.action = action


class Unprocessable(RecorderError):
    status = 422
    title = "Unprocessable"


class LimitReached(RecorderError):
    status = 429
    title = "Limit reached"

    def __init__(self, limit: str, value: float, retry_after: int = 5) -> None:
        super().__init__(f"limit {limit} reached ({value:g})")
        self.limit = limit
        self.value = value
        self.retry_after = retry_after


class Unavailable(RecorderError):
    status = 503
    title = "Service unavailable"

    def __init__(self, detail: str, retry_after: int = 5) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class Draining(Unavailable):
    """Counted apart from other refusals: an operator stopped the node on purpose."""


class MediaError(RecorderError):
    title = "Media error"


class SourceFailed(RecorderError):
    """The upstream a recording pulls from refused, failed or answered nonsense.

    ``upstream_status`` is the HTTP status the upstream answered (None when it never
    answered: unreachable, timed out, or its media never connected); ``recording_id`` is
    set by the service once the failed recording is stored.
    """

    status = 502
    title = "Source failed"

    def __init__(self, detail: str, upstream_status: int | None = None,
                 recording_id: str | None = None) -> None:
        super().__init__(detail)
        self.upstream_status = upstream_status
        self.recording_id = recording_id
