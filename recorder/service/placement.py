"""Which room worker a new room goes to (docs/architecture.md, "Room workers"): the one whose
rooms' recordings are priced lowest (core/cpu.py), ties to the one with the fewest rooms,
then the lowest index. A room stays on its worker while it lives."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

PRICE_DIGITS = 6  # sums of float prices that are equal must compare equal


@dataclass(frozen=True)
class WorkerLoad:
    index: int
    price: float  # cores its rooms' active recordings are priced at
    rooms: int


def least_loaded(workers: Sequence[WorkerLoad]) -> int:
    """The index of the worker a new room goes to."""
    return min(workers, key=lambda w: (round(w.price, PRICE_DIGITS), w.rooms, w.index)).index
