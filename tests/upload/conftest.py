from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.upload_servers import MotoServer


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    """One moto S3 server per test module, with the bucket the workers use."""
    with MotoServer() as server:
        server.create_bucket()
        yield server


@pytest.fixture
def storage(tmp_path: Path) -> Path:
    path = tmp_path / "recordings"
    path.mkdir()
    return path
