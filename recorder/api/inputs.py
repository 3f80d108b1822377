"""Reading a request's inputs within limits, and turning every fault into a 400/413/415.

Bodies are read chunk by chunk against the route's limit so an oversized or endless body
stops at the limit (413) instead of filling memory; validation errors keep pydantic's
location and message (never the input itself, which may be large or secret).
"""

from __future__ import annotations

from typing import TypeVar

from aiohttp import hdrs, web
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from recorder.api.problems import InvalidRequest

JSON_LIMIT = 1 << 20  # 1 MiB: a start body is a few hundred bytes
SDP_LIMIT = 256 << 10  # 256 KiB: a browser offer with many codecs is ~10 KiB

M = TypeVar("M", bound=BaseModel)


def invalid(exc: ValidationError, where: str) -> InvalidRequest:
    errors = [
        {"location": ".".join([where, *(str(part) for part in _loc(err))]),
         "message": err["msg"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]
    detail = "; ".join(f"{e['location']}: {e['message']}" for e in errors[:3])
    return InvalidRequest(detail, errors)


def _loc(err: ErrorDetails) -> tuple[int | str, ...]:
    """A discriminated union's bad or missing tag is the fault of its tag field."""
    if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
        tag = str((err.get("ctx") or {}).get("discriminator", "")).strip("'")
        if tag:
            return (*err["loc"], tag)
    return tuple(err["loc"])


def parse_query(request: web.Request, model: type[M]) -> M:
    query = request.query
    repeated = sorted({key for key in query if len(query.getall(key)) > 1})
    if repeated:
        raise InvalidRequest(
            f"query parameter(s) given more than once: {', '.join(repeated)}",
            [{"location": f"query.{key}", "message": "given more than once"} for key in repeated],
        )
    try:
        return model.model_validate(dict(query))
    except ValidationError as exc:
        raise invalid(exc, "query") from exc


async def read_body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=size)
        chunks.append(chunk)
    return b"".join(chunks)


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json"))


async def read_json(request: web.Request, model: type[M], limit: int = JSON_LIMIT) -> M | None:
    """The body as `model`, or None when there is none (an empty body is allowed)."""
    body = await read_body(request, limit)
    if not body.strip():
        return None
    if not _is_json(request.content_type):
        raise web.HTTPUnsupportedMediaType(
            text=f"the body must be application/json, not {request.content_type}")
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise invalid(exc, "body") from exc


async def read_text(request: web.Request, media_type: str, limit: int) -> str:
    """A required text body of exactly `media_type` (checked before anything is read)."""
    if request.content_type != media_type or hdrs.CONTENT_TYPE not in request.headers:
        raise web.HTTPUnsupportedMediaType(
            text=f"the body must be {media_type}, not "
                 f"{request.headers.get(hdrs.CONTENT_TYPE, 'missing')}")
    body = await read_body(request, limit)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"the {media_type} body is not UTF-8 text",
                             [{"location": "body", "message": str(exc)}]) from exc
    if not text.strip():
        raise InvalidRequest(f"an {media_type} body is required",
                             [{"location": "body", "message": "empty"}])
    return text
