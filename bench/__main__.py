"""Every media benchmark of the issue in one run: ``python -m bench [--quick]``.

Runs, one after the other, each printing its own table with ratios: transcode cost against
the PyAV bound (``bench.transcode``), against aiortc's MediaRecorder (``bench.mediarecorder``),
passthrough CPU and capacity against a bare aiortc peer (``bench.passthrough``) and memory
per recording (``bench.memory``). ``--quick`` shortens every run (numbers for a smoke check,
not for bench/RESULTS.md). The upload benchmark (``bench.upload``) needs Node's tus server
and runs on its own.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from bench import mediarecorder, memory, passthrough, transcode

Main = Callable[[list[str] | None], int]

FULL: list[tuple[str, Main, list[str]]] = [
    ("transcode", transcode.main, []),
    ("mediarecorder", mediarecorder.main, []),
    ("passthrough", passthrough.main, []),
    ("memory", memory.main, ["--qualities", "source,medium", "--rooms", "2"]),
]
QUICK: list[tuple[str, Main, list[str]]] = [
    ("transcode", transcode.main, ["--seconds", "3", "--repeat", "1", "--qualities", "low",
                                   "--formats", "webm"]),
    ("mediarecorder", mediarecorder.main, ["--seconds", "4", "--repeat", "1", "--formats",
                                           "webm"]),
    ("passthrough", passthrough.main, ["--streams", "2", "--window", "5", "--publishers",
                                       "1"]),
    ("memory", memory.main, ["--rooms", "1", "--settle", "3", "--qualities", "source"]),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short runs (a smoke check)")
    args = parser.parse_args(argv)
    failed = []
    for name, run, extra in QUICK if args.quick else FULL:
        print(f"\n## {name}\n", flush=True)
        if run(extra) != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
