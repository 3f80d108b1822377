"""The store fails again and again while rooms record: does anything get lost?

Not a test (run by hand, never in CI): ``python -m bench.chaos --minutes 30``. One real
``recorderd`` records four rooms in rotation (each room: start, record 10 to 30 s, stop,
again) with a WHIP publisher in every room, uploads to S3 (moto) through a
``recorder-worker`` and sends webhooks to a local receiver. Meanwhile, at random:

- Redis is SIGKILLed every 2 to 5 minutes (``--redis-every``), stays down 1 to 10 s, and
  comes back with its data (append-only file) or without it (half of the time each);
- the worker is SIGKILLed every 1 to 3 minutes (``--worker-every``) and started again;
- a prober tries a second start in a busy room about every second (max_per_room is 1) and
  the four rooms share max_concurrent 3, so every admission is contested.

After the run the rotation stops, everything still running is stopped, and the bench waits
for every recording to finish (``--settle`` seconds at most). It counts, and exits 1 unless
all are zero:

- recordings lost: admitted (201) but not `completed` in the end (404, stuck, or failed;
  the prober's, stopped at once, may end `cancelled`);
- over-admissions: a 201 received while at least the limit's number of other recordings
  (in the room for max_per_room, anywhere for max_concurrent) had not been asked to stop and
  were, by their final state, still running then;
- webhooks lost: `recording.started`, `recording.stopped` or `recording.complete` of a
  completed recording never delivered; webhooks delivered more than twice (by webhook id);
- uploads not done: completed recordings whose upload is not `uploaded` or whose file is not
  in the bucket.

Results go in bench/RESULTS.md ("Store faults").
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import machine
from tests.support.daemon import Daemon, run_daemon
from tests.support.publisher import WhipPublisher
from tests.support.redis_processes import RedisProcess
from tests.support.upload_servers import BUCKET, MotoServer, worker_env
from tests.support.webhook_receiver import SECRET, Receiver

ROOMS = 4
MAX_CONCURRENT = 3
EXPECTED_EVENTS = ("recording.started", "recording.stopped", "recording.complete")
PERSISTENT = ("--appendonly", "yes", "--appendfsync", "always")


@dataclass
class Admitted:
    recording_id: str
    room: str
    admitted_at: float  # unix time the 201 arrived
    stop_sent_at: float | None = None
    final: dict[str, Any] | None = None
    probe: bool = False  # the prober's: stopped at once, so it ends `cancelled`

    @property
    def lost(self) -> bool:
        """Not where it should have ended: `completed` (a prober's: any final status)."""
        status = (self.final or {}).get("status")
        if self.probe:
            return status not in ("completed", "failed", "cancelled")
        return status != "completed"


@dataclass
class Tally:
    admitted: list[Admitted] = field(default_factory=list)
    refusals: Counter[str] = field(default_factory=Counter)
    redis_kills: int = 0
    redis_empty: int = 0
    worker_kills: int = 0

    def running(self, at: float, room: str | None = None) -> list[Admitted]:
        """Recordings not asked to stop at `at` (by the client) and, finally, still running
        then (their stop time, by their state, after `at`)."""
        found = []
        for rec in self.admitted:
            if rec.admitted_at >= at or (room is not None and rec.room != room):
                continue
            if rec.stop_sent_at is not None and rec.stop_sent_at <= at:
                continue
            stopped = _stopped_at(rec.final)
            if stopped is not None and stopped <= at:
                continue
            found.append(rec)
        return found


def _stopped_at(state: dict[str, Any] | None) -> float | None:
    if not state:
        return None
    for key in ("stopped_at", "processed_at"):
        if state.get(key):
            return datetime.fromisoformat(str(state[key])).timestamp()
    return None


class Worker:
    """recorder-worker, killed and started again by the chaos."""

    def __init__(self, redis_url: str, node_id: str, storage: Path, log_dir: Path,
                 settings: dict[str, Any]) -> None:
        self._env = worker_env(redis_url, node_id, storage, **settings)
        self._log = log_dir / "worker.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self._log.open("ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "workers"], env=self._env,
                                            stdout=log, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)


async def answer(http: aiohttp.ClientSession, method: str, url: str,
                 headers: dict[str, str], **kw: Any) -> tuple[int, dict[str, Any]]:
    """The request, tried again while it answers 503 (the store is away or restoring)."""
    while True:
        try:
            async with http.request(method, url, headers=headers, **kw) as resp:
                body = await resp.json(content_type=None) if resp.content_length != 0 else {}
                if resp.status != 503:
                    return resp.status, body or {}
                retry = float(resp.headers.get("Retry-After", "1"))
        except aiohttp.ClientError:
            retry = 1.0
        await asyncio.sleep(min(retry, 1.0))


async def rotate(http: aiohttp.ClientSession, daemon: Daemon, room: str, tally: Tally,
                 until: float) -> None:
    headers = daemon.headers(f"user-{room}", rooms=[room])
    base = f"{daemon.url}/api/webrtc/rooms/{room}/recording"
    while time.time() < until:
        status, body = await answer(http, "POST", f"{base}/start", headers,
                                    json={"quality": "low"})
        if status != 201:
            tally.refusals[str(body.get("limit", status))] += 1
            await asyncio.sleep(random.uniform(0.5, 2))
            continue
        rec = Admitted(body["recording_id"], room, time.time())
        tally.admitted.append(rec)
        await asyncio.sleep(random.uniform(10, 30))
        rec.stop_sent_at = time.time()
        await answer(http, "POST", f"{base}/{rec.recording_id}/stop", headers)


async def probe(http: aiohttp.ClientSession, daemon: Daemon, tally: Tally,
                until: float) -> None:
    """A second start in a random room: it must be refused while the room records."""
    while time.time() < until:
        await asyncio.sleep(random.uniform(0.5, 1.5))
        room = f"room-{random.randrange(ROOMS)}"
        headers = daemon.headers(f"prober-{room}", rooms=[room])
        base = f"{daemon.url}/api/webrtc/rooms/{room}/recording"
        status, body = await answer(http, "POST", f"{base}/start", headers,
                                    json={"quality": "low"})
        if status == 201:
            rec = Admitted(body["recording_id"], room, time.time(), stop_sent_at=time.time(),
                           probe=True)
            tally.admitted.append(rec)
            await answer(http, "POST", f"{base}/{rec.recording_id}/stop", headers)
        else:
            tally.refusals[str(body.get("limit", status))] += 1


async def redis_chaos(redis: RedisProcess, every: tuple[float, float], tally: Tally,
                      until: float) -> None:
    while True:
        await asyncio.sleep(random.uniform(*every))
        if time.time() >= until:
            return
        empty = random.random() < 0.5
        await asyncio.to_thread(redis.kill)
        tally.redis_kills += 1
        await asyncio.sleep(random.uniform(1, 10))
        if empty:
            tally.redis_empty += 1
            for path in redis.folder.iterdir():
                if path.name.startswith("appendonly") or path.suffix == ".rdb":
                    shutil.rmtree(path) if path.is_dir() else path.unlink()
        await asyncio.to_thread(redis.start)
        print(f"{time.strftime('%H:%M:%S')} redis restarted "
              f"{'empty' if empty else 'with its data'}", flush=True)


async def worker_chaos(worker: Worker, every: tuple[float, float], tally: Tally,
                       until: float) -> None:
    while True:
        await asyncio.sleep(random.uniform(*every))
        if time.time() >= until:
            return
        worker.kill()
        tally.worker_kills += 1
        worker.start()
        print(f"{time.strftime('%H:%M:%S')} worker killed and started again", flush=True)


async def final_states(http: aiohttp.ClientSession, daemon: Daemon, tally: Tally,
                       settle: float) -> None:
    deadline = time.monotonic() + settle
    for rec in tally.admitted:
        headers = daemon.headers("admin", role="admin")
        url = (f"{daemon.url}/api/webrtc/rooms/{rec.room}/recording/{rec.recording_id}"
               "/status")
        while True:
            status, body = await answer(http, "GET", url, headers)
            rec.final = body if status == 200 else None
            done = status == 200 and body.get("status") in ("completed", "failed",
                                                             "cancelled")
            if done or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)


def report(tally: Tally, receiver: Receiver, moto: MotoServer, minutes: float) -> int:
    lost = [r for r in tally.admitted if r.lost]
    over = 0
    for rec in tally.admitted:
        others = [o for o in tally.running(rec.admitted_at) if o is not rec]
        in_room = [o for o in others if o.room == rec.room]
        if len(others) >= MAX_CONCURRENT or in_room:
            over += 1
    delivered = receiver.delivered()
    per_id = Counter(r.webhook_id for r in delivered)
    too_many = sum(1 for n in per_id.values() if n > 2)
    completed = [r for r in tally.admitted if (r.final or {}).get("status") == "completed"]
    hooks_lost = _webhooks_lost(receiver, tally)
    s3 = moto.client()
    uploads_missing = 0
    for rec in completed:
        final = rec.final or {}
        key = final.get("s3_key")
        if (final.get("upload") or {}).get("state") != "uploaded" or not key:
            uploads_missing += 1
            continue
        try:
            s3.head_object(Bucket=BUCKET, Key=key)
        except Exception:  # any failure means the file is not there
            uploads_missing += 1
    print(f"machine: {machine()}")
    print(f"{minutes:g} min: {len(tally.admitted)} recordings admitted, refusals "
          f"{dict(tally.refusals)}; redis killed {tally.redis_kills} times "
          f"({tally.redis_empty} restarted empty), worker killed {tally.worker_kills} times")
    rows = {"recordings lost": len(lost), "over-admissions": over,
            "webhooks lost": hooks_lost, "webhooks delivered more than twice": too_many,
            "uploads not done": uploads_missing}
    for name, count in rows.items():
        print(f"{name:36} {count}")
    for rec in lost:
        print(f"  lost: {rec.recording_id} in {rec.room}: {(rec.final or {}).get('status')} "
              f"{(rec.final or {}).get('error')}")
    return 0 if not any(rows.values()) else 1


async def run(args: argparse.Namespace) -> int:
    random.seed(args.seed)
    redis_every = tuple(float(v) for v in args.redis_every.split(","))
    worker_every = tuple(float(v) for v in args.worker_every.split(","))
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="recorder-chaos-") as tmp, MotoServer() as moto:
        root = Path(tmp)
        moto.create_bucket()
        redis = RedisProcess(root / "redis", *PERSISTENT)
        redis.start()
        async with Receiver() as receiver:
            settings: dict[str, Any] = {
                "heartbeat_seconds": 1, "max_per_room": 1, "max_per_user": 10,
                "max_concurrent": MAX_CONCURRENT, "cpu_capacity": 100,
                "upload_target": "s3", "s3_bucket": BUCKET, "s3_endpoint_url": moto.url,
                "webhook_url": receiver.url, "webhook_secret": SECRET,
                "webhook_retry_schedule": "0,1,2,5,10,20,30,60,60,60,60",
                # a killed worker's job is claimed by the next one after this long
                "job_claim_seconds": 15}
            try:
                with run_daemon(redis.url, storage=root / "recordings", **settings) as daemon:
                    worker = Worker(redis.url, daemon.node_id, daemon.storage, root,
                                    {k: v for k, v in settings.items()
                                     if k.startswith(("s3_", "webhook_", "heartbeat",
                                                      "job_claim"))})
                    worker.start()
                    try:
                        await _record(daemon, redis, worker, tally, args,
                                      (redis_every, worker_every), receiver)
                    finally:
                        worker.stop()
                        if args.logs:
                            _keep_logs(Path(args.logs), daemon, root)
            finally:
                redis.stop()
            return report(tally, receiver, moto, args.minutes)


async def _webhooks_arrived(receiver: Receiver, tally: Tally, settle: float) -> None:
    """Until every completed recording's expected webhooks arrived, `settle` s at most."""
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline:
        if _webhooks_lost(receiver, tally) == 0:
            return
        await asyncio.sleep(1)


def _events_by_recording(receiver: Receiver) -> dict[str, set[str]]:
    events: dict[str, set[str]] = {}
    for got in receiver.delivered():
        rid = str((got.body.get("data") or {}).get("recordingId"))
        events.setdefault(rid, set()).add(str(got.body.get("event")))
    return events


def _webhooks_lost(receiver: Receiver, tally: Tally) -> int:
    events = _events_by_recording(receiver)
    return sum(len(set(EXPECTED_EVENTS) - events.get(r.recording_id, set()))
               for r in tally.admitted if (r.final or {}).get("status") == "completed")


async def _record(daemon: Daemon, redis: RedisProcess, worker: Worker, tally: Tally,
                  args: argparse.Namespace, every: tuple[tuple[float, ...], ...],
                  receiver: Receiver) -> None:
    until = time.time() + args.minutes * 60
    publishers = [WhipPublisher(f"{daemon.url}/whip/room-{i}",
                                daemon.headers(f"pub-{i}", rooms=[f"room-{i}"])
                                ["Authorization"][7:], video=(320, 180), fps=15)
                  for i in range(ROOMS)]
    for publisher in publishers:
        await publisher.__aenter__()
    try:
        async with aiohttp.ClientSession() as http:
            chaos = [asyncio.create_task(redis_chaos(redis, (every[0][0], every[0][1]), tally,
                                                     until)),
                     asyncio.create_task(worker_chaos(worker, (every[1][0], every[1][1]),
                                                      tally, until))]
            await asyncio.gather(probe(http, daemon, tally, until),
                                 *(rotate(http, daemon, f"room-{i}", tally, until)
                                   for i in range(ROOMS)))
            for task in chaos:
                task.cancel()
            await asyncio.gather(*chaos, return_exceptions=True)
            await final_states(http, daemon, tally, args.settle)
            await _webhooks_arrived(receiver, tally, args.settle)
    finally:
        for publisher in publishers:
            await publisher.__aexit__(None, None, None)


def _keep_logs(folder: Path, daemon: Daemon, root: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "recorderd.log").write_text(daemon.log())
    shutil.copy(root / "worker.log", folder / "worker.log")
    print(f"logs kept in {folder}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--redis-every", default="120,300",
                        help="seconds between Redis kills: min,max")
    parser.add_argument("--worker-every", default="60,180",
                        help="seconds between worker kills: min,max")
    parser.add_argument("--settle", type=float, default=300,
                        help="seconds to wait for the last recordings to finish")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--logs", help="keep recorderd's and the worker's logs here")
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
