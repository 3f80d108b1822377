"""HTTP to the control API, with urllib: a command-line client makes one request at a time,
so the standard library's blocking client is enough and starts faster than an event loop.

Every failure becomes :class:`ApiError` with the exit code a script can branch on, so the
commands never deal with urllib's exceptions.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.client import HTTPException, HTTPResponse
from typing import Any
from urllib.parse import quote, urlencode

# Exit codes (docs/usage.md, "recorderctl"): scripts branch on them.
EXIT_OK = 0
EXIT_FAILED = 1  # `watch`: the recording ended failed or cancelled
EXIT_USAGE = 2  # bad arguments, or the server said the request is invalid (400, 413, 415, 422)
EXIT_NOT_FOUND = 3  # 404, 403 and 401: no such recording for this token
EXIT_CONFLICT = 4  # 409: the lifecycle does not allow it now
EXIT_LIMIT = 5  # 429: a limit is reached
EXIT_SERVER = 6  # 5xx, or the server cannot be reached

_BY_STATUS = {400: EXIT_USAGE, 413: EXIT_USAGE, 415: EXIT_USAGE, 422: EXIT_USAGE,
              401: EXIT_NOT_FOUND, 403: EXIT_NOT_FOUND, 404: EXIT_NOT_FOUND,
              409: EXIT_CONFLICT, 429: EXIT_LIMIT}
REQUEST_TIMEOUT_SECONDS = 120.0  # a start with a pull source waits for the upstream


def exit_code(status: int) -> int:
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return EXIT_SERVER if status >= 500 else EXIT_FAILED


class ApiError(Exception):
    """A refused or failed request, already phrased for one line on stderr."""

    def __init__(self, message: str, code: int, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


@dataclass(frozen=True)
class Event:
    """One server-sent event: its name and its JSON data."""

    name: str
    data: dict[str, Any]


def room_path(room_id: str) -> str:
    return f"/api/webrtc/rooms/{quote(room_id, safe='')}"


def recording_path(room_id: str, recording_id: str) -> str:
    return f"{room_path(room_id)}/recording/{quote(recording_id, safe='')}"


class Client:
    def __init__(self, base_url: str, token: str | None) -> None:
        self._base = base_url.rstrip("/")
        self._token = token

    def request(self, method: str, path: str, query: dict[str, str] | None = None,
                body: dict[str, Any] | None = None) -> Any:
        """The decoded JSON answer of a successful request."""
        data = json.dumps(body).encode() if body is not None else None
        with self._open(method, path, query, data, "application/json",
                        REQUEST_TIMEOUT_SECONDS) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def events(self, path: str) -> Iterator[Event]:
        """Server-sent events until the server ends the stream, or the connection drops (the
        caller decides whether to reopen it)."""
        with self._open("GET", path, None, None, "text/event-stream", None) as response:
            try:
                yield from _parse_events(response)
            except (HTTPException, OSError):
                return

    def _open(self, method: str, path: str, query: dict[str, str] | None, data: bytes | None,
              accept: str, timeout: float | None) -> HTTPResponse:
        url = self._base + path + (f"?{urlencode(query)}" if query else "")
        headers = {"Accept": accept}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            response: HTTPResponse = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            with exc:
                raise _problem(exc) from None
        except (TimeoutError, urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ApiError(f"cannot reach {self._base}: {reason}", EXIT_SERVER) from exc
        return response


def _problem(exc: urllib.error.HTTPError) -> ApiError:
    """One line from an RFC 9457 body: status, title and detail."""
    status = exc.code
    title, detail = exc.reason or "", ""
    try:
        problem = json.loads(exc.read() or b"{}")
    except (ValueError, OSError):
        problem = {}
    if isinstance(problem, dict):
        title = str(problem.get("title") or title)
        detail = str(problem.get("detail") or "")
    message = f"{status} {title}" + (f": {detail}" if detail else "")
    if status == 401:
        message += " (set RECORDER_TOKEN, or see `recorderctl token`)"
    retry_after = exc.headers.get("Retry-After") if exc.headers else None
    if status in (429, 503) and retry_after:
        message += f" (retry after {retry_after} s)"
    return ApiError(message, exit_code(status), status)


def _parse_events(response: HTTPResponse) -> Iterator[Event]:
    """The event-stream format: `event:` and `data:` lines, a blank line ends a message."""
    name, lines = "message", list[str]()
    for raw in response:
        line = raw.decode().rstrip("\r\n")
        if not line:
            if lines:
                yield Event(name, json.loads("\n".join(lines)))
            name, lines = "message", []
        elif not line.startswith(":"):  # `:` starts a keep-alive comment
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                lines.append(value)
