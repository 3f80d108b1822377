"""The systemd units verify and score; recorderd speaks the notify protocol to a real socket."""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.daemon import run_daemon

REPO = Path(__file__).resolve().parents[2]
UNITS = {"recorderd.service": "recorderd.service",
         "recorder-worker@.service": "recorder-worker@1.service"}


def _analyze(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("systemd-analyze")
    assert binary, "systemd-analyze is missing (the test command installs systemd)"
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def installed_units(tmp_path: Path) -> dict[str, Path]:
    """The units as the README installs them, with ExecStart in this test's virtualenv."""
    bin_dir = Path(sys.executable).parent
    units = {}
    for source, name in UNITS.items():
        text = (REPO / "systemd" / source).read_text()
        for program in re.findall(r"/opt/recorder/bin/([\w-]+)", text):
            assert (bin_dir / program).exists(), f"{program} is not installed in {bin_dir}"
        path = tmp_path / name
        path.write_text(text.replace("/opt/recorder/bin/", f"{bin_dir}/"))
        units[name] = path
    return units


def test_units_verify_clean(installed_units: dict[str, Path]) -> None:
    for path in installed_units.values():
        result = _analyze("verify", str(path))
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stderr.strip() == "", result.stderr


def test_units_are_hardened_to_an_exposure_of_2_or_less(
    installed_units: dict[str, Path]
) -> None:
    for name, path in installed_units.items():
        result = _analyze("security", "--offline=true", "--no-pager", str(path))
        match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
        assert match, result.stdout + result.stderr
        assert float(match.group(1)) <= 2.0, f"{name}: {match.group(1)}\n{result.stdout}"


def test_notify_protocol_over_a_real_socket(redis_url: str, tmp_path: Path) -> None:
    address = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        sock.settimeout(30)
        env = {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "600000"}
        with run_daemon(redis_url, extra_env=env) as daemon:
            ready = sock.recv(4096).decode()
            assert "READY=1" in ready.splitlines()
            assert f"MAINPID={daemon.process.pid}" in ready
            # Ready means listening: the API answers now.
            with urllib.request.urlopen(daemon.url + "/healthz", timeout=5) as resp:
                assert resp.status == 200
            seen: list[str] = []
            deadline = time.monotonic() + 10
            while seen.count("WATCHDOG=1") < 3 and time.monotonic() < deadline:
                seen.extend(sock.recv(4096).decode().splitlines())
            assert seen.count("WATCHDOG=1") >= 3, seen
            assert any(line.startswith("STATUS=0 active recording") for line in seen), seen
            daemon.process.send_signal(signal.SIGTERM)
            stopping: list[str] = []
            while "STOPPING=1" not in stopping:
                stopping.extend(sock.recv(4096).decode().splitlines())
            assert daemon.process.wait(30) == 0
