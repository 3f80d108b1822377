"""What the room workers, a room and each added 720p recording cost in memory (PSS).

Not a test (no pass/fail): ``python -m bench.memory [--rooms 4] [--settle 10]
[--qualities source,medium] [--format webm|mp4|mkv] [--daemon-env NAME=VALUE ...]``.

A real ``recorderd`` (its own Redis, its defaults: a warm pool of room workers) is read
from ``/proc/<pid>/smaps_rollup`` (PSS summed over recorderd and its children, so libraries
the workers share count once) at each step, ``--settle`` seconds after it:

1. idle, no room: recorderd and its warm workers (a worker's base);
2. ``--rooms`` rooms, each with one replayed 720p30 VP8 2.5 Mbps + Opus publisher
   (``bench.replay``, in a process beside it) and no recording: what a room adds;
3. for each quality in turn, one ``--format`` recording per room started (and stopped before
   the next quality): what each added recording costs, against the PSS just before it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

import aiohttp

from bench import procs
from bench.common import machine
from bench.passthrough import Fleet, call, start_recordings, wait_status
from tests.support.api import workers_ready
from tests.support.daemon import Daemon, run_daemon
from tests.support.redis_server import redis_server

TARGET_MIB = 45.0  # per added live 720p transcode


def snapshot(daemon: Daemon) -> dict[str, Any]:
    """PSS of recorderd, of each child, and their sum, in MiB."""
    per_pid = procs.tree_pss_mib(daemon.process.pid)
    main = per_pid.pop(daemon.process.pid)
    return {"total": main + sum(per_pid.values()), "main": main,
            "children": sorted(per_pid.values())}


async def measure(rooms: int, settle: float, qualities: list[str], fmt: str = "webm",
                  extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    steps: dict[str, Any] = {}
    with redis_server() as redis_url, run_daemon(
            redis_url, extra_env, max_per_user=1000, max_concurrent=1000,
            cpu_capacity=1000, heartbeat_seconds=1) as daemon:
        async with aiohttp.ClientSession() as http:
            await workers_ready(http, daemon)
            await asyncio.sleep(settle)
            steps["idle"] = snapshot(daemon)
            headers = daemon.headers("bench-user")
            names = [f"bench-mem-{k}" for k in range(rooms)]
            token = headers["Authorization"][7:]
            fleet = Fleet([{"url": f"{daemon.url}/whip/{room}", "token": token}
                           for room in names], min(rooms, 4))
            try:
                await fleet.start()
                await asyncio.sleep(settle)
                steps["rooms"] = snapshot(daemon)
                for quality in qualities:
                    print(f"{rooms} {quality} recordings ...", file=sys.stderr)
                    before = snapshot(daemon)
                    bases = await start_recordings(http, daemon, names, headers, quality,
                                                   "composite", fmt)
                    for base in bases:
                        await wait_status(http, base, headers, {"recording"})
                    await asyncio.sleep(settle)
                    early = snapshot(daemon)
                    await asyncio.sleep(settle)
                    steps[quality] = {"before": before, "early": early,
                                      "after": snapshot(daemon)}
                    for base in bases:
                        await call(http, "POST", f"{base}/stop", headers, 200)
                        await wait_status(http, base, headers, {"completed", "failed"})
                await fleet.stop()
            finally:
                fleet.kill()
    return steps


def report(steps: dict[str, Any], rooms: int, settle: float, qualities: list[str],
           fmt: str) -> str:
    idle, with_rooms = steps["idle"], steps["rooms"]
    base = (with_rooms["total"] - idle["total"]) / rooms
    children = with_rooms["children"]
    lines = [f"PSS in MiB of recorderd + its children, {settle:g} s after each step; "
             f"{rooms} rooms, one 720p30 publisher each",
             "",
             "| step | total | recorderd | room workers (each) | added per room / "
             "recording |",
             "|---|---|---|---|---|",
             f"| idle | {idle['total']:.1f} | {idle['main']:.1f} | - | - |",
             f"| {rooms} rooms, no recording | {with_rooms['total']:.1f} | "
             f"{with_rooms['main']:.1f} | {_each(children)} | {base:.1f} (room base) |"]
    for quality in qualities:
        step = steps[quality]
        for when, label in (("early", f"{settle:g} s"), ("after", f"{2 * settle:g} s")):
            snap = step[when]
            added = (snap["total"] - step["before"]["total"]) / rooms
            lines.append(f"| + {rooms} `{fmt}` `{quality}` recordings, {label} | "
                         f"{snap['total']:.1f} | {snap['main']:.1f} | "
                         f"{_each(snap['children'])} | {added:.1f} "
                         f"({added / TARGET_MIB:.2f} of the {TARGET_MIB:g} MiB target) |")
    return "\n".join(lines)


def _each(values: list[float]) -> str:
    return ", ".join(f"{v:.0f}" for v in values) if values else "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rooms", type=int, default=4)
    parser.add_argument("--settle", type=float, default=10.0)
    parser.add_argument("--qualities", default="source,medium")
    parser.add_argument("--format", default="webm", choices=("webm", "mp4", "mkv"))
    parser.add_argument("--daemon-env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for recorderd (A/B runs), repeatable")
    args = parser.parse_args(argv)
    qualities = args.qualities.split(",")
    extra = dict(item.split("=", 1) for item in args.daemon_env)
    steps = asyncio.run(measure(args.rooms, args.settle, qualities, args.format, extra))
    print(machine())
    print(report(steps, args.rooms, args.settle, qualities, args.format))
    print(json.dumps(steps))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
