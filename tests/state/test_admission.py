"""Atomic admission: bursts of starts on several nodes never exceed a limit (docs/operations.md)."""

from __future__ import annotations

import asyncio
from collections import Counter
from functools import partial

import pytest
import redis.asyncio as aioredis

from recorder.core.errors import InvalidInput, LimitReached
from recorder.core.lifecycle import Action, apply, now
from recorder.core.limits import Limits
from recorder.core.models import RecordingState
from recorder.state import KeySpace, StateStore
from tests.state.conftest import StoreFactory
from tests.support.states import make_state

LIMITS = Limits(max_per_room=1, max_per_user=3, max_concurrent=10)


async def burst(
    new_store: StoreFactory, states: list[RecordingState], limits: Limits = LIMITS
) -> list[tuple[RecordingState, RecordingState | LimitReached]]:
    """Admit all at once, alternating between two nodes' stores; each start with its outcome."""
    one, two = await new_store(), await new_store()
    # Open the connections first, so that the starts really reach Redis together.
    await asyncio.gather(*(store.ping() for store in (one, two) for _ in range(10)))
    results = await asyncio.gather(
        *((one if i % 2 else two).admit(s, limits) for i, s in enumerate(states)),
        return_exceptions=True,
    )
    outcomes: list[tuple[RecordingState, RecordingState | LimitReached]] = []
    for state, result in zip(states, results, strict=True):
        assert isinstance(result, RecordingState | LimitReached), result
        outcomes.append((state, result))
    return outcomes


def split(
    outcomes: list[tuple[RecordingState, RecordingState | LimitReached]],
) -> tuple[list[RecordingState], list[LimitReached]]:
    admitted = [r for _, r in outcomes if isinstance(r, RecordingState)]
    refused = [r for _, r in outcomes if isinstance(r, LimitReached)]
    return admitted, refused


async def test_one_room(new_store: StoreFactory, store: StateStore) -> None:
    outcomes = await burst(new_store, [make_state("room-a", f"user-{i}") for i in range(20)])
    admitted, refused = split(outcomes)
    assert len(admitted) == 1
    assert {(r.limit, r.value) for r in refused} == {("max_per_room", 1)}
    assert await store.active_ids() == {admitted[0].recording_id}


async def test_one_user(new_store: StoreFactory) -> None:
    outcomes = await burst(new_store, [make_state(f"room-{i}", "user-a") for i in range(20)])
    admitted, refused = split(outcomes)
    assert len(admitted) == 3
    assert {(r.limit, r.value) for r in refused} == {("max_per_user", 3)}


async def test_everyone(new_store: StoreFactory, store: StateStore) -> None:
    outcomes = await burst(new_store, [make_state(f"room-{i}", f"user-{i}") for i in range(20)])
    admitted, refused = split(outcomes)
    assert len(admitted) == 10
    assert {(r.limit, r.value) for r in refused} == {("max_concurrent", 10)}
    assert await store.active_ids() == {s.recording_id for s in admitted}


@pytest.mark.parametrize("rooms", [3, 8, 14])
async def test_mixed_bursts_respect_every_limit(
    new_store: StoreFactory, store: StateStore, rooms: int
) -> None:
    states = [make_state(f"room-{i % rooms}", f"user-{i % 4}") for i in range(20)]
    outcomes = await burst(new_store, states)
    admitted, _ = split(outcomes)

    per_room = Counter(s.room_id for s in admitted)
    per_user = Counter(s.user_id for s in admitted)
    assert max(per_room.values()) == 1
    assert max(per_user.values()) <= 3
    assert len(admitted) <= 10
    assert await store.active_ids() == {s.recording_id for s in admitted}
    # Nothing was released, so counts only grew: the limit a refusal names is full now, and a
    # start was refused only if one of its limits is full now (no slot was wasted).
    full = {
        "max_per_room": lambda s: per_room[s.room_id] == 1,
        "max_per_user": lambda s: per_user[s.user_id] == 3,
        "max_concurrent": lambda s: len(admitted) == 10,
    }
    for state, result in outcomes:
        if isinstance(result, LimitReached):
            assert full[result.limit](state), (result.limit, state.room_id, state.user_id)


async def test_limits_are_named_in_order(store: StateStore) -> None:
    tight = Limits(max_per_room=1, max_per_user=1, max_concurrent=1)
    await store.admit(make_state("room-a", "user-a"), tight)
    cases = [
        (make_state("room-a", "user-a"), "max_per_room"),  # room, user and total full
        (make_state("room-b", "user-a"), "max_per_user"),  # user and total full
        (make_state("room-c", "user-c"), "max_concurrent"),
    ]
    for state, expected in cases:
        with pytest.raises(LimitReached) as info:
            await store.admit(state, tight)
        assert info.value.limit == expected
        assert info.value.value == 1


def step(state: RecordingState, action: Action) -> RecordingState:
    return apply(state, action, now(), error="capture: gone")


@pytest.mark.parametrize(
    "release",
    [
        [Action.MEDIA_STARTED, Action.STOP],  # -> processing
        [Action.MEDIA_STARTED, Action.PAUSE, Action.STOP],
        [Action.CANCEL],
        [Action.MEDIA_STARTED, Action.CANCEL],
        [Action.FAIL],
        [Action.MEDIA_STARTED, Action.PAUSE, Action.FAIL],
    ],
    ids=lambda actions: "-".join(actions),
)
async def test_a_slot_frees_when_a_recording_leaves_active(
    store: StateStore, raw: aioredis.Redis, keys: KeySpace, release: list[Action]
) -> None:
    held = await store.admit(make_state("room-a", "user-a"), LIMITS)
    for action in release[:-1]:  # still active: the slot stays taken
        await store.update(held.recording_id, partial(step, action=action))
        with pytest.raises(LimitReached):
            await store.admit(make_state("room-a", "user-b"), LIMITS)
    await store.update(held.recording_id, partial(step, action=release[-1]))
    for key in (keys.active(), keys.active_room("room-a"), keys.active_user("user-a")):
        assert await raw.smembers(key) == set()

    again = await store.admit(make_state("room-a", "user-b"), LIMITS)
    assert await store.active_ids() == {again.recording_id}


async def test_a_state_that_expired_does_not_hold_a_slot(
    store: StateStore, raw: aioredis.Redis, keys: KeySpace
) -> None:
    lost = await store.admit(make_state("room-a", "user-a"), LIMITS)
    await raw.delete(keys.state(lost.recording_id))  # its TTL ran out while it was active
    fresh = await store.admit(make_state("room-a", "user-b"), LIMITS)
    assert await store.active_ids() == {fresh.recording_id}


async def test_the_same_recording_cannot_be_admitted_twice(store: StateStore) -> None:
    state = make_state()
    await store.admit(state, Limits(5, 5, 5))
    with pytest.raises(InvalidInput):
        await store.admit(state, Limits(5, 5, 5))
    assert len(await store.active_ids()) == 1


async def test_cpu_is_refused_with_nothing_written(
    store: StateStore, raw: aioredis.Redis, keys: KeySpace
) -> None:
    state = make_state("room-cpu", "user-cpu")
    with pytest.raises(LimitReached) as refused:
        await store.admit(state, LIMITS, cpu_refused=2.0)
    assert (refused.value.limit, refused.value.value, refused.value.status) == ("cpu", 2.0, 429)
    assert await raw.exists(keys.state(state.recording_id)) == 0
    assert not await raw.sismember(keys.active(), state.recording_id)
    assert await store.admit(state, LIMITS)  # the same start fits once the node has room


async def test_the_shared_limits_are_named_before_cpu(store: StateStore) -> None:
    await store.admit(make_state("room-full", "user-1"), LIMITS)
    with pytest.raises(LimitReached) as refused:
        await store.admit(make_state("room-full", "user-2"), LIMITS, cpu_refused=2.0)
    assert refused.value.limit == "max_per_room"
