"""What a node announces in ``{prefix}node:{node_id}``; its expiry is how others see it die."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class NodeInfo(BaseModel):
    node_id: str
    public_url: str
    pid: int
    started_at: datetime
    active: int = 0
    cpu_used: float = 0.0
    cpu_capacity: float = 0.0
