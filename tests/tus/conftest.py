from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.cloudflare_stream import CloudflareDouble
from tests.support.tus_server import TusServer, tus_available


@pytest.fixture(scope="module")
def tus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TusServer]:
    reason = tus_available()
    if reason is not None:
        pytest.skip(reason)
    with TusServer(tmp_path_factory.mktemp("tus")) as server:
        yield server


@pytest.fixture
async def cloudflare(tus_server: TusServer) -> AsyncIterator[CloudflareDouble]:
    async with CloudflareDouble(tus_server.url) as double:
        yield double


@pytest.fixture
def storage(tmp_path: Path) -> Path:
    path = tmp_path / "recordings"
    path.mkdir()
    return path
