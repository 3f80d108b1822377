"""Upload throughput of the worker against a plain streaming upload of the same bytes.

Not a test (no pass/fail): ``python -m bench.upload [--size-mib 1024] [--repeat 2]``.

Two local servers on loopback: moto's S3 server and the official tus server (@tus/server
with @tus/file-store, Node). For each, one file is sent

- by the bound: one plain streaming request of the whole file (S3: a single PUT Object;
  tus: creation, then a single PATCH of every byte), read in 1 MiB blocks;
- by the worker's own code: `workers.s3.S3Target` (multipart, Content-MD5 per part, the
  upload record kept in a store) and `workers.tus.TusClient` (RECORDER_TUS_CHUNK_BYTES
  chunks, each streamed from the file).

Each run is a separate process, so its peak RSS is its own. The ratio is the bound's time
over ours (1.0: as fast as the bound; higher: faster). Results go to stdout as a Markdown
table; bench/RESULTS.md records them with the machine they ran on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from recorder.config.settings import Settings
from recorder.core.models import FileInfo
from recorder.state import KeySpace, connect
from workers.retry import RetryPolicy
from workers.s3 import S3Target
from workers.target import FileJob
from workers.tus import TusClient
from workers.upload_record import UploadRecord

MIB = 1 << 20
BLOCK = MIB
BUCKET = "bench"


def write_file(path: Path, size: int) -> str:
    from tests.support.finished_recordings import write_random

    return write_random(path, size, seed=20261122)


async def _blocks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as f:
        while block := await asyncio.to_thread(f.read, BLOCK):
            yield block


# ---- one run, in its own process -----------------------------------------------------------

async def s3_bound(path: Path, size: int, url: str) -> float:
    started = time.perf_counter()
    async with aiohttp.ClientSession() as http, http.put(
            f"{url}/{BUCKET}/bound-{time.monotonic_ns()}", data=_blocks(path),
            headers={"Content-Length": str(size)}) as response:
        assert response.status == 200, await response.text()
    return time.perf_counter() - started


COMPLETION: list[float] = []  # seconds moto spent in CompleteMultipartUpload (s3-ours)


async def s3_ours(path: Path, size: int, url: str, sha256: str) -> float:

    settings = Settings.model_validate({"s3_bucket": BUCKET, "s3_endpoint_url": url,
                                        "s3_region": "us-east-1"})
    redis = await connect("embedded")
    target = S3Target(settings, RetryPolicy())
    info = FileInfo(name=path.name, kind="composite", size=size, sha256=sha256)
    rid = f"bench-{time.monotonic_ns()}"
    job = FileJob(recording_id=rid, room_id="bench", path=path, info=info,
                  record=UploadRecord(redis, KeySpace(), rid, path.name, 3600),
                  on_progress=lambda _: None)
    complete = target._client.complete_multipart_upload

    def timed_complete(**kwargs: Any) -> Any:
        """moto concatenates the parts in Python here; S3 does it server-side in moments."""
        began = time.perf_counter()
        try:
            return complete(**kwargs)
        finally:
            COMPLETION.append(time.perf_counter() - began)

    target._client.complete_multipart_upload = timed_complete
    started = time.perf_counter()  # the client is made once per worker, not per upload
    try:
        stored = await target.store(job)
        assert stored.s3_key is not None
    finally:
        await target.close()
    return time.perf_counter() - started


async def tus_bound(path: Path, size: int, url: str) -> float:
    started = time.perf_counter()
    async with aiohttp.ClientSession() as http:
        async with http.post(url, headers={"Tus-Resumable": "1.0.0",
                                           "Upload-Length": str(size)}) as created:
            assert created.status == 201, await created.text()
            location = created.headers["Location"]
        async with http.patch(location, data=_blocks(path), headers={
                "Tus-Resumable": "1.0.0", "Upload-Offset": "0", "Content-Length": str(size),
                "Content-Type": "application/offset+octet-stream"}) as response:
            assert response.status == 204, await response.text()
            assert int(response.headers["Upload-Offset"]) == size
    return time.perf_counter() - started


async def tus_ours(path: Path, size: int, url: str) -> float:

    chunk = Settings.model_validate({}).tus_chunk_bytes

    async def confirmed(_: int) -> None:
        return None

    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=120)
    started = time.perf_counter()
    async with aiohttp.ClientSession(timeout=timeout) as http:
        client = TusClient(http, RetryPolicy(), chunk)
        created = await client.create(url, size, {"name": path.name}, "bench")
        offset = await client.send(created.url, path, size, 0, "bench", confirmed)
        assert offset == size
    return time.perf_counter() - started


def run_one(kind: str, path: Path, url: str, sha256: str) -> dict[str, float]:
    """The child: one upload, timed; peak RSS from the kernel's own accounting."""
    size = path.stat().st_size
    runs = {"s3-bound": lambda: s3_bound(path, size, url),
            "s3-ours": lambda: s3_ours(path, size, url, sha256),
            "tus-bound": lambda: tus_bound(path, size, url),
            "tus-ours": lambda: tus_ours(path, size, url)}
    seconds = asyncio.run(runs[kind]())
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": seconds, "peak_rss_mib": peak_kib / 1024,
            "completion_seconds": sum(COMPLETION)}


# ---- the driver ----------------------------------------------------------------------------

def measure(kind: str, path: Path, url: str, sha256: str) -> dict[str, float]:
    from tests.support.upload_servers import AWS_ENV

    out = subprocess.run([sys.executable, "-m", "bench.upload", "--child", kind, str(path), url,
                          sha256], capture_output=True, text=True,
                         env={**os.environ, **AWS_ENV})
    if out.returncode != 0:
        raise RuntimeError(f"{kind} failed:\n{out.stderr[-3000:]}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.upload", description=__doc__)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--child", nargs=4, metavar=("KIND", "FILE", "URL", "SHA256"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, file, url, sha256 = args.child
        print(json.dumps(run_one(kind, Path(file), url, sha256)))
        return 0

    from tests.support.tus_server import TusServer
    from tests.support.upload_servers import MotoServer

    size = args.size_mib * MIB
    results: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-upload-") as tmp:
        work = Path(tmp)
        path = work / "recording.webm"
        print(f"writing a {args.size_mib} MiB file ...", file=sys.stderr)
        sha256 = write_file(path, size)
        with MotoServer() as s3, TusServer(work) as tus:
            s3.create_bucket(BUCKET)
            client: Any = s3.client()
            for _ in range(args.repeat):  # interleaved, so drift hits both sides alike
                for kind, url in (("s3-bound", s3.url), ("s3-ours", s3.url),
                                  ("tus-bound", tus.url), ("tus-ours", tus.url)):
                    result = measure(kind, path, url, sha256)
                    results.setdefault(kind, []).append(result)
                    print(f"{kind}: {result['seconds']:.2f} s, peak RSS "
                          f"{result['peak_rss_mib']:.0f} MiB", file=sys.stderr)
                    if kind.startswith("s3"):  # moto keeps objects in memory: free them
                        for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
                            client.delete_object(Bucket=BUCKET, Key=item["Key"])
                    else:
                        for stored in tus.directory.iterdir():
                            stored.unlink()
    print(report(results, args.size_mib))
    return 0


def report(results: dict[str, list[dict[str, float]]], size_mib: int) -> str:
    def median(kind: str, key: str) -> float:
        return statistics.median(r[key] for r in results[kind])

    lines = [f"{size_mib} MiB file, median of {len(results['s3-bound'])} runs each "
             f"({platform.python_version()}):", "",
             "| target | bound (plain streaming request) | worker | ratio (bound time / worker "
             "time) | of which the server's multipart completion | ratio without it "
             "| peak RSS bound / worker |", "|---|---|---|---|---|---|---|"]
    for target in ("s3", "tus"):
        bound, ours = median(f"{target}-bound", "seconds"), median(f"{target}-ours", "seconds")
        completion = median(f"{target}-ours", "completion_seconds")
        lines.append(
            f"| {target} | {bound:.2f} s ({size_mib / bound:.0f} MiB/s) | {ours:.2f} s "
            f"({size_mib / ours:.0f} MiB/s) | {bound / ours:.2f} | "
            + (f"{completion:.2f} s | {bound / (ours - completion):.2f} | " if completion
               else "- | - | ")
            + f"{median(f'{target}-bound', 'peak_rss_mib'):.0f} MiB / "
            f"{median(f'{target}-ours', 'peak_rss_mib'):.0f} MiB |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
