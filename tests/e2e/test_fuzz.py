"""The OpenAPI-driven fuzzer against a real recorderd on a real Redis: no 5xx, ever."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.daemon import run_daemon, token

REPO = Path(__file__).resolve().parents[2]


def test_fuzzing_the_real_daemon_finds_no_server_error(redis_url: str, tmp_path: Path) -> None:
    with run_daemon(redis_url, max_per_room=1000, max_per_user=1000, max_concurrent=1000,
                    no_media_timeout_seconds=5) as daemon:
        admin = token("fuzzer", role="admin")
        result = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "run", f"{daemon.url}/api/openapi.json",
             "--header", f"Authorization: Bearer {admin}", "--checks", "not_a_server_error",
             "--max-examples", "25", "--seed", "20261122", "--workers", "1",
             "--generation-database", "none", "--no-color"],
            cwd=tmp_path, capture_output=True, text=True, timeout=480,
            env={**os.environ, "PYTHONPATH": str(REPO),
                 "SCHEMATHESIS_HOOKS": "tests.api.schemathesis_hooks"},
        )
        report = result.stdout + result.stderr
        assert result.returncode == 0, report[-6000:] + "\n" + daemon.log()[-3000:]
        assert "16 selected / 16 total" in report, report
        log = daemon.log()
        assert "Traceback" not in log, log[log.find("Traceback") - 300:][:3000]
