"""This node's view of the store's restore gate: while the nodes write back what a lost store
forgot, starts and WHIP posts answer 503 with Retry-After (docs/operations.md, "When the
store fails").

Starts are also refused by the store itself (the ADMIT script reads the epoch), so a node
that has not noticed the loss yet admits nothing either; a WHIP post has no such script, so
it asks here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from recorder.core.errors import Unavailable


class RestoreGate:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._until = -math.inf

    def close_for(self, seconds: float) -> None:
        """The store's gate stays closed `seconds` from now (0: it is open)."""
        self._until = self._clock() + seconds if seconds > 0 else -math.inf

    def check(self, what: str) -> None:
        """Unavailable (503) while the gate is closed."""
        left = self._until - self._clock()
        if left > 0:
            raise Unavailable(f"{what}: the store lost its data and the nodes are writing "
                              "back what they run; try again shortly",
                              retry_after=max(1, math.ceil(left)))
