"""`processing:{node_id}` lists exactly the node's `processing` recordings (docs/operations.md)."""

from __future__ import annotations

from functools import partial

import redis.asyncio as aioredis

from recorder.core.lifecycle import Action, apply, now
from recorder.core.limits import Limits
from recorder.core.models import RecordingState, Status
from recorder.state import KeySpace, StateStore
from tests.support.states import make_state

LIMITS = Limits(max_per_room=5, max_per_user=5, max_concurrent=5)
NODE = "node-a:8080"


def step(state: RecordingState, action: Action) -> RecordingState:
    return apply(state, action, now(), error="upload: gave up")


async def test_membership_follows_the_status(
    store: StateStore, raw: aioredis.Redis, keys: KeySpace
) -> None:
    rec = await store.admit(make_state(node_id=NODE), LIMITS)
    rid = rec.recording_id
    expected = [
        (Action.MEDIA_STARTED, set()),
        (Action.STOP, {rid}),
        (Action.UPLOAD_FAILED, set()),
        (Action.RETRY_UPLOAD, {rid}),
        (Action.COMPLETE, set()),
    ]
    for action, members in expected:
        await store.update(rid, partial(step, action=action))
        assert await store.processing_ids(NODE) == members, action
    assert await raw.ttl(keys.processing(NODE)) in (-1, -2)  # no TTL (or gone when empty)
    assert (await store.get(rid)).status is Status.COMPLETED


async def test_a_failed_finalisation_leaves_the_set(store: StateStore) -> None:
    rec = await store.admit(make_state(node_id=NODE), LIMITS)
    other = await store.admit(make_state(room_id="room-2", node_id=NODE), LIMITS)
    for r in (rec, other):
        await store.update(r.recording_id, partial(step, action=Action.MEDIA_STARTED))
        await store.update(r.recording_id, partial(step, action=Action.STOP))
    assert await store.processing_ids(NODE) == {rec.recording_id, other.recording_id}
    await store.update(rec.recording_id, partial(step, action=Action.FAIL))
    assert await store.processing_ids(NODE) == {other.recording_id}


async def test_a_takeover_moves_it_to_the_new_node(store: StateStore) -> None:
    rec = await store.admit(make_state(node_id=NODE), LIMITS)
    await store.update(rec.recording_id, partial(step, action=Action.MEDIA_STARTED))
    await store.update(rec.recording_id, partial(step, action=Action.STOP))
    await store.update(rec.recording_id, lambda s: s.model_copy(update={"node_id": "node-b"}))
    assert await store.processing_ids(NODE) == set()
    assert await store.processing_ids("node-b") == {rec.recording_id}
