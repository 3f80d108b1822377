"""What a node announces in ``{prefix}node:{node_id}``; its expiry is how others see it die.

The same JSON is kept as ``{prefix}node-seen:{node_id}`` for a day (LAST_SEEN_SECONDS), so
an operator still sees a node whose heartbeat stopped: when it was last heard from and what
it said then (docs/operations.md). Fields added after the first release have defaults, so
a heartbeat from an older node still parses.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from recorder.core.fleet import NodeDisk

LAST_SEEN_SECONDS = 24 * 3600


class NodeInfo(BaseModel):
    node_id: str
    public_url: str
    pid: int
    started_at: datetime
    active: int = 0
    cpu_used: float = 0.0
    cpu_capacity: float = 0.0
    version: str = ""
    sent_at: datetime | None = None  # when this heartbeat was written
    heartbeat_seconds: float = 0.0  # how often the node beats (0: unknown)
    rooms: int = 0  # rooms with a publisher or a recording here
    room_workers: int = 0  # room processes running
    draining: bool = False
    disk: NodeDisk | None = None  # None until the node measured it
