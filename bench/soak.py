"""Lip sync and memory over a long recording: ``python -m bench.soak --minutes N``.

Not a test (never in CI; no pass/fail, it prints what it sees). A real ``recorderd``
(default settings: a pool of room workers; its own Redis) records four rooms at once:

| room | quality | layout | publishers |
|---|---|---|---|
| soak-src-1 | source | composite | 1 |
| soak-src-2 | source | tracks | 2 |
| soak-low-1 | low | composite | 1 |
| soak-low-2 | low | tracks | 2 |

Publishers (``bench.soak_publish``, two processes) send a small replayed VP8 picture and a
live tone, flashing and beeping together every 10 s. Half of them run on a clock 0.05 % fast against
this machine, half 0.05 % slow, and each microphone drifts a further 0.1 % fast or slow
from its publisher's clock. Every minute the soak prints, for each file, the A/V offsets
of the flashes of that minute (``bench.soak_watch`` reads each file once, as it grows),
for each process of ``recorderd``'s tree its RSS and PSS, each recording's dropped
frames (as its state says them: the node writes the counts when the recording finishes;
and the node's total so far, from /metrics)
and the file sizes; at the end, each process's memory slope after minute 5. The results
so far are in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench import procs
from bench.passthrough import call, wait_status
from bench.soak_watch import FileWatch
from tests.support.daemon import Daemon, run_daemon
from tests.support.redis_server import redis_server

ROOMS = (("soak-src-1", "source", "composite", 1), ("soak-src-2", "source", "tracks", 2),
         ("soak-low-1", "low", "composite", 1), ("soak-low-2", "low", "tracks", 2))
NAMES = ("alice", "bob")
CLOCK_PPM = (500.0, -500.0)  # a publisher process's clock against this machine's
MIC_PPM = (1000.0, -1000.0)  # a microphone against its publisher's clock
MARKER_EVERY = 10.0
SETTLE_MINUTES = 5  # memory slopes count from here


@dataclass
class Soak:
    daemon: Daemon
    bases: dict[str, str] = field(default_factory=dict)  # rid -> its recording URL
    rooms: dict[str, str] = field(default_factory=dict)  # rid -> its room
    watches: dict[Path, FileWatch] = field(default_factory=dict)
    done: threading.Event = field(default_factory=threading.Event)
    memory: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # RSS

    def watch_new_files(self) -> None:
        for rid in self.bases:
            for path in sorted((self.daemon.storage / rid).glob("*.webm")):
                if path not in self.watches:
                    self.watches[path] = FileWatch(path, self.done)
                    self.watches[path].start()


def publishers(daemon: Daemon, minutes: float) -> list[list[dict[str, Any]]]:
    """Each publisher process's share: alternately fast and slow clocks and microphones."""
    markers = int(minutes * 60 / MARKER_EVERY) + 12  # how many beeps: past the stop
    shares: list[list[dict[str, Any]]] = [[], []]
    k = 0
    for room, _, _, count in ROOMS:
        for name in NAMES[:count]:
            token = daemon.headers(name, rooms=[room])["Authorization"][7:]
            shares[k % 2].append({"url": f"{daemon.url}/whip/{room}", "token": token,
                                  "mic_ppm": MIC_PPM[(k // 2) % 2], "markers": markers})
            k += 1
    return shares


async def start_publishers(shares: list[list[dict[str, Any]]]
                           ) -> list[asyncio.subprocess.Process]:
    children = []
    for ppm, share in zip(CLOCK_PPM, shares, strict=True):
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.soak_publish", "--clock-ppm", str(ppm),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        assert child.stdin is not None
        assert child.stdout is not None
        child.stdin.write(json.dumps(share).encode() + b"\n")
        await child.stdin.drain()
        line = await asyncio.wait_for(child.stdout.readline(), 120)
        if not line:
            raise RuntimeError(f"a publisher process exited {await child.wait()}")
        children.append(child)
    return children


async def stop_publishers(children: list[asyncio.subprocess.Process]) -> None:
    for child in children:
        assert child.stdin is not None
        child.stdin.write(b"stop\n")
        await child.stdin.drain()
    for child in children:
        try:
            await asyncio.wait_for(child.wait(), 60)
        except TimeoutError:
            child.kill()


def process_name(pid: int) -> str:
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return str(pid)
    # a room worker (`--name=worker-N`, or the room's name in process isolation)
    name = next((w.split("=", 1)[1] for w in words if w.startswith("--name=")), None)
    return name or "recorderd"


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def report_minute(soak: Soak, minute: int, dropped: dict[str, int], elapsed: float,
                  final: bool = False) -> None:
    """One minute's table: A/V per file, memory per process, dropped frames (``final``:
    after the stop, left out of the memory slopes)."""
    print(f"\n## minute {minute} ({elapsed / 60:.1f} min recorded)")
    print("| file | size MiB | A/V ms this minute (flash - beep) | worst so far | pairs |")
    print("|---|---|---|---|---|")
    for path, watch in soak.watches.items():
        recent = [round(o * 1000) for _, o in watch.offsets(elapsed - 60.0)]
        every = [abs(o) for _, o in watch.offsets()]
        worst = f"{max(every) * 1000:.0f}" if every else "-"
        name = f"{soak.rooms[path.parent.name]}/{path.name[:20]}"
        note = f" ({watch.error})" if watch.error else ""
        print(f"| {name} | {path.stat().st_size / 2**20:.1f} | {recent}{note} | {worst} "
              f"| {len(every)} |")
    print("| process | RSS MiB | PSS MiB |")
    print("|---|---|---|")
    for pid in procs.tree(soak.daemon.process.pid):
        name = f"{process_name(pid)} ({pid})"
        rss = rss_mib(pid)
        if not final:
            soak.memory.setdefault(name, []).append((minute, rss))
        print(f"| {name} | {rss:.1f} | {procs.pss_mib(pid):.1f} |")
    print("frames dropped:", dropped)
    sys.stdout.flush()


def slopes(memory: dict[str, list[tuple[float, float]]]) -> dict[str, float]:
    """MiB per 10 minutes of each process's RSS after the settling minutes."""
    out = {}
    for name, points in memory.items():
        late = [(m, v) for m, v in points if m >= SETTLE_MINUTES]
        if len(late) >= 2:
            mean_m = sum(m for m, _ in late) / len(late)
            mean_v = sum(v for _, v in late) / len(late)
            sxx = sum((m - mean_m) ** 2 for m, _ in late)
            sxy = sum((m - mean_m) * (v - mean_v) for m, v in late)
            out[name] = round(10 * sxy / sxx, 2) if sxx else 0.0
    return out


async def start_recordings(http: aiohttp.ClientSession, soak: Soak) -> dict[str, str]:
    daemon = soak.daemon
    headers = daemon.headers("soak", rooms=[room for room, *_ in ROOMS])
    for room, quality, layout, _ in ROOMS:
        url = f"{daemon.url}/api/webrtc/rooms/{room}/recording"
        body = {"format": "webm", "quality": quality, "layout": layout}
        rid = (await call(http, "POST", f"{url}/start", headers, 201, json=body))[
            "recording_id"]
        soak.bases[rid] = f"{url}/{rid}"
        soak.rooms[rid] = room
    return headers


async def run(minutes: float, keep: Path | None) -> None:
    storage = None if keep is None else keep / "recordings"
    with redis_server() as redis_url, run_daemon(
            redis_url, storage=storage, max_per_user=1000, max_concurrent=1000,
            cpu_capacity=1000, max_duration_seconds=int(minutes * 60) + 3600) as daemon:
        try:
            await soak(daemon, minutes)
        finally:
            if keep is not None:
                (keep / "recorderd.log").write_text(daemon.log())


async def soak(daemon: Daemon, minutes: float) -> None:
    state = Soak(daemon)
    children = await start_publishers(publishers(daemon, minutes))
    try:
        async with aiohttp.ClientSession() as http:
            headers = await start_recordings(http, state)
            for base in state.bases.values():
                await wait_status(http, base, headers, {"recording"})
            await record(http, state, headers, minutes)
    finally:
        await stop_publishers(children)
        state.done.set()
        for watch in state.watches.values():
            watch.join(60)
    print("\nRSS slope after minute", SETTLE_MINUTES, "(MiB per 10 min):",
          slopes(state.memory))


async def record(http: aiohttp.ClientSession, state: Soak, headers: dict[str, str],
                 minutes: float) -> None:
    """Report every minute, then stop the recordings and report what they became."""
    began = time.monotonic()
    for minute in range(1, int(minutes) + 1):
        while time.monotonic() < began + minute * 60:  # files appear as media starts
            state.watch_new_files()
            await asyncio.sleep(min(5.0, max(0.0, began + minute * 60 - time.monotonic())))
        report_minute(state, minute, await dropped(http, state, headers),
                      time.monotonic() - began)
    for base in state.bases.values():
        await call(http, "POST", f"{base}/stop", headers, 200)
    state.done.set()
    for base in state.bases.values():
        await wait_status(http, base, headers, {"completed", "failed"})
    report_minute(state, int(minutes) + 1, await dropped(http, state, headers),
                  time.monotonic() - began, final=True)


async def dropped(http: aiohttp.ClientSession, soak: Soak, headers: dict[str, str]
                  ) -> dict[str, int]:
    """Each room's dropped frames as its state says them (written when it finishes), and
    the node's live total so far (``node``, from /metrics) to tell when they dropped."""
    out = {}
    for rid, base in soak.bases.items():
        state = await call(http, "GET", f"{base}/status", headers, 200)
        out[soak.rooms[rid]] = int((state.get("frames") or {}).get("dropped", 0))
    async with http.get(f"{soak.daemon.url}/metrics") as response:
        for line in (await response.text()).splitlines():
            if line.startswith("recorder_frames_dropped_total "):
                out["node"] = int(float(line.split()[1]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak")
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--keep", type=Path, default=None,
                        help="a folder to keep the files and recorderd's log in")
    args = parser.parse_args(argv)
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    asyncio.run(run(args.minutes, args.keep))
    return 0


if __name__ == "__main__":
    sys.exit(main())
