"""Which worker a new room goes to: least CPU price, then fewest rooms, then lowest index."""

from __future__ import annotations

from recorder.core.cpu import recording_cores
from recorder.core.presets import Layout, Quality
from recorder.service.placement import WorkerLoad, least_loaded


def place(rooms: list[float], workers: int) -> list[list[float]]:
    """Open rooms in turn (each at its price once placed): the rooms of each worker."""
    hosted: list[list[float]] = [[] for _ in range(workers)]
    for price in rooms:
        index = least_loaded([WorkerLoad(i, sum(h), len(h)) for i, h in enumerate(hosted)])
        hosted[index].append(price)
    return hosted


def test_eight_equal_rooms_on_two_workers_land_four_and_four() -> None:
    price = recording_cores(Quality.MEDIUM, Layout.COMPOSITE, False, 1)
    assert [len(rooms) for rooms in place([price] * 8, 2)] == [4, 4]
    assert [len(rooms) for rooms in place([0.0] * 8, 2)] == [4, 4]  # by room count alone


def test_a_passthrough_room_weighs_less_than_one_transcoding_high() -> None:
    source = recording_cores(Quality.SOURCE, Layout.COMPOSITE, False, 1)
    high = recording_cores(Quality.HIGH, Layout.COMPOSITE, False, 1)
    assert source < high
    # worker 0 has a `high` room, worker 1 three `source` rooms: cheaper, so the next room
    # goes to worker 1 although it hosts more rooms
    loads = [WorkerLoad(0, high, 1), WorkerLoad(1, 3 * source, 3)]
    assert 3 * source < high
    assert least_loaded(loads) == 1
    # a high room and many source rooms spread by price, not count
    hosted = place([high, *[source] * 6], 2)
    assert hosted[0] == [high]
    assert hosted[1] == [source] * 6


def test_ties_go_to_the_fewest_rooms_then_the_lowest_index() -> None:
    assert least_loaded([WorkerLoad(0, 1.0, 3), WorkerLoad(1, 1.0, 2)]) == 1
    assert least_loaded([WorkerLoad(0, 1.0, 2), WorkerLoad(1, 1.0, 2)]) == 0
    assert least_loaded([WorkerLoad(1, 0.1 + 0.2, 1), WorkerLoad(0, 0.3, 1)]) == 0
