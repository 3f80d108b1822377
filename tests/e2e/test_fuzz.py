"""The OpenAPI-driven fuzzer against a real recorderd on a real Redis: no 5xx, ever."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.support.daemon import run_daemon, token
from tests.support.openapi import fuzzable_operations

REPO = Path(__file__).resolve().parents[2]


def test_fuzzing_the_real_daemon_finds_no_server_error(redis_url: str, tmp_path: Path) -> None:
    with run_daemon(redis_url, max_per_room=1000, max_per_user=1000, max_concurrent=1000,
                    cpu_capacity=1000, no_media_timeout_seconds=5) as daemon:
        admin = token("fuzzer", role="admin")
        # A start whose generated pull source cannot be reached answers the documented 502.
        config = tmp_path / "schemathesis.toml"
        config.write_text('[[operations]]\ninclude-operation-id = "startRecording"\n'
                          'checks.not_a_server_error.expected-statuses = '
                          '["2XX", "3XX", "4XX", "502"]\n')
        result = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run",
             f"{daemon.url}/api/openapi.json",
             "--header", f"Authorization: Bearer {admin}", "--checks", "not_a_server_error",
             "--max-examples", "25", "--seed", "20261122", "--workers", "1",
             "--generation-database", "none", "--no-color"],
            cwd=tmp_path, capture_output=True, text=True, timeout=480,
            env={**os.environ, "PYTHONPATH": str(REPO),
                 "SCHEMATHESIS_HOOKS": "tests.api.schemathesis_hooks"},
        )
        report = result.stdout + result.stderr
        with urllib.request.urlopen(f"{daemon.url}/api/openapi.json") as resp:
            operations = fuzzable_operations(json.load(resp))
        assert result.returncode == 0, report[-6000:] + "\n" + daemon.log()[-3000:]
        assert f"{operations} selected / {operations} total" in report, report
        log = daemon.log()
        assert "Traceback" not in log, log[log.find("Traceback") - 300:][:3000]
