"""Per-user caps in the store (docs/security.md, "Caps"): bursts of claims and starts on two
nodes' stores never hold more than a cap, on real Redis and on the embedded store."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from recorder.core.errors import LimitReached
from recorder.core.limits import Limits
from recorder.core.models import RecordingState
from recorder.state import KeySpace, StateStore
from recorder.state.slots import PUBLISHERS, WATCHERS
from tests.state.conftest import StoreFactory
from tests.support.states import make_state

OPEN = Limits(max_per_room=100, max_per_user=100, max_concurrent=100)


async def test_a_burst_of_claims_on_two_nodes_holds_at_most_the_cap(
        new_store: StoreFactory, raw: aioredis.Redis, keys: KeySpace) -> None:
    one, two = await new_store(), await new_store()
    for node in ("node-1", "node-2"):
        await raw.set(keys.node(node), "{}", ex=60)
    results = await asyncio.gather(
        *((one if i % 2 else two).slots.claim(WATCHERS, "u", f"s{i}", f"node-{1 + i % 2}", 8)
          for i in range(40)), return_exceptions=True)
    refused = [r for r in results if isinstance(r, LimitReached)]
    assert len(refused) == 32
    assert {r.limit for r in refused} == {"max_watchers_per_user"}
    assert await raw.hlen(keys.slots(WATCHERS, "u")) == 8
    assert await raw.hlen(keys.slots(PUBLISHERS, "u")) == 0  # kinds are apart


async def test_slots_of_a_node_without_heartbeat_are_dropped(
        store: StateStore, raw: aioredis.Redis, keys: KeySpace) -> None:
    await raw.hset(keys.slots(PUBLISHERS, "u"), mapping={"a": "gone-node", "b": "gone-node"})
    await store.slots.claim(PUBLISHERS, "u", "c", "this-node", 1)
    assert await raw.hgetall(keys.slots(PUBLISHERS, "u")) == {"c": "this-node"}
    await store.slots.release(PUBLISHERS, "u", "c")
    assert await raw.exists(keys.slots(PUBLISHERS, "u")) == 0


async def test_a_node_restarting_drops_the_slots_its_last_run_left(
        store: StateStore, raw: aioredis.Redis, keys: KeySpace) -> None:
    await raw.hset(keys.slots(PUBLISHERS, "u"), mapping={"a": "me", "b": "other"})
    await raw.hset(keys.slots(WATCHERS, "v"), mapping={"c": "me"})
    assert await store.slots.release_node("me") == 2
    assert await raw.hgetall(keys.slots(PUBLISHERS, "u")) == {"b": "other"}
    assert await raw.exists(keys.slots(WATCHERS, "v")) == 0


async def test_a_burst_of_starts_admits_at_most_the_rate(
        new_store: StoreFactory, raw: aioredis.Redis, keys: KeySpace) -> None:
    one, two = await new_store(), await new_store()
    states = [make_state(f"room-{i}", "fast-user") for i in range(20)]
    results = await asyncio.gather(
        *((one if i % 2 else two).admit(s, OPEN, starts_per_minute=5)
          for i, s in enumerate(states)), return_exceptions=True)
    admitted = [r for r in results if isinstance(r, RecordingState)]
    refused = [r for r in results if isinstance(r, LimitReached)]
    assert (len(admitted), len(refused)) == (5, 15)
    assert {r.limit for r in refused} == {"start_rate"}
    assert all(1 <= r.retry_after <= 60 for r in refused)
    assert await raw.zcard(keys.starts("fast-user")) == 5  # refusals are not counted
    assert 0 < await raw.pttl(keys.starts("fast-user")) <= 60_000
    other = await one.admit(make_state("room-x", "slow-user"), OPEN, starts_per_minute=5)
    assert other.status.value == "pending"


async def test_node_local_refusals_come_around_the_rate(store: StateStore) -> None:
    """cpu before start_rate, start_rate before max_rooms."""
    await store.admit(make_state("r1", "u"), OPEN, starts_per_minute=1)
    with pytest.raises(LimitReached) as cpu:
        await store.admit(make_state("r2", "u"), OPEN, cpu_refused=2.0, starts_per_minute=1)
    assert cpu.value.limit == "cpu"
    with pytest.raises(LimitReached) as rate:
        await store.admit(make_state("r2", "u"), OPEN, starts_per_minute=1, rooms_refused=64)
    assert rate.value.limit == "start_rate"
    with pytest.raises(LimitReached) as rooms:
        await store.admit(make_state("r3", "v"), OPEN, starts_per_minute=1, rooms_refused=64)
    assert (rooms.value.limit, rooms.value.value) == ("max_rooms", 64)
