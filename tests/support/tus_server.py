"""The official tus server (@tus/server + @tus/file-store, Node) on a free loopback port.

    with TusServer(tmp_path) as tus:
        tus.url            # http://127.0.0.1:PORT/files/ : the creation endpoint
        tus.stored(id)     # the bytes it holds for an upload (file-store keeps one file each)
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.support.redis_server import free_port
from tests.support.upload_servers import stop_process, wait_port

TUS_DIR = Path(__file__).resolve().parent.parent / "tus"  # server.mjs and its node_modules


def tus_available() -> str | None:
    """Why the tus server cannot run here, or None when it can."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node and npm are missing"
    return None


def ensure_node_modules() -> None:
    """Install @tus/server from the lockfile once (the test command usually did it)."""
    if (TUS_DIR / "node_modules" / "@tus" / "server").is_dir():
        return
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=TUS_DIR, check=True,
                   stdout=subprocess.DEVNULL)


class TusServer:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/files/"
        self.directory = workdir / "tus-store"
        self._log = workdir / "tus-server.log"
        self._process: subprocess.Popen[bytes] | None = None

    def stored(self, upload_id: str) -> Path:
        return self.directory / upload_id

    def __enter__(self) -> TusServer:
        ensure_node_modules()
        self.directory.mkdir(parents=True, exist_ok=True)
        with self._log.open("wb") as log:
            self._process = subprocess.Popen(
                ["node", str(TUS_DIR / "server.mjs"), str(self.port), str(self.directory)],
                cwd=TUS_DIR, stdout=log, stderr=subprocess.STDOUT)
        wait_port(self.port, self._process, self._log)
        return self

    def __exit__(self, *exc: object) -> None:
        stop_process(self._process)
