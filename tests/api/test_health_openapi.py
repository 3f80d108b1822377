"""Probes, metrics and the OpenAPI document, as an operator and an API client read them."""

from __future__ import annotations

from aiohttp import web
from openapi_spec_validator import validate
from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import Client, bearer, problem_of
from tests.api.fakes import FakeService

START = "/api/webrtc/rooms/room-1/recording/start"


async def test_liveness_and_readiness(client: Client, service: FakeService) -> None:
    assert await (await client.get("/healthz")).json() == {"status": "ok"}
    assert await (await client.get("/readyz")).json() == {"status": "ready"}
    service.not_ready = ["store: connection refused", "draining"]
    response = await client.get("/readyz")
    problem = await problem_of(response, 503)
    assert problem["reasons"] == ["store: connection refused", "draining"]
    assert "Retry-After" in response.headers
    assert (await client.get("/healthz")).status == 200


async def test_metrics_count_requests_starts_and_refusals(client: Client) -> None:
    assert (await client.post(START, headers=bearer())).status == 201
    assert (await client.post(START, headers=bearer())).status == 429
    assert (await client.get("/no/such/route")).status == 404
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.content_type == "text/plain"
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(await response.text())
        for s in family.samples
    }
    assert all(name.startswith("recorder_") for name, _ in samples)
    route = "/api/webrtc/rooms/{room_id}/recording/start"

    def requests(method: str, path: str, status: str) -> float:
        labels = (("method", method), ("route", path), ("status", status))
        return samples.get(("recorder_http_requests_total", labels), 0.0)

    assert requests("POST", route, "201") == 1
    assert requests("POST", route, "429") == 1
    assert requests("GET", "unmatched", "404") == 1
    assert samples[("recorder_recordings_started_total",
                    (("format", "webm"), ("quality", "medium")))] == 1
    assert samples[("recorder_admissions_refused_total", (("limit", "max_per_room"),))] == 1
    assert ("recorder_active_recordings", ()) in samples


async def test_openapi_is_valid_and_documents_every_route(client: Client) -> None:
    response = await client.get("/api/openapi.json")
    assert response.status == 200
    document = await response.json()
    validate(document)  # raises on anything that is not valid OpenAPI 3.1
    assert document["openapi"].startswith("3.1")

    app = client.app
    assert isinstance(app, web.Application)
    registered = {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes() if route.resource is not None
    }
    documented = {(method, path) for path, ops in document["paths"].items() for method in ops}
    assert registered == documented

    schemas = document["components"]["schemas"]
    assert schemas["StartRequest"]["additionalProperties"] is False
    start = document["paths"][START.replace("room-1", "{room_id}")]["post"]
    assert start["security"] == [{"bearer": []}]
    assert {"400", "401", "403", "413", "415", "429", "503"} <= set(start["responses"])
    problem = start["responses"]["429"]["content"]["application/problem+json"]["schema"]
    assert problem == {"$ref": "#/components/schemas/Problem"}
    assert "Retry-After" in start["responses"]["429"]["headers"]
    assert document["paths"]["/healthz"]["get"]["security"] == []
