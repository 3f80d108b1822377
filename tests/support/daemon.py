"""Run `recorderd` as a real process, the way the README does, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from tests.support.manifests import check_manifests
from tests.support.redis_server import free_port

SECRET = "test-secret-0123456789abcdef0123456789abcdef"


def token(sub: str = "user-1", role: str = "user", rooms: list[str] | None = None,
          ttl: int = 3600, secret: str = SECRET, **claims: Any) -> str:
    """A token minted with PyJWT directly, not with the code under test."""
    payload: dict[str, Any] = {"sub": sub, "role": role, "exp": int(time.time()) + ttl, **claims}
    if rooms is not None:
        payload["rooms"] = rooms
    return jwt.encode(payload, secret, algorithm="HS256")


@dataclass
class Daemon:
    url: str
    storage: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    def headers(self, sub: str = "user-1", role: str = "user", **kw: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {token(sub, role, **kw)}"}

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def node_id(self) -> str:
        """RECORDER_NODE_ID as run_daemon sets it (unless the test overrides it)."""
        return f"test-node:{self.url.rsplit(':', 1)[1]}"


def stop_cleanly(process: subprocess.Popen[bytes], within: float, name: str,
                 log: Callable[[], str]) -> None:
    """SIGTERM a still-running process and check that it exits 0 (a clean drain)."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(within)
    except subprocess.TimeoutExpired:
        process.kill()
        code = process.wait()
    assert code == 0, f"{name} exited {code}:\n{log()[-4000:]}"


@contextmanager
def run_daemon(redis_url: str, extra_env: dict[str, str] | None = None,
               storage: Path | None = None, **settings: Any) -> Iterator[Daemon]:
    """Start recorderd on a free port with `settings` (RECORDER_* without prefix, lower case);
    `storage` (else a fresh folder) lets a restarted daemon find an earlier one's files.

    On exit it sends SIGTERM and checks that the daemon exits 0 (a clean drain).
    """
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="recorder-test-") as tmp:
        storage = storage or Path(tmp) / "recordings"
        env = {k: v for k, v in os.environ.items() if not k.startswith("RECORDER_")}
        env.update({
            "RECORDER_REDIS_URL": redis_url,
            "RECORDER_PORT": str(port),
            "RECORDER_STORAGE_DIR": str(storage),
            "RECORDER_JWT_SECRET": SECRET,
            "RECORDER_ICE_HOST_ADDRESSES": "127.0.0.1",
            "RECORDER_NODE_ID": f"test-node:{port}",
            "RECORDER_DRAIN_SECONDS": "20",
        })
        env.update({f"RECORDER_{k.upper()}": str(v) for k, v in settings.items()})
        env.update(extra_env or {})
        log_path = Path(tmp) / "recorderd.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen([sys.executable, "-m", "recorder"], env=env,
                                       stdout=log, stderr=subprocess.STDOUT)
        daemon = Daemon(f"http://127.0.0.1:{port}", storage, process, log_path)
        try:
            _wait_healthy(daemon)
            yield daemon
        finally:
            stop_cleanly(process, 40, "recorderd", daemon.log)
        check_manifests(storage)  # every manifest the daemon wrote follows the schema


HEALTHY_SECONDS = 60.0  # a safety net: recorderd and its room workers boot together


def _wait_healthy(daemon: Daemon) -> None:
    deadline = time.monotonic() + HEALTHY_SECONDS
    while True:
        if daemon.process.poll() is not None:
            raise RuntimeError(f"recorderd exited early:\n{daemon.log()[-4000:]}")
        try:
            with urllib.request.urlopen(daemon.url + "/healthz", timeout=1) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"recorderd did not become healthy:\n{daemon.log()[-4000:]}")
        time.sleep(0.1)
