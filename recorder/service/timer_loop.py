"""The recordings' timers on this node: every quarter second each running recording is
checked against the no-media, max-duration and max-pause limits (the pure decision is
:func:`recorder.core.timers.due`), and idle rooms are closed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from recorder.core import lifecycle, timers
from recorder.core.errors import RecorderError
from recorder.core.models import StopReason
from recorder.service.room_record import RunningRecording
from recorder.service.rooms import RoomRegistry

logger = logging.getLogger(__name__)

TIMER_PERIOD_SECONDS = 0.25


class TimerLoop:
    def __init__(self, rooms: RoomRegistry, limits: timers.TimerLimits,
                 stop: Callable[[str, StopReason], Awaitable[Any]],
                 fail: Callable[[str, str], Awaitable[None]]) -> None:
        """``stop(recording_id, reason)`` and ``fail(recording_id, error)`` are the
        service's."""
        self._rooms = rooms
        self._limits = limits
        self._stop = stop
        self._fail = fail

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(TIMER_PERIOD_SECONDS)
            for running in self._rooms.recordings():
                if running.stopping:
                    continue
                try:
                    await self._check(running, loop.time())
                except RecorderError as exc:
                    logger.warning("recording %s: timer: %s", running.state.recording_id,
                                   exc.detail)
            await self._rooms.close_idle()

    async def _check(self, running: RunningRecording, now: float) -> None:
        recording_id = running.state.recording_id
        reached = timers.due(running.state, self._limits, lifecycle.now(),
                             waited_seconds=now - running.admitted_at,
                             idle_seconds=running.idle_seconds)
        if isinstance(reached, timers.Fail):
            await self._fail(recording_id, reached.error)
        elif isinstance(reached, timers.Stop):
            await self._stop(recording_id, reached.reason)
