"""Real servers for the upload tests: moto's S3 server, a part-counting proxy in front of it,
and `recorder-worker` processes.

    with MotoServer() as s3:                # python -m moto.server on a free loopback port
        s3.create_bucket("recordings")
        s3.stop(); s3.start()               # a target that is down for a while (same port)
    async with PartProxy(s3.url, delay=0.3) as proxy:   # every UploadPart logged, slowed
        ...
    with run_worker(redis_url, node_id, storage, s3_endpoint_url=proxy.url) as worker:
        worker.kill()                       # SIGKILL, as a crash
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import aiohttp
import boto3
from aiohttp import web

from tests.support.daemon import stop_cleanly
from tests.support.redis_server import free_port
from tests.support.serve import start_app

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}
BUCKET = "recordings"
T = TypeVar("T")
START_TIMEOUT = 60.0  # moto imports a lot; a hang guard on a busy machine, not a measure


def wait_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{log.read_text()[-3000:]}") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not listen:\n{log.read_text()[-3000:]}") from None
            time.sleep(0.1)


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    """Terminate a test server, killing it when it does not exit within 10 s."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class MotoServer:
    """moto in server mode: S3 over real HTTP on loopback. State lives in its memory, so a
    stop loses every bucket and upload (as an S3 outage with data loss would)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._dir = tempfile.TemporaryDirectory(prefix="moto-")
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = Path(self._dir.name) / "moto.log"
        with log.open("ab") as out:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                env={**os.environ, **AWS_ENV}, stdout=out, stderr=subprocess.STDOUT)
        wait_port(self.port, self._process, log)

    def stop(self) -> None:
        stop_process(self._process)
        self._process = None

    def client(self) -> Any:
        return boto3.client("s3", endpoint_url=self.url, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def create_bucket(self, name: str = BUCKET) -> None:
        self.client().create_bucket(Bucket=name)

    def __enter__(self) -> MotoServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._dir.cleanup()


@dataclass
class PartRequest:
    part_number: int
    upload_id: str
    status: int
    at: float  # when the request arrived


class PartProxy:
    """A reverse proxy in front of an S3 server that logs every UploadPart (and can slow
    each one down), so a test sees exactly which parts were sent, and when."""

    def __init__(self, upstream: str, delay: float = 0.0) -> None:
        self.upstream = upstream
        self.delay = delay
        self.parts: list[PartRequest] = []
        self.in_flight = 0  # requests received and not answered yet
        self.down = False  # answer 503 to everything, as an unavailable endpoint would
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    def sent(self, status: int = 200) -> list[int]:
        return [p.part_number for p in self.parts if p.status == status]

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        arrived = time.monotonic()
        self.in_flight += 1
        try:
            return await self._handle(request, arrived)
        finally:
            self.in_flight -= 1

    async def _handle(self, request: web.Request, arrived: float) -> web.StreamResponse:
        body = await request.read()
        if self.down:
            return web.Response(status=503, text="down")
        part = request.query.get("partNumber")
        if part is not None and request.method == "PUT" and self.delay:
            await asyncio.sleep(self.delay)
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() not in ("host", "content-length", "transfer-encoding")}
        try:
            return await self._relay(request, headers, body, part, arrived)
        except aiohttp.ClientError as exc:  # the server behind is down
            return web.Response(status=502, text=f"upstream: {exc}")

    async def _relay(self, request: web.Request, headers: dict[str, str], body: bytes,
                     part: str | None, arrived: float) -> web.StreamResponse:
        assert self._session is not None
        async with self._session.request(request.method, self.upstream + request.path_qs,
                                         headers=headers, data=body) as upstream:
            payload = await upstream.read()
            if part is not None and request.method == "PUT":
                self.parts.append(PartRequest(int(part), request.query.get("uploadId", ""),
                                              upstream.status, arrived))
            out = {k: v for k, v in upstream.headers.items()
                   if k.lower() not in ("content-length", "transfer-encoding", "connection",
                                        "content-encoding", "server", "date")}
            if request.method == "HEAD":  # no body, but the object's length must get through
                response = web.StreamResponse(status=upstream.status, headers=out)
                response.content_length = upstream.content_length
                await response.prepare(request)
                return response
            return web.Response(status=upstream.status, body=payload, headers=out)

    async def __aenter__(self) -> PartProxy:
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._session = aiohttp.ClientSession(auto_decompress=False)
        self._runner, self.url = await start_app(app)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()


def worker_env(redis_url: str, node_id: str, storage: Path, **settings: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECORDER_")}
    env.update(AWS_ENV)
    env.update({
        "RECORDER_REDIS_URL": redis_url,
        "RECORDER_NODE_ID": node_id,
        "RECORDER_STORAGE_DIR": str(storage),
        "RECORDER_S3_BUCKET": BUCKET,
    })
    env.update({f"RECORDER_{k.upper()}": str(v) for k, v in settings.items()})
    return env


@asynccontextmanager
async def off_loop(manager: AbstractContextManager[T]) -> AsyncIterator[T]:
    """Leave a blocking context manager (stopping a process) in a thread, so that servers
    running in this event loop (the proxy) keep answering the process while it stops."""
    value = manager.__enter__()
    try:
        yield value
    except BaseException as exc:
        if not await asyncio.to_thread(manager.__exit__, type(exc), exc, exc.__traceback__):
            raise
    else:
        await asyncio.to_thread(manager.__exit__, None, None, None)


@contextmanager
def run_worker(redis_url: str, node_id: str, storage: Path, log_dir: Path,
               **settings: Any) -> Iterator[Worker]:
    """`python -m workers` until the block ends; then SIGTERM, and it must exit 0."""
    log_path = log_dir / f"worker-{time.monotonic_ns()}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "workers"],
                                   env=worker_env(redis_url, node_id, storage, **settings),
                                   stdout=log, stderr=subprocess.STDOUT)
    worker = Worker(process, log_path)
    try:
        yield worker
    finally:
        stop_cleanly(process, 30, "recorder-worker", worker.log)
