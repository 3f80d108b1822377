"""Heartbeats, and an unreachable store reported as 503 rather than a crash."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

from recorder.core.errors import Unavailable
from recorder.core.limits import Limits
from recorder.state import EMBEDDED, KeySpace, NodeInfo, StateStore, connect
from tests.support.redis_server import free_port
from tests.support.states import make_state


def info(node_id: str, active: int = 0) -> NodeInfo:
    return NodeInfo(
        node_id=node_id,
        public_url=f"http://{node_id}",
        pid=os.getpid(),
        started_at=datetime(2026, 1, 1, tzinfo=UTC),
        active=active,
        cpu_used=0.5,
        cpu_capacity=2.0,
    )


async def test_heartbeat_lives_three_beats(
    store: StateStore, raw: aioredis.Redis, keys: KeySpace
) -> None:
    await store.heartbeat(info("node-a:8080", active=2), heartbeat_seconds=5)
    assert 14_000 <= await raw.pttl(keys.node("node-a:8080")) <= 15_000
    stored = await raw.get(keys.node("node-a:8080"))
    assert stored is not None
    assert NodeInfo.model_validate_json(stored) == info("node-a:8080", active=2)
    assert await store.node("node-a:8080") == info("node-a:8080", active=2)

    await raw.pexpire(keys.node("node-a:8080"), 10)
    await store.heartbeat(info("node-a:8080", active=3), heartbeat_seconds=5)
    assert await raw.pttl(keys.node("node-a:8080")) > 14_000
    assert await store.node("node-a:8080") == info("node-a:8080", active=3)


async def test_nodes_lists_live_heartbeats_only(
    store: StateStore, raw: aioredis.Redis, keys: KeySpace
) -> None:
    await store.heartbeat(info("node-b"), heartbeat_seconds=5)
    await store.heartbeat(info("node-a"), heartbeat_seconds=5)
    await store.heartbeat(info("node-c"), heartbeat_seconds=5)
    await raw.delete(keys.node("node-c"))  # missed three beats
    await raw.set(keys.state("node:not-a-node"), "x")  # similar names are not nodes
    assert [n.node_id for n in await store.nodes()] == ["node-a", "node-b"]
    assert await store.node("node-c") is None


async def test_embedded_clients_share_one_store() -> None:
    one, two = await connect(EMBEDDED), await connect(EMBEDDED)
    try:
        await one.flushall()
        keys = KeySpace("shared:")
        a = StateStore(one, keys, 60, 60)
        b = StateStore(two, keys, 60, 60)
        rec = await a.admit(make_state(), Limits(1, 1, 1))
        assert await b.get(rec.recording_id) == rec
        await b.ping()
    finally:
        await one.aclose()
        await two.aclose()


async def test_unreachable_redis_is_unavailable() -> None:
    client = await connect(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    store = StateStore(client, KeySpace(), 60, 60)
    try:
        with pytest.raises(Unavailable, match="store unreachable"):
            await store.ping()
        with pytest.raises(Unavailable, match="store unreachable"):
            await store.get("any")
        with pytest.raises(Unavailable, match="store unreachable"):
            await store.admit(make_state(), Limits(1, 1, 1))
        with pytest.raises(Unavailable, match="store unreachable"):
            await store.update("any", lambda s: s)
    finally:
        await client.aclose()
