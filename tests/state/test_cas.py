"""Compare-and-set writes: concurrent writers from several clients never lose an update."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from recorder.core.errors import InvalidTransition
from recorder.core.lifecycle import Action, apply, now
from recorder.core.limits import Limits
from recorder.core.models import RecordingState, Status
from recorder.state import KeySpace
from tests.state.conftest import StoreFactory
from tests.support.states import make_state

LIMITS = Limits(max_per_room=1, max_per_user=3, max_concurrent=10)


def bump(state: RecordingState) -> RecordingState:
    state.metadata["n"] = state.metadata.get("n", 0) + 1
    return state


async def test_fifty_concurrent_updates_from_two_clients_all_land(new_store: StoreFactory) -> None:
    one, two = await new_store(), await new_store()
    state = await one.admit(make_state(), LIMITS)
    writers = [(one if i % 2 else two).update(state.recording_id, bump) for i in range(50)]
    results = await asyncio.gather(*writers)

    final = await two.get(state.recording_id)
    assert final.metadata["n"] == 50
    assert final.version == 51
    # Each write saw a distinct predecessor: the counters written are exactly 1..50.
    assert sorted(r.metadata["n"] for r in results) == list(range(1, 51))


async def test_a_refused_transition_writes_nothing(
    new_store: StoreFactory, raw: aioredis.Redis, keys: KeySpace
) -> None:
    store = await new_store()
    state = await store.admit(make_state(), LIMITS)
    before = await raw.get(keys.state(state.recording_id))
    with pytest.raises(InvalidTransition):
        await store.update(state.recording_id, lambda s: apply(bump(s), Action.PAUSE, now()))
    assert await raw.get(keys.state(state.recording_id)) == before
    assert (await store.get(state.recording_id)).version == 1


async def test_stops_racing_on_two_nodes_stop_it_once(new_store: StoreFactory) -> None:
    one, two = await new_store(), await new_store()
    state = await one.admit(make_state(), LIMITS)
    await one.update(state.recording_id, lambda s: apply(s, Action.MEDIA_STARTED, now()))

    def stop(s: RecordingState) -> RecordingState:
        return apply(s, Action.STOP, now())

    # Open the connections first, so that the stops' reads really go out together.
    await asyncio.gather(*(store.ping() for store in (one, two) for _ in range(5)))
    results = await asyncio.gather(
        *((one if i % 2 else two).update(state.recording_id, stop) for i in range(10)),
        return_exceptions=True,
    )
    assert sum(isinstance(r, RecordingState) for r in results) == 1
    assert sum(isinstance(r, InvalidTransition) for r in results) == 9
    final = await one.get(state.recording_id)
    assert final.status is Status.PROCESSING
    assert final.version == 3
