from __future__ import annotations

import os
from collections.abc import AsyncIterator, Generator, Iterator

import pytest
import redis.asyncio as aioredis

from recorder.rtc.ice import restrict_host_addresses
from tests.support.flush import flush_keeping_epochs
from tests.support.redis_server import redis_server


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    """With CI=true a skipped test fails: a tool a test needs (chromium, node, redis-server,
    systemd-analyze, the tus server...) that is missing must not let the run go green."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") == "true" and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true: {report.longrepr}"


@pytest.fixture(scope="session", autouse=True)
def _loopback_ice() -> None:
    """Our own aiortc peers gather on 127.0.0.1 only, like the daemon under test."""
    restrict_host_addresses(["127.0.0.1"])


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real redis-server for the whole session; tests flush it through `redis_client`."""
    with redis_server() as url:
        yield url


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_url, decode_responses=True)
    await flush_keeping_epochs(client)
    yield client
    await client.aclose()
