"""The room benchmarks (passthrough CPU and capacity, memory) run end to end, tiny.

No timing is asserted (that is what the benchmarks report); what is asserted is what the
numbers rest on: both sides received the replayed stream, the recording kept every frame
the bound could take, the file decodes to them, and the memory steps saw the room workers.
"""

from __future__ import annotations

import os

from bench import memory, passthrough

WORKERS = len(os.sched_getaffinity(0))  # the pool's default size


async def test_passthrough_bench_compares_recorderd_with_the_bound() -> None:
    rows = await passthrough.run_all([1], per_room=1, window=1.0, processes=1,
                                     sides=("ours", "process"))

    row = rows[0]
    (bound,), (ours,), (process,) = row["bound"], row["ours"], row["process"]
    assert bound["sent"] > 3 * (30 + 50)  # warm-up plus window, at 30 fps and 50 audio/s
    assert bound["received"] == passthrough.deliverable(bound, 1)
    (aiortc_path,) = row["bound_aiortc"]  # frames through aiortc's thread arrive all the same
    assert aiortc_path["received"] == passthrough.deliverable(aiortc_path, 1)
    assert ours["children"] == WORKERS  # the room ran on one of the warm workers
    assert ours["decoded_video"] > 3 * 30
    assert ours["decoded_audio"] > 3 * 50
    by_state, by_file = passthrough.losses(ours, 1)
    assert by_state < passthrough.MAX_LOSS
    assert by_file < passthrough.MAX_LOSS
    assert bound["cpu"] > 0
    assert ours["cpu"] > 0
    assert process["children"] == 1  # the room ran in a process of its own
    assert max(passthrough.losses(process, 1)) < passthrough.MAX_LOSS
    assert "| 1 | 1 |" in passthrough.report(rows, 1.0)


async def test_memory_bench_sees_the_room_workers_and_the_recording() -> None:
    steps = await memory.measure(1, 1.0, ["source"])

    assert len(steps["idle"]["children"]) == WORKERS  # warm before any room
    assert all(pss > 10 for pss in steps["idle"]["children"])  # Python with aiortc loaded
    assert len(steps["rooms"]["children"]) == WORKERS
    # a room adds a few MiB to a worker, within the noise of a 1 s settle: nothing to assert
    assert len(steps["source"]["after"]["children"]) == WORKERS
    assert "`webm` `source` recordings" in memory.report(steps, 1, 1.0, ["source"], "webm")
