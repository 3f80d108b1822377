from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from recorder.api.app import build_app
from recorder.api.auth import Authenticator, mint_token
from recorder.api.metrics import Metrics
from recorder.config.settings import Settings
from tests.api.fakes import FakeService

SECRET = "api-test-secret-" + "0123456789abcdef" * 4
ALLOWED_ORIGIN = "https://app.example.com"

Client = TestClient[web.Request, web.Application]


def token(sub: str = "alice", role: str | None = None, rooms: Iterable[str] | None = None,
          ttl: int = 3600) -> str:
    return mint_token(SECRET, sub=sub, role=role, rooms=rooms, ttl_seconds=ttl)


def bearer(sub: str = "alice", role: str | None = None,
           rooms: Iterable[str] | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(sub, role, rooms)}"}


async def problem_of(response: ClientResponse, status: int) -> dict[str, Any]:
    """The RFC 9457 body of an error answer, after checking its shape."""
    body = await response.text()
    assert response.status == status, body
    assert response.content_type == "application/problem+json", body
    problem: dict[str, Any] = json.loads(body)
    assert problem["status"] == status
    assert problem["type"].startswith("urn:recorder:problem:")
    assert isinstance(problem["title"], str)
    assert problem["title"]
    assert isinstance(problem["detail"], str)
    assert problem["detail"]
    return problem


def settings_of(**values: Any) -> Settings:
    """Settings from these values only (the environment of the test run is not read)."""
    return Settings.model_validate(values)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return settings_of(
        jwt_secret=SECRET,
        storage_dir=tmp_path,
        cors_origins=[ALLOWED_ORIGIN],
        ice_servers=[
            {"urls": "stun:stun.example.net:3478"},
            {"urls": ["turn:turn.example.net:3478?transport=udp",
                      "turns:turn.example.net:5349"],
             "username": "user", "credential": 'pa"ss'},
        ],
    )


@pytest.fixture
def service(tmp_path: Path) -> FakeService:
    return FakeService(storage=tmp_path)


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
async def client(settings: Settings, service: FakeService, metrics: Metrics
                 ) -> AsyncIterator[Client]:
    app = build_app(service, Authenticator(settings), settings, metrics)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client
