"""How long a start and a WHIP publish take in a room nobody used yet, per room isolation.

Not a test (no pass/fail): ``python -m bench.room_start [--rooms 20] [--sides pool,process]
[--kills 5]``.

For each side a real ``recorderd`` (its own Redis, ``RECORDER_ROOM_ISOLATION`` set to the
side) runs idle, its pool warm, and then, one room at a time, each in a new room:

- ``start``: ``POST .../recording/start`` (webm, low, no publisher yet) until its 201; the
  recording is cancelled before the next room;
- ``whip``: a WHIP publish as its client sees it: the offer made, ``POST /whip/{room}``
  until its 201, the answer applied (the session is deleted before the next room).

- ``replace`` (``pool`` only, ``--kills`` times): a room worker SIGKILLed, until its
  replacement says it is ready (its "started in" line in recorderd's log; recorderd notices
  the death at once, its socket closing).

It prints each side's median and 90th percentile in milliseconds and the ratio of the
medians to the first side's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import statistics
import sys
import time

import aiohttp

from bench import procs
from bench.common import machine
from tests.support.api import workers_ready
from tests.support.daemon import Daemon, run_daemon
from tests.support.publisher import SyntheticPublisher
from tests.support.redis_server import redis_server


async def timed_start(http: aiohttp.ClientSession, daemon: Daemon, room: str,
                      headers: dict[str, str]) -> float:
    base = f"{daemon.url}/api/webrtc/rooms/{room}/recording"
    began = time.perf_counter()
    async with http.post(f"{base}/start", headers=headers,
                         params={"quality": "low"}) as resp:
        body = await resp.json()
        assert resp.status == 201, body
    took = time.perf_counter() - began
    async with http.delete(f"{base}/{body['recording_id']}", headers=headers) as resp:
        assert resp.status == 200, await resp.text()
    return took


async def timed_whip(http: aiohttp.ClientSession, daemon: Daemon, room: str,
                     headers: dict[str, str]) -> float:
    publisher = SyntheticPublisher(video=(320, 180), fps=15)
    try:
        began = time.perf_counter()
        offer = await publisher.offer()
        async with http.post(f"{daemon.url}/whip/{room}", data=offer, headers={
                **headers, "Content-Type": "application/sdp"}) as resp:
            assert resp.status == 201, await resp.text()
            location = resp.headers["Location"]
            answer = await resp.text()
        await publisher.accept(answer)
        took = time.perf_counter() - began
    finally:
        await publisher.close()
    async with http.delete(f"{daemon.url}{location}" if location.startswith("/")
                           else location, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
    return took


STARTED = re.compile(r"worker-0: room process (\d+) started in")


def worker_pid(daemon: Daemon) -> int:
    """The pid of room worker 0 once its replacement (or first start) said it is ready."""
    return int(STARTED.findall(daemon.log())[-1])


async def timed_replacement(daemon: Daemon) -> float:
    killed = worker_pid(daemon)
    began = time.perf_counter()
    os.kill(killed, signal.SIGKILL)
    for _ in range(6000):  # the log is a file: polled, for up to a minute
        if worker_pid(daemon) != killed:
            break
        await asyncio.sleep(0.01)
    took = time.perf_counter() - began
    assert worker_pid(daemon) in procs.tree(daemon.process.pid)
    return took


async def measure(side: str, rooms: int, kills: int,
                  redis_url: str) -> dict[str, list[float]]:
    with run_daemon(redis_url, room_isolation=side, heartbeat_seconds=1) as daemon:
        headers = daemon.headers("bench-admin", role="admin")
        async with aiohttp.ClientSession() as http:
            if side == "pool":
                await workers_ready(http, daemon)
            results = {
                "start": [await timed_start(http, daemon, f"{side}-start-{k}", headers)
                          for k in range(rooms)],
                "whip": [await timed_whip(http, daemon, f"{side}-whip-{k}", headers)
                         for k in range(rooms)]}
            if side == "pool" and kills:
                replaced = []
                for _ in range(kills):
                    replaced.append(await timed_replacement(daemon))
                    await workers_ready(http, daemon)  # and the heartbeat saw it
                results["replace"] = replaced
    return results


def ms(values: list[float], q: int) -> float:
    ordered = sorted(values)
    if q == 50:
        return statistics.median(ordered) * 1000
    return ordered[min(len(ordered) - 1, round(len(ordered) * q / 100))] * 1000


def report(results: dict[str, dict[str, list[float]]]) -> None:
    print(f"machine: {machine()}")
    first = next(iter(results))
    print(f"{'side':10} {'what':6} {'median ms':>10} {'p90 ms':>8} {'x ' + first:>10}")
    for side, values in results.items():
        for what, samples in values.items():
            ratio = ms(samples, 50) / ms(results[first].get(what, samples), 50)
            print(f"{side:10} {what:6} {ms(samples, 50):10.1f} {ms(samples, 90):8.1f} "
                  f"{ratio:10.2f}  " + " ".join(f"{v * 1000:.0f}" for v in samples))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.room_start", description=__doc__)
    parser.add_argument("--rooms", type=int, default=20)
    parser.add_argument("--sides", default="pool,process")
    parser.add_argument("--kills", type=int, default=5, help="room workers SIGKILLed (pool)")
    args = parser.parse_args(argv)
    results: dict[str, dict[str, list[float]]] = {}
    for side in args.sides.split(","):
        with redis_server() as redis_url:
            results[side] = asyncio.run(measure(side, args.rooms, args.kills, redis_url))
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
