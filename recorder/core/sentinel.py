"""Where a Sentinel-managed store is: the Sentinels to ask, the primary's name, and how to
talk to them (docs/operations.md, "Redis with Sentinel")."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SentinelStore:
    sentinels: list[tuple[str, int]]
    master: str
    password: str | None = field(default=None, repr=False)
    sentinel_password: str | None = field(default=None, repr=False)
    db: int = 0
    tls: bool = False
