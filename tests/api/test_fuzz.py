"""Property-based fuzzing of the whole API from its own OpenAPI document (schemathesis).

The schemathesis CLI runs against a real server on loopback (the app with the in-memory
service), through every phase (examples, coverage, fuzzing, stateful chains built from
the document's inferred links), with a fixed seed and at most 30 cases per operation.
Besides "no 5xx", it checks that every status, content type, header and body the server
answers is the one the document declares. Three checks are left out on purpose:
`positive_data_acceptance` (a query value that disagrees with the body is valid per schema
but refused by contract, and WHIP PATCH is documented as always 405),
`allow_header_conformance` (`/recording/start` also matches the DELETE route of a recording
whose id is "start", so Allow truthfully lists DELETE there) and `use_after_free` (DELETE
cancels a recording, which stays readable with status `cancelled` until its state expires).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from aiohttp.test_utils import TestServer

from recorder.api.app import all_routes, build_app
from recorder.api.auth import Authenticator, mint_token
from recorder.api.metrics import Metrics
from recorder.api.openapi import build_document
from recorder.config.settings import Settings
from recorder.core.access import Caller
from recorder.core.models import RecordingState
from recorder.core.paging import Page, PageRequest
from tests.api.conftest import SECRET
from tests.api.fakes import FakeService
from tests.support.openapi import fuzzable_operations

REPO = Path(__file__).resolve().parents[2]
EXCLUDED_CHECKS = "positive_data_acceptance,allow_header_conformance,use_after_free"


async def _fuzz(service: FakeService, settings: Settings, cwd: Path, *args: str
                ) -> tuple[int, str]:
    """Serve the app on loopback and run the schemathesis CLI against its document."""
    app = build_app(service, Authenticator(settings), settings, Metrics())
    token = mint_token(SECRET, "fuzzer", role="admin", ttl_seconds=3600)
    async with TestServer(app, host="127.0.0.1") as server:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "schemathesis.cli", "run",
            str(server.make_url("/api/openapi.json")),
            "--header", f"Authorization: Bearer {token}",
            "--seed", "20261121", "--workers", "1", "--generation-database", "none",
            "--no-color", *args,
            cwd=cwd,
            env={**os.environ, "PYTHONPATH": str(REPO),
                 "SCHEMATHESIS_HOOKS": "tests.api.schemathesis_hooks"},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


async def test_fuzzing_from_the_openapi_document_finds_no_fault(
    settings: Settings, tmp_path: Path
) -> None:
    service = FakeService(storage=tmp_path, max_per_room=10_000)
    code, report = await _fuzz(
        service, settings, tmp_path,
        "--checks", "all", "--exclude-checks", EXCLUDED_CHECKS, "--max-examples", "30")
    assert code == 0, report
    operations = fuzzable_operations(build_document(all_routes()))
    assert f"{operations} selected / {operations} total" in report, report
    # It reached the service: recordings were started and WHIP offers answered.
    assert service.states, report
    assert service.publishes > 0, report


async def test_the_fuzzer_reports_a_server_fault(settings: Settings, tmp_path: Path) -> None:
    """The run above would notice a 5xx: a service bug behind one route fails the run."""
    service = FakeService(storage=tmp_path)

    async def broken(caller: Caller, room_id: str, page: PageRequest) -> Page[RecordingState]:
        raise RuntimeError("bug")

    service.list_room = broken  # type: ignore[method-assign]
    code, report = await _fuzz(
        service, settings, tmp_path, "--checks", "not_a_server_error",
        "--include-operation-id", "listRoomRecordings", "--max-examples", "3",
        "--phases", "examples,fuzzing")
    assert code != 0, report
    assert "Server error" in report, report
