"""The store side of re-assertion (docs/operations.md, "When the store fails"): the epoch
tells a node that the store lost its data, admission waits for the nodes to write back what
they run, and writing back never goes over a newer version and queues lost webhooks once."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis

from recorder.core.errors import LimitReached, Unavailable
from recorder.core.lifecycle import Action, apply, now
from recorder.core.limits import Limits
from recorder.core.webhooks import WebhookRouting
from recorder.state import KeySpace, StateStore
from recorder.state.reassert import StoreReassertion
from tests.state.conftest import INDEX_TTL, STATE_TTL, ClientFactory
from tests.support.states import make_state

LIMITS = Limits(max_per_room=1, max_per_user=3, max_concurrent=10)
GATE = 60.0
HOOK = "http://127.0.0.1:9/hook"


async def node(new_client: ClientFactory, keys: KeySpace
               ) -> tuple[StateStore, StoreReassertion, aioredis.Redis]:
    client = await new_client()
    store = StateStore(client, keys, STATE_TTL, INDEX_TTL, epoch_gated=True,
                       webhooks=WebhookRouting(HOOK))
    return store, StoreReassertion(client, keys, STATE_TTL, INDEX_TTL), client


async def test_a_new_store_opens_at_once_and_a_lost_one_waits(
        new_client: ClientFactory, keys: KeySpace) -> None:
    store, side, client = await node(new_client, keys)
    with pytest.raises(Unavailable):  # no epoch yet: nothing is admitted
        await store.admit(make_state(), LIMITS)
    first = await side.epoch(None, GATE)
    assert (first.lost, first.gate_seconds) == (False, 0)
    await store.admit(make_state(), LIMITS)

    await client.flushall()  # what a restart without persistence looks like
    with pytest.raises(Unavailable):
        await store.admit(make_state(room_id="room-2"), LIMITS)
    again = await side.epoch(first.id, GATE)
    assert again.lost
    assert again.id != first.id
    assert 0 < again.gate_seconds <= GATE
    with pytest.raises(Unavailable) as refused:
        await store.admit(make_state(room_id="room-2"), LIMITS)
    assert refused.value.retry_after >= 1

    # another node that knew the old epoch learns of the loss too, and moves the gate
    other = await side.epoch(first.id, GATE)
    assert other.lost
    assert other.id == again.id
    assert (await side.epoch(again.id, GATE)).lost is False


async def test_writing_back_restores_state_sets_and_lost_webhooks_once(
        new_client: ClientFactory, keys: KeySpace) -> None:
    store, side, client = await node(new_client, keys)
    known = await side.epoch(None, GATE)
    state = await store.admit(make_state(), LIMITS)
    state = await store.update(state.recording_id,
                               lambda s: apply(s, Action.MEDIA_STARTED, now()))
    jobs = store.written_webhooks.of(state.recording_id)
    assert [v for v, _ in jobs] == [2]  # recording.started

    await client.flushall()
    await side.epoch(known.id, 0)
    holds, lacks = store.membership(state)
    done = await side.recording(state, holds, lacks, jobs)
    assert (done.written, done.stored_version, done.webhooks_queued) == (True, -1, 1)
    store.written_webhooks.requeued(state.recording_id, done.stored_version)
    assert (await store.get(state.recording_id)).version == state.version
    assert state.recording_id in await client.smembers(keys.active_room(state.room_id))
    queued: Any = await client.xrange(keys.jobs_webhook())
    assert len(queued) == 1
    assert '"recording.started"' in queued[0][1]["job"]
    with pytest.raises(LimitReached):  # the room's slot is held again
        await store.admit(make_state(room_id=state.room_id, user_id="user-2"), LIMITS)

    # the next beat writes nothing and queues no webhook a second time
    again = await side.recording(state, holds, lacks,
                                 store.written_webhooks.of(state.recording_id))
    assert (again.written, again.webhooks_queued) == (False, 0)

    # a newer version in the store (another writer) is never overwritten
    newer = await store.update(state.recording_id,
                               lambda s: apply(s, Action.PAUSE, now()))
    stale = await side.recording(state, holds, lacks, [])
    assert (stale.written, stale.stored_version) == (False, newer.version)
    assert (await store.get(state.recording_id)).status.value == "paused"
