"""The route table: one row per operation, which both registers it and documents it.

A row says who may call (bearer token or public), which pydantic models govern the query
and body, and what comes back. The guard built from a row authenticates and validates
before the handler runs, and :mod:`recorder.api.openapi` renders the same rows, so the
document cannot drift from what the server enforces.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, TypeVar

from aiohttp import hdrs, web
from pydantic import BaseModel, Field, StringConstraints, TypeAdapter, ValidationError

from recorder.api.context import AUTH, BODY, CALLER, QUERY, TEXT
from recorder.api.forwarding import Locate, elsewhere
from recorder.api.inputs import JSON_LIMIT, SDP_LIMIT, invalid, parse_query, read_json, read_text
from recorder.core.access import Caller
from recorder.core.errors import Forbidden

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
M = TypeVar("M", bound=BaseModel)

RoomId = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@+=~-]{0,127}$"),
    Field(description="Room id: letters, digits and ._:@+=~- (at most 128)"),
]
ResourceId = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,128}$"),
    Field(description="Id the server assigned"),
]

PATH_PARAMS: dict[str, TypeAdapter[str]] = {
    "room_id": TypeAdapter(RoomId),
    "recording_id": TypeAdapter(ResourceId),
    "session_id": TypeAdapter(ResourceId),
}


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    operation_id: str
    summary: str
    tag: str
    auth: bool = True
    admin: bool = False  # admins only: 403 for anyone else, before anything is looked at
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None  # an optional JSON body
    body_limit: int = JSON_LIMIT  # bytes; a longer body is 413
    text_body: str | None = None  # media type of a required text body (WHIP's SDP)
    text_example: str | None = None  # documented example of that body
    text_check: Callable[[str], object] | None = None  # refuses a bad text body (raises)
    response: type[BaseModel] | None = None  # the JSON success body
    response_media: tuple[str, ...] = ("application/json",)  # (): no body
    success: int = 200
    other_statuses: tuple[int, ...] = ()  # further successes, same body (206)
    success_headers: tuple[str, ...] = ()
    errors: tuple[int, ...] = ()  # beyond those the row implies (400, 401, 413, 415)
    description: str = ""
    locate: Locate | None = None  # where it acts when another node owns its room
    redirect: bool = False  # 307 (not forwarded) when the request has no Origin

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"\{(\w+)\}", self.path)

    @property
    def statuses(self) -> list[int]:
        implied: set[int] = set(self.errors)
        if self.auth:
            implied.add(401)
        if self.admin:
            implied.add(403)
        if self.path_params or self.query or self.body or self.text_body:
            implied.add(400)
        if self.body or self.text_body:
            implied |= {413, 415}
        return sorted(implied)


def register(app: web.Application, routes: Iterable[Route]) -> None:
    for route in routes:
        for name in route.path_params:
            if name not in PATH_PARAMS:
                raise ValueError(f"{route.path}: no type for path parameter {name}")
        app.router.add_route(route.method, route.path, _guard(route), name=route.operation_id)


def _guard(route: Route) -> Handler:
    async def guarded(request: web.Request) -> web.StreamResponse:
        if route.auth:
            request[CALLER] = request.app[AUTH].authenticate(
                request.headers.get(hdrs.AUTHORIZATION))
            if route.admin and not request[CALLER].is_admin:
                raise Forbidden(f"only admins may call {route.operation_id}")
        for name in route.path_params:
            try:
                PATH_PARAMS[name].validate_python(request.match_info[name])
            except ValidationError as exc:
                raise invalid(exc, f"path.{name}") from exc
        if route.auth and "room_id" in route.path_params:  # 403 before a hop, 404 or 409
            request[CALLER].check_room(request.match_info["room_id"])
        if route.query is not None:
            request[QUERY] = parse_query(request, route.query)
        text: str | None = None
        if route.text_body is not None:
            # read and checked first: a bad offer claims no room and takes no hop
            text = request[TEXT] = await read_text(request, route.text_body, SDP_LIMIT)
            if route.text_check is not None:
                route.text_check(text)
        if route.locate is not None:
            moved = await elsewhere(request, route.locate, route.redirect, route.body_limit,
                                    None if text is None else text.encode())
            if moved is not None:
                return moved
        if route.body is not None:
            request[BODY] = await read_json(request, route.body, route.body_limit)
        return await route.handler(request)

    guarded.__name__ = route.operation_id
    return guarded


def caller_of(request: web.Request) -> Caller:
    return request[CALLER]


def query_of(request: web.Request, model: type[M]) -> M:
    query = request[QUERY]
    if not isinstance(query, model):
        raise TypeError(f"route table gives {type(query).__name__}, handler wants {model}")
    return query


def body_of(request: web.Request, model: type[M]) -> M | None:
    body = request[BODY]
    if body is not None and not isinstance(body, model):
        raise TypeError(f"route table gives {type(body).__name__}, handler wants {model}")
    return body


def text_of(request: web.Request) -> str:
    return request[TEXT]
