"""What a caller is shown of a recording's state: the one place a state becomes an answer.

Admins see the state as stored. Everyone else sees `local_path` as null (the node's disk
layout is the operator's business) and a pull source's URL with neither userinfo nor query
(where credentials and tokens travel). Every route that answers with a state renders it
here, so no route can forget; see docs/security.md, "What users are shown".
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web

from recorder.core.access import Caller
from recorder.core.models import RecordingState


def view(caller: Caller, state: RecordingState) -> dict[str, Any]:
    """`state` as JSON-ready data for `caller`."""
    data = state.model_dump(mode="json")
    if caller.is_admin:
        return data
    data["local_path"] = None
    data["source"] = shown_source(data.get("source") or {})
    return data


def shown_source(source: dict[str, Any]) -> dict[str, Any]:
    shown = dict(source)
    if isinstance(shown.get("url"), str):
        shown["url"] = public_url(shown["url"])
    return shown


def public_url(url: str) -> str | None:
    """`url` without userinfo, query or fragment; None when it does not parse as a URL
    (nothing of it is shown rather than something that may still hold a secret)."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host or not parts.scheme:
        return None
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def state_response(caller: Caller, state: RecordingState, status: int = 200) -> web.Response:
    return web.json_response(view(caller, state), status=status)
