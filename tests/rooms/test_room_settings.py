"""Settings of earlier releases for room processes stop start-up with a line naming what
replaced them, whether they come from the environment or the config file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

START_SECONDS = 60  # a safety net: a refused start-up ends at once


def start_up(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RECORDER_")}
    clean.update({"RECORDER_STORAGE_DIR": str(tmp_path / "recordings"), "RECORDER_PORT": "0",
                  **env})
    return subprocess.run([sys.executable, "-m", "recorder"], env=clean, capture_output=True,
                          text=True, timeout=START_SECONDS, check=False)


@pytest.mark.parametrize(("old", "value", "new"), [
    ("ROOM_PROCESSES", "false", "RECORDER_ROOM_ISOLATION"),
    ("ROOMS_PER_PROCESS", "4", "RECORDER_ROOM_WORKERS"),
])
def test_an_old_room_setting_in_the_environment_stops_start_up(
        tmp_path: Path, old: str, value: str, new: str) -> None:
    done = start_up({f"RECORDER_{old}": value}, tmp_path)
    assert done.returncode != 0
    assert f"RECORDER_{old} is gone: use {new}" in done.stderr, done.stderr


def test_an_old_room_setting_in_the_config_file_stops_start_up(tmp_path: Path) -> None:
    config = tmp_path / "recorder.toml"
    config.write_text("rooms_per_process = 2\n")
    done = start_up({"RECORDER_CONFIG": str(config)}, tmp_path)
    assert done.returncode != 0
    assert "RECORDER_ROOMS_PER_PROCESS is gone: use RECORDER_ROOM_WORKERS" in done.stderr, \
        done.stderr
