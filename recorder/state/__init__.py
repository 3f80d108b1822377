"""Recording state in Redis: keys, atomic scripts, and the compare-and-set store."""

from __future__ import annotations

from recorder.state.connection import EMBEDDED, connect, store_errors
from recorder.state.events import StatusEvent
from recorder.state.keys import KeySpace
from recorder.state.nodes import NodeInfo
from recorder.state.store import StateStore

__all__ = [
    "EMBEDDED",
    "KeySpace",
    "NodeInfo",
    "StateStore",
    "StatusEvent",
    "connect",
    "store_errors",
]
