"""How long to wait between tries of one upload step, and when to give up (tenacity).

Exponential backoff with "equal jitter": the n-th wait is half of ``min(cap, initial * 2**n)``
plus a random part of the other half. Full jitter could draw near-zero waits several times
in a row and burn the attempts within seconds; equal jitter keeps a floor, so the attempts
always span a known minimum time (with the defaults, over two minutes: a target that is down
for a minute delays an upload but does not fail it), while workers that failed together
still spread out. A server's Retry-After (429, 503) wins when it asks for longer, up to
``max_retry_after``.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_base

from workers.errors import TransientError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 10  # tries of one step, the first included
    initial: float = 1.0  # seconds before the second try (its ceiling, before jitter)
    cap: float = 60.0  # no single backoff wait is longer
    max_retry_after: float = 600.0  # nor a Retry-After we honour

    def ceiling(self, retry_number: int) -> float:
        """The backoff ceiling before retry `retry_number` (1 = the second try)."""
        return min(self.cap, self.initial * 2.0 ** (retry_number - 1))

    def backoff(self, retry_number: int, rng: Callable[[], float] = random.random) -> float:
        ceiling = self.ceiling(retry_number)
        return ceiling / 2 + rng() * ceiling / 2

    def minimum_total(self) -> float:
        """The least time all retries of one step take (each wait at its floor)."""
        return sum(self.ceiling(n) / 2 for n in range(1, self.attempts))

    def retrying(self, what: str, log_prefix: str) -> AsyncRetrying:
        """Tenacity's loop for one step: TransientError retried, anything else raised."""
        return AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=_Wait(self),
            retry=retry_if_exception_type(TransientError),
            before_sleep=_log_retry(what, log_prefix),
            reraise=True,
        )


class _Wait(wait_base):
    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy

    def __call__(self, retry_state: RetryCallState) -> float:
        wait = self._policy.backoff(retry_state.attempt_number)
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None and outcome.failed else None
        if isinstance(exc, TransientError) and exc.retry_after is not None:
            wait = max(wait, min(exc.retry_after, self._policy.max_retry_after))
        return wait


def _log_retry(what: str, log_prefix: str) -> Callable[[RetryCallState], None]:
    def log(retry_state: RetryCallState) -> None:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        wait = retry_state.next_action.sleep if retry_state.next_action is not None else 0.0
        logger.warning("%s: %s failed (try %d): %s; next try in %.1f s", log_prefix, what,
                       retry_state.attempt_number, exc, wait)
    return log
