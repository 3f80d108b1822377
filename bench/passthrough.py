"""Passthrough (``quality: source``) CPU per stream against a bare aiortc peer, and capacity.

Not a test (no pass/fail): ``python -m bench.passthrough [--streams 4,8,12,16]
[--per-room 1] [--window 20] [--publishers 4] [--repeat 1] [--daemon-env NAME=VALUE ...]``.

Each stream is a replayed 720p30 VP8 2.5 Mbps + Opus publisher (``bench.replay``: packets
sent as encoded, so the load generator stays cheap) in one of ``--publishers`` processes
beside the recorder. For every stream count these sides run in turn on the same publishers
(``--repeat`` rounds of all of them; the report takes each side's median):

- ``bound``: a bare aiortc peer in its own process (uvloop) that takes each track's encoded
  frames through the receiver tap and drops them: what any recorder pays to receive; and
  with several rooms the same peer split into one process per room (``split bound``): the
  least a process per room can cost, since each process then wakes for every packet of its
  own streams instead of taking several streams' packets per wake-up; and the single peer
  once more with every frame on aiortc's own way, through its decoder thread, which the
  tap's direct path skips (``aiortc-path bound``: a bare aiortc peer as aiortc receives);
- ``ours``: a real ``recorderd`` (``tests.support.daemon.run_daemon``, its own Redis, with
  its defaults: a warm pool of one room worker per core) recording ``webm`` at ``source``:
  one room per stream (``--per-room 1``, layout ``composite``) or ``--per-room K``
  publishers per room (layout ``tracks``, one file per publisher);
- ``process``: the same with ``RECORDER_ROOM_ISOLATION=process``, a process per room;
- ``inline``: the same with ``RECORDER_ROOM_ISOLATION=inline``: every room in recorderd,
  one process like the bound.

CPU is utime + stime of the side's processes (recorderd and its room children; the sink)
over ``--window`` seconds once every recording is ``recording``. Loss compares what the
publishers sent (less the few frames any aiortc receiver still holds when a publisher
stops, ``HELD``) with the recording's ``frames.written`` and with the frames decoded from
its files (PyAV); a count is "held" when both lose under 0.5 %.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import av

from bench import procs
from bench.common import input_file, machine
from recorder.core.models import MEDIA_KINDS
from tests.support.daemon import Daemon, run_daemon
from tests.support.redis_server import redis_server

INPUT_SECONDS = 30.0  # the cached clip the publishers loop
WARMUP = 3.0  # after every stream flows, before the window opens
MAX_LOSS = 0.005
SETTLE_TIMEOUT = 90.0  # a guard against a hung recording, not a measurement
# aiortc's receiver jitter buffers keep a publisher's last frames until later packets come,
# which never do once it stops: 4 audio (prefetch=4) and 1 video (a frame is complete when
# the next one starts). The bound loses exactly these too.
HELD = 4 + 1


class Fleet:
    """Publisher processes, each with its share of the targets (round-robin)."""

    def __init__(self, targets: list[dict[str, str]], processes: int) -> None:
        self._shares = [targets[k::processes] for k in range(processes)]
        self._shares = [share for share in self._shares if share]
        self._children: list[asyncio.subprocess.Process] = []

    async def start(self) -> None:
        # The cached input is made here, untimed (a minute or more on a fresh checkout),
        # so that the wait for each publisher's "connected" measures connecting only.
        await asyncio.to_thread(input_file, INPUT_SECONDS)
        for share in self._shares:
            spec = json.dumps({"targets": share, "seconds": INPUT_SECONDS})
            child = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.replay", "--publish", spec,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
            self._children.append(child)
            await self._line(child)  # {"connected": n}; the next one connects after

    async def stop(self) -> list[dict[str, int]]:
        """Stop every publisher; what each sent, in target order."""
        for child in self._children:
            assert child.stdin is not None
            child.stdin.write(b"stop\n")
            await child.stdin.drain()
        per_share = [(await self._line(child))["sent"] for child in self._children]
        for child in self._children:
            await child.wait()
        ordered: list[dict[str, int]] = []
        for k in range(max(len(s) for s in per_share)):
            ordered.extend(share[k] for share in per_share if k < len(share))
        return ordered

    @staticmethod
    async def _line(child: asyncio.subprocess.Process) -> dict[str, Any]:
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), SETTLE_TIMEOUT)
        if not line:
            raise RuntimeError(f"publisher process exited {await child.wait()}")
        result: dict[str, Any] = json.loads(line)
        return result

    def kill(self) -> None:
        for child in self._children:
            if child.returncode is None:
                child.kill()


async def measure_window(roots: list[int], window: float) -> tuple[float, float]:
    """CPU seconds per second of the process trees of ``roots``, and of the first root
    alone, over ``window`` seconds."""
    def reading() -> dict[int, float]:
        return procs.cpu([pid for root in roots for pid in procs.tree(root)])

    await asyncio.sleep(WARMUP)
    before, t0 = reading(), time.monotonic()
    await asyncio.sleep(window)
    after, t1 = reading(), time.monotonic()
    alone = after.get(roots[0], 0.0) - before.get(roots[0], 0.0)
    return procs.cpu_used(before, after) / (t1 - t0), alone / (t1 - t0)


async def run_bound(streams: int, window: float, processes: int,
                    sinks: int = 1, direct: bool = True) -> dict[str, Any]:
    """The bare peer: one sink process for every stream, or ``sinks`` of them (round-robin;
    as many as rooms: what a process per room would cost at the least); ``direct=False``:
    frames through aiortc's decoder thread."""
    how = [] if direct else ["--through-thread"]
    children = []
    fleet: Fleet | None = None
    try:
        for _ in range(sinks):
            children.append(await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.replay", "--sink", *how,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE))
        ports = [json.loads(await _stdout(sink).readline())["port"] for sink in children]
        targets = [{"url": f"http://127.0.0.1:{ports[i % sinks]}/whip/sink-{i}", "token": "-"}
                   for i in range(streams)]
        fleet = Fleet(targets, processes)
        await fleet.start()
        cpu, _ = await measure_window([sink.pid for sink in children], window)
        sent = await fleet.stop()
        frames = 0
        for sink in children:
            assert sink.stdin is not None
            sink.stdin.write(b"stop\n")
            await sink.stdin.drain()
            frames += json.loads(await _stdout(sink).readline())["frames"]
            await sink.wait()
    finally:
        if fleet is not None:
            fleet.kill()
        for sink in children:
            if sink.returncode is None:
                sink.kill()
    total = sum(s["audio"] + s["video"] for s in sent)
    return {"cpu": cpu, "sent": total, "received": frames}


def _stdout(child: asyncio.subprocess.Process) -> asyncio.StreamReader:
    assert child.stdout is not None
    return child.stdout


async def call(http: aiohttp.ClientSession, method: str, url: str, headers: dict[str, str],
               expect: int, **kw: Any) -> dict[str, Any]:
    async with http.request(method, url, headers=headers, **kw) as response:
        body = await response.text()
        if response.status != expect:
            raise RuntimeError(f"{method} {url}: {response.status} {body[:500]}")
        result: dict[str, Any] = json.loads(body) if body else {}
        return result


async def wait_status(http: aiohttp.ClientSession, base: str, headers: dict[str, str],
                      wanted: set[str]) -> dict[str, Any]:
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        state = await call(http, "GET", f"{base}/status", headers, 200)
        if state["status"] in wanted:
            return state
        if time.monotonic() > deadline:
            raise RuntimeError(f"{base}: still {state['status']}, wanted {wanted}")
        await asyncio.sleep(0.2)


async def start_recordings(http: aiohttp.ClientSession, daemon: Daemon, rooms: list[str],
                           headers: dict[str, str], quality: str,
                           layout: str, fmt: str = "webm") -> list[str]:
    """Start one recording per room (pending until its publisher sends); the status URLs."""
    bases = []
    for room in rooms:
        base = f"{daemon.url}/api/webrtc/rooms/{room}/recording"
        body = {"format": fmt, "quality": quality, "layout": layout}
        rid = (await call(http, "POST", f"{base}/start", headers, 201, json=body))[
            "recording_id"]
        bases.append(f"{base}/{rid}")
    return bases


def count_file(path: Path) -> dict[str, int]:
    """Frames decoded from one file, per kind (a packet that does not decode counts as
    lost: a frame whose reference was dropped under load, say)."""
    counts = {"audio": 0, "video": 0, "undecodable": 0}
    with av.open(str(path)) as container:
        for video in container.streams.video:
            video.thread_type = "AUTO"
        for packet in container.demux(*container.streams):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                counts["undecodable"] += 1
                continue
            for frame in frames:
                counts["video" if isinstance(frame, av.VideoFrame) else "audio"] += 1
    return counts


async def run_ours(redis_url: str, streams: int, per_room: int, window: float,
                   processes: int, label: str,
                   extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    rooms = [f"bench-{label}-{i}" for i in range(streams // per_room)]
    with run_daemon(redis_url, extra_env, max_per_user=1000, max_concurrent=1000,
                    cpu_capacity=1000, max_publishers_per_room=max(16, per_room)) as daemon:
        async with aiohttp.ClientSession() as http:
            headers = daemon.headers("bench-user")
            layout = "tracks" if per_room > 1 else "composite"
            bases = await start_recordings(http, daemon, rooms, headers, "source", layout)
            # one user per publisher: the per-user publisher cap stays out of the way
            targets = [{"url": f"{daemon.url}/whip/{room}",
                        "token": daemon.headers(f"bench-publisher-{k}-{n}")["Authorization"][7:]}
                       for k, room in enumerate(rooms) for n in range(per_room)]
            fleet = Fleet(targets, processes)
            try:
                await fleet.start()
                for base in bases:
                    await wait_status(http, base, headers, {"recording"})
                children = len(procs.tree(daemon.process.pid)) - 1
                cpu, main = await measure_window([daemon.process.pid], window)
                sent = await fleet.stop()
            finally:
                fleet.kill()
            states = []
            for base in bases:
                await call(http, "POST", f"{base}/stop", headers, 200)
                states.append(await wait_status(http, base, headers,
                                                {"completed", "failed"}))
        # inside: the daemon's storage goes when it stops
        result = await asyncio.to_thread(_tally, daemon, states, sent, cpu, children)
    result["cpu_main"] = main
    return result


def _tally(daemon: Daemon, states: list[dict[str, Any]], sent: list[dict[str, int]],
           cpu: float, children: int) -> dict[str, Any]:
    written = sum(s["frames"]["written"] for s in states)
    received = sum(s["frames"]["received"] for s in states)
    decoded = {"audio": 0, "video": 0, "undecodable": 0}
    for state in states:
        if state["status"] != "completed":
            raise RuntimeError(f"recording {state['recording_id']}: {state}")
        for file in (f for f in state["files"] if f["kind"] in MEDIA_KINDS):
            counts = count_file(daemon.storage / state["recording_id"] / file["name"])
            for kind, n in counts.items():
                decoded[kind] += n
    sent_total = sum(s["audio"] + s["video"] for s in sent)
    return {"cpu": cpu, "children": children, "sent": sent_total, "received": received,
            "written": written,
            "sent_video": sum(s["video"] for s in sent), "decoded_video": decoded["video"],
            "sent_audio": sum(s["audio"] for s in sent), "decoded_audio": decoded["audio"],
            "undecodable": decoded["undecodable"]}


def deliverable(result: dict[str, Any], streams: int) -> int:
    """Frames sent less those any aiortc receiver still holds when its publisher stops."""
    return int(result["sent"]) - HELD * streams


def losses(result: dict[str, Any], streams: int) -> tuple[float, float]:
    """(loss by the recording's frames.written, loss by the decoded files)."""
    sent = deliverable(result, streams)
    by_state = 1 - result["written"] / sent
    by_file = 1 - (result["decoded_video"] + result["decoded_audio"]) / sent
    return by_state, by_file


def wake_cost_us(period: float = 0.005, count: int = 200) -> float:
    """CPU microseconds one sleep-and-wake of a thread costs here (a process woken for each
    packet pays about this much per packet on top of handling it)."""
    before = time.process_time()
    for _ in range(count):
        time.sleep(period)
    return (time.process_time() - before) / count * 1e6


def side_env(side: str) -> dict[str, str]:
    """recorderd's environment for a side (see the module's description)."""
    if side in ("process", "inline"):
        return {"RECORDER_ROOM_ISOLATION": side}
    return {}


SIDES = ("ours", "process", "inline")


async def run_all(counts: list[int], per_room: int, window: float, processes: int,
                  extra_env: dict[str, str] | None = None, repeat: int = 1,
                  sides: tuple[str, ...] = SIDES) -> list[dict[str, Any]]:
    """Per stream count: every side's results, one per round (bound first in each)."""
    rows = []
    with redis_server() as redis_url:
        for streams in counts:
            rooms = streams // per_room
            row: dict[str, Any] = {"streams": streams, "per_room": per_room, "bound": [],
                                   "bound_split": [], "bound_aiortc": [],
                                   **{side: [] for side in sides}}
            for round_ in range(repeat):
                print(f"{streams} streams, round {round_ + 1}: bound ...", file=sys.stderr)
                row["bound"].append(await run_bound(streams, window, processes))
                print(f"{streams} streams, round {round_ + 1}: aiortc-path bound ...",
                      file=sys.stderr)
                row["bound_aiortc"].append(
                    await run_bound(streams, window, processes, direct=False))
                if rooms > 1:
                    print(f"{streams} streams, round {round_ + 1}: bound, {rooms} processes "
                          "...", file=sys.stderr)
                    row["bound_split"].append(
                        await run_bound(streams, window, processes, sinks=rooms))
                for side in sides:
                    print(f"{streams} streams, round {round_ + 1}: {side} ...",
                          file=sys.stderr)
                    env = side_env(side) | (extra_env or {})
                    row[side].append(await run_ours(
                        redis_url, streams, per_room, window, processes,
                        f"{streams}x{per_room}-{side}-{int(time.time())}", env))
            rows.append(row)
    return rows


def report(rows: list[dict[str, Any]], window: float) -> str:
    lines = [f"window {window:g} s after {WARMUP:g} s of warm-up; CPU in % of one core, the "
             "median of the rounds; ratio: of the medians, (range: of each round's own "
             "ratio); split bound: the bare peer in one process per room; ours: the room "
             "workers' pool (one per core); process: a process per room; inline: rooms in "
             "recorderd; aiortc path: the bare peer with frames through aiortc's decoder "
             "thread",
             "",
             "| streams | rooms | rounds | bound / stream | split bound / stream "
             "| aiortc-path bound / stream | side | processes | CPU (recorderd + rooms) "
             "| / stream | ratio (range) | / split bound | / aiortc path | deliverable "
             "| written (state) | decoded | worst loss state / file | held |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        n, bounds = row["streams"], row["bound"]
        bound_cpu = statistics.median(b["cpu"] for b in bounds)
        split_cpu = statistics.median(b["cpu"] for b in row["bound_split"] or bounds)
        aiortc_cpu = statistics.median(b["cpu"] for b in row["bound_aiortc"])
        for side in (s for s in SIDES if s in row):
            runs = row[side]
            cpu = statistics.median(r["cpu"] for r in runs)
            main = statistics.median(r["cpu_main"] for r in runs)
            ratios = [r["cpu"] / b["cpu"] for r, b in zip(runs, bounds, strict=True)]
            by_state = max(losses(r, n)[0] for r in runs)
            by_file = max(losses(r, n)[1] for r in runs)
            held = "yes" if max(by_state, by_file) < MAX_LOSS else "no"
            last = runs[-1]
            decoded = last["decoded_video"] + last["decoded_audio"]
            lines.append(
                f"| {n} | {n // row['per_room']} | {len(runs)} | {bound_cpu * 100 / n:.2f} | "
                f"{split_cpu * 100 / n:.2f} | {aiortc_cpu * 100 / n:.2f} | {side} | "
                f"{last['children']} | "
                f"{cpu * 100:.1f} ({main * 100:.1f} + {(cpu - main) * 100:.1f}) | "
                f"{cpu * 100 / n:.2f} | "
                f"{cpu / bound_cpu:.2f} ({min(ratios):.2f}-{max(ratios):.2f}) | "
                f"{cpu / split_cpu:.2f} | {cpu / aiortc_cpu:.2f} | {deliverable(last, n)} | "
                f"{last['written']} | {decoded} | "
                f"{by_state * 100:.2f} % / {by_file * 100:.2f} % | {held} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.passthrough", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", default="4,8,12,16")
    parser.add_argument("--per-room", type=int, default=1)
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--publishers", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=1, help="rounds of every side")
    parser.add_argument("--sides", default=",".join(SIDES))
    parser.add_argument("--daemon-env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for recorderd (A/B runs), repeatable")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.streams.split(",")]
    extra = dict(item.split("=", 1) for item in args.daemon_env)
    sides = tuple(args.sides.split(","))
    if not set(sides) <= set(SIDES):
        parser.error(f"--sides: choose among {', '.join(SIDES)}")
    rows = asyncio.run(run_all(counts, args.per_room, args.window, args.publishers, extra,
                               args.repeat, sides))
    print(machine())
    print(f"one sleep-and-wake of a thread costs {wake_cost_us():.0f} us of CPU here")
    print(report(rows, args.window))
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
