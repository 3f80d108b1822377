"""Real redis-server processes a test can kill, restart (with or without their data), and
arrange as a primary with a replica watched by sentinels: the store's faults, on loopback."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.redis_server import free_port

START_SECONDS = 10.0  # a safety net for a process that never listens


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed (scripts/test installs it)")
    return found


def _wait_listening(port: int, proc: subprocess.Popen[bytes], name: str) -> None:
    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{name} on port {port} did not start") from None
            time.sleep(0.05)


class RedisProcess:
    """One redis-server on a fixed loopback port (kept across restarts) and its own folder."""

    def __init__(self, folder: Path, *extra: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.folder = folder
        self.extra = list(extra)
        self.proc: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [_binary("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.folder), *self.extra],
            stdout=(self.folder / "redis.log").open("ab"), stderr=subprocess.STDOUT)
        _wait_listening(self.port, self.proc, "redis-server")

    def kill(self) -> None:
        """SIGKILL: whatever was not persisted is gone (nothing is, by default)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def restart_empty(self) -> None:
        self.kill()
        for dump in self.folder.glob("*.rdb"):
            dump.unlink()
        self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@contextmanager
def redis_process(*extra: str) -> Iterator[RedisProcess]:
    with tempfile.TemporaryDirectory(prefix="recorder-redis-") as tmp:
        server = RedisProcess(Path(tmp), *extra)
        server.start()
        try:
            yield server
        finally:
            server.stop()


class SentinelProcess:
    """One redis-sentinel watching `master` at `primary_port` under the name `name`."""

    def __init__(self, folder: Path, name: str, primary_port: int) -> None:
        self.port = free_port()
        folder.mkdir(parents=True, exist_ok=True)
        self.config = folder / "sentinel.conf"
        self.config.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {folder}\n"
            f"sentinel monitor {name} 127.0.0.1 {primary_port} 2\n"
            f"sentinel down-after-milliseconds {name} 1000\n"
            f"sentinel failover-timeout {name} 5000\n"
            f"sentinel parallel-syncs {name} 1\n")
        self.proc = subprocess.Popen([_binary("redis-sentinel"), str(self.config)],
                                     stdout=(folder / "sentinel.log").open("ab"),
                                     stderr=subprocess.STDOUT)
        _wait_listening(self.port, self.proc, "redis-sentinel")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@contextmanager
def sentinel_group(name: str = "recorder", sentinels: int = 3
                   ) -> Iterator[tuple[RedisProcess, RedisProcess, list[SentinelProcess]]]:
    """A primary, one replica of it and `sentinels` sentinels (quorum 2); yields them."""
    with tempfile.TemporaryDirectory(prefix="recorder-sentinel-") as tmp:
        root = Path(tmp)
        primary = RedisProcess(root / "primary")
        primary.start()
        replica = RedisProcess(root / "replica", "--replicaof", "127.0.0.1",
                               str(primary.port))
        replica.start()
        watchers: list[SentinelProcess] = []
        try:
            for i in range(sentinels):
                watchers.append(SentinelProcess(root / f"sentinel-{i}", name, primary.port))
            yield primary, replica, watchers
        finally:
            for watcher in watchers:
                watcher.stop()
            replica.stop()
            primary.stop()


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (the certificate is its own CA)."""
    cert, key = folder / "redis.crt", folder / "redis.key"
    subprocess.run([_binary("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


@contextmanager
def tls_redis_process() -> Iterator[tuple[RedisProcess, Path]]:
    """redis-server answering TLS only; yields it and the certificate clients trust."""
    with tempfile.TemporaryDirectory(prefix="recorder-redis-tls-") as tmp:
        cert, key = self_signed_certificate(Path(tmp))
        port = free_port()
        server = RedisProcess(Path(tmp) / "data", "--port", "0", "--tls-port", str(port),
                              "--tls-cert-file", str(cert), "--tls-key-file", str(key),
                              "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no",
                              port=port)
        server.start()
        try:
            yield server, cert
        finally:
            server.stop()
