"""The OpenAPI 3.1 document, rendered from the route table and its pydantic models.

Nothing here is written by hand per route: parameters come from the path's typed ids and the
query model, bodies and responses from the same models the guard validates with, and the
error responses from the statuses a row implies. A route added to a table is documented.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from recorder.api.context import OPENAPI
from recorder.api.problems import PROBLEM_CONTENT_TYPE
from recorder.api.routing import PATH_PARAMS, Route
from recorder.api.schemas import Problem

REF_TEMPLATE = "#/components/schemas/{model}"
OPENAPI_PATH = "/api/openapi.json"
API_VERSION = "0.1.0"

HEADER_DOCS: dict[str, str] = {
    "Location": "URL of the created resource (WHIP: the session to DELETE)",
    "ETag": "Entity tag of the WHIP session",
    "Link": 'ICE servers, one per header: <url>; rel="ice-server" (RFC 9725)',
    "Accept-Post": "Media types a POST accepts: application/sdp",
    "Retry-After": "Seconds to wait before trying again",
    "WWW-Authenticate": "Bearer challenge (RFC 6750)",
    "Allow": "Methods the resource supports",
}
ERROR_HEADERS: dict[int, tuple[str, ...]] = {
    401: ("WWW-Authenticate",),
    405: ("Allow",),
    429: ("Retry-After",),
    503: ("Retry-After",),
}
NO_BODY_ERRORS = frozenset({416})  # answered by aiohttp's FileResponse itself


def build_document(routes: Sequence[Route], title: str = "Recorder") -> dict[str, Any]:
    refs, components = _schemas(routes)
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(
            route, refs, components)
    for route in routes:  # query models become parameters, not schemas of their own
        if route.query is not None:
            components.pop(refs[(route.query, "validation")]["$ref"].rsplit("/", 1)[1], None)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": API_VERSION,
            "description": "Records WebRTC rooms. Errors are RFC 9457 problem documents.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            },
        },
    }


Refs = dict[tuple[Any, JsonSchemaMode], dict[str, Any]]


def _schemas(routes: Sequence[Route]) -> tuple[Refs, dict[str, Any]]:
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [(Problem, "serialization")]
    for route in routes:
        if route.query is not None:
            wanted.append((route.query, "validation"))
        if route.body is not None:
            wanted.append((route.body, "validation"))
        if route.response is not None:
            wanted.append((route.response, "serialization"))
    unique = list(dict.fromkeys(wanted))
    refs, top = models_json_schema(unique, ref_template=REF_TEMPLATE)
    return dict(refs), dict(top.get("$defs", {}))


def _non_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query value is never JSON null: `X | None = None` documents as an optional X."""
    out = {k: v for k, v in schema.items() if k not in ("title", "anyOf")}
    options = [s for s in schema.get("anyOf", []) if s.get("type") != "null"]
    if len(options) == 1:
        out.update(options[0])
    elif options:
        out["anyOf"] = options
    if out.get("default", ...) is None:
        del out["default"]
    return out


def _parameters(route: Route, components: dict[str, Any], refs: Refs) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = []
    for name in route.path_params:
        schema = PATH_PARAMS[name].json_schema()
        params.append({"name": name, "in": "path", "required": True,
                       "description": schema.pop("description", ""), "schema": schema})
    if route.query is not None:
        component = components[refs[(route.query, "validation")]["$ref"].rsplit("/", 1)[1]]
        required = set(component.get("required", []))
        for name, prop in component.get("properties", {}).items():
            schema = _non_null(prop)
            param: dict[str, Any] = {"name": name, "in": "query", "required": name in required,
                                     "schema": schema}
            if "description" in schema:
                param["description"] = schema.pop("description")
            params.append(param)
    return params


def _response(route: Route, status: int, refs: Refs) -> dict[str, Any]:
    description = HTTPStatus(status).phrase
    if status >= 400:
        doc: dict[str, Any] = {"description": description}
        if status not in NO_BODY_ERRORS:
            doc["content"] = {PROBLEM_CONTENT_TYPE: {"schema": refs[(Problem, "serialization")]}}
        headers = ERROR_HEADERS.get(status, ())
    else:
        doc = {"description": description}
        if route.response_media:
            schema: dict[str, Any] = (
                refs[(route.response, "serialization")] if route.response is not None
                else {"type": "string"})
            doc["content"] = {media: {"schema": schema} for media in route.response_media}
        headers = route.success_headers
    if headers:
        doc["headers"] = {name: {"description": HEADER_DOCS[name], "schema": {"type": "string"}}
                          for name in headers}
    return doc


def _operation(route: Route, refs: Refs, components: dict[str, Any]) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "tags": [route.tag],
        "security": [{"bearer": []}] if route.auth else [],
    }
    if route.description:
        op["description"] = route.description
    params = _parameters(route, components, refs)
    if params:
        op["parameters"] = params
    if route.body is not None:
        op["requestBody"] = {"required": False, "content": {
            "application/json": {"schema": refs[(route.body, "validation")]}}}
    elif route.text_body is not None:
        media: dict[str, Any] = {"schema": {"type": "string"}}
        if route.text_example is not None:
            media["example"] = route.text_example
        op["requestBody"] = {"required": True, "content": {route.text_body: media}}
    statuses = sorted({route.success, *route.other_statuses, *route.statuses})
    op["responses"] = {str(status): _response(route, status, refs) for status in statuses}
    return op


async def serve(request: web.Request) -> web.StreamResponse:
    return web.json_response(request.app[OPENAPI])


ROUTE = Route("GET", OPENAPI_PATH, serve, "openapi", "This document (OpenAPI 3.1)", "meta",
              auth=False, response_media=("application/json",))
