"""What a process tree costs, read from /proc: CPU seconds and proportional memory (PSS).

recorderd runs each active room in a child process, so "the recorder's CPU" is the sum over
recorderd and its descendants; threads are included (``/proc/<pid>/stat`` counts them).
PSS splits shared pages among the processes mapping them, so summing it over the tree
counts the libraries the room children share with each other once, not once per child.
"""

from __future__ import annotations

import os
from pathlib import Path

TICK = float(os.sysconf("SC_CLK_TCK"))


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()  # fields from the state on (the name may hold ")")


def tree(root: int) -> list[int]:
    """``root`` and every live descendant."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None and fields[0] != "Z":
                parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, []))
    return found


def cpu(pids: list[int]) -> dict[int, float]:
    """utime + stime in seconds of each pid still there."""
    out: dict[int, float] = {}
    for pid in pids:
        fields = _stat(pid)
        if fields is not None:
            out[pid] = (int(fields[11]) + int(fields[12])) / TICK
    return out


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two readings by the processes alive at both (a process
    born in between counts from its start)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def pss_mib(pid: int) -> float:
    """PSS of one process in MiB (0 if it is gone)."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0.0
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return 0.0


def tree_pss_mib(root: int) -> dict[int, float]:
    return {pid: pss_mib(pid) for pid in tree(root)}
