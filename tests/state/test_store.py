"""What the store leaves in Redis: keys, JSON, TTLs and indexes (docs/operations.md)."""

from __future__ import annotations

import json
from collections.abc import Awaitable

import pytest
import redis.asyncio as aioredis

from recorder.core.errors import NotFound
from recorder.core.lifecycle import Action, apply, now
from recorder.core.limits import Limits
from recorder.core.models import RecordingState, Status
from recorder.core.paging import MAX_LIMIT, ListFilter, Page, PageRequest
from recorder.state import KeySpace, StateStore
from tests.state.conftest import INDEX_TTL, STATE_TTL
from tests.support.states import make_state

ALL = PageRequest(MAX_LIMIT)
LIMITS = Limits(max_per_room=1, max_per_user=3, max_concurrent=10)


async def test_admitted_state_is_stored_as_json_with_its_ttls(
    store: StateStore, raw: aioredis.Redis, keys: KeySpace
) -> None:
    state = make_state("room-a", "user-a")
    admitted = await store.admit(state, LIMITS)
    assert admitted.version == 1
    assert admitted.status is Status.PENDING

    stored = await raw.get(keys.state(state.recording_id))
    assert stored is not None
    assert json.loads(stored) == json.loads(admitted.to_json())
    assert await store.get(state.recording_id) == admitted

    assert STATE_TTL - 2 <= await raw.ttl(keys.state(state.recording_id)) <= STATE_TTL
    for index in (keys.room("room-a"), keys.user("user-a")):
        assert await raw.smembers(index) == {state.recording_id}
        assert INDEX_TTL - 2 <= await raw.ttl(index) <= INDEX_TTL
    for active in (keys.active(), keys.active_room("room-a"), keys.active_user("user-a")):
        assert await raw.smembers(active) == {state.recording_id}
        assert await raw.ttl(active) == -1
    assert await store.active_ids() == {state.recording_id}


async def test_every_write_renews_the_state_ttl(
    store: StateStore, raw: aioredis.Redis, keys: KeySpace
) -> None:
    state = await store.admit(make_state(), LIMITS)
    key = keys.state(state.recording_id)
    await raw.expire(key, 10)
    updated = await store.update(
        state.recording_id, lambda s: apply(s, Action.MEDIA_STARTED, now())
    )
    assert STATE_TTL - 2 <= await raw.ttl(key) <= STATE_TTL
    assert updated.version == 2
    stored = await raw.get(key)
    assert stored is not None
    assert json.loads(stored) == json.loads(updated.to_json())


async def test_adding_to_an_index_renews_its_ttl(
    store: StateStore, raw: aioredis.Redis, keys: KeySpace
) -> None:
    first = await store.admit(make_state("room-a", "user-a"), LIMITS)
    await store.update(first.recording_id, lambda s: apply(s, Action.CANCEL, now()))
    await raw.expire(keys.room("room-a"), 10)
    await raw.expire(keys.user("user-a"), 10)
    second = await store.admit(make_state("room-a", "user-a"), LIMITS)
    for index in (keys.room("room-a"), keys.user("user-a")):
        assert INDEX_TTL - 2 <= await raw.ttl(index) <= INDEX_TTL
        assert await raw.smembers(index) == {first.recording_id, second.recording_id}


async def test_lists_by_room_and_user(store: StateStore) -> None:
    a = await store.admit(make_state("room-a", "user-1"), LIMITS)
    b = await store.admit(make_state("room-b", "user-1"), LIMITS)
    c = await store.admit(make_state("room-c", "user-2"), LIMITS)
    b = await store.update(b.recording_id, lambda s: apply(s, Action.MEDIA_STARTED, now()))

    assert await listed(store.list_room("room-a", ALL)) == [a]
    assert await listed(store.list_room("room-nobody", ALL)) == []
    assert await listed(store.list_user("user-1", ALL)) == [b, a]  # newest first
    assert await listed(store.list_user("user-1", ALL, ListFilter(status="recording"))) == [b]
    assert await listed(store.list_user("user-1", ALL, ListFilter(status="completed"))) == []
    assert await listed(store.list_user("user-1", ALL, ListFilter(rooms=frozenset({"room-a"})))
                        ) == [a]
    assert await listed(store.list_user("user-2", ALL)) == [c]


async def test_pages_walk_an_index_newest_first_exactly_once(store: StateStore) -> None:
    many = Limits(max_per_room=1000, max_per_user=1000, max_concurrent=1000)
    made = [await store.admit(make_state("room-a", "user-1"), many) for _ in range(600)]
    seen: list[RecordingState] = []
    after = None
    while True:
        page = await store.list_room("room-a", PageRequest(7, after))
        assert len(page.items) <= 7
        seen += page.items
        if page.next is None:
            break
        after = page.next
    expected = sorted(made, key=lambda s: (s.created_at, s.recording_id), reverse=True)
    assert [s.recording_id for s in seen] == [s.recording_id for s in expected]


async def listed(page: Awaitable[Page[RecordingState]]) -> list[RecordingState]:
    found = await page
    assert found.next is None
    return found.items


async def test_expired_states_drop_out_of_lists_and_indexes(
    store: StateStore, raw: aioredis.Redis, keys: KeySpace
) -> None:
    gone = await store.admit(make_state("room-a", "user-1"), LIMITS)
    await store.update(gone.recording_id, lambda s: apply(s, Action.CANCEL, now()))
    kept = await store.admit(make_state("room-a", "user-1"), LIMITS)
    await raw.delete(keys.state(gone.recording_id))  # what its TTL would do

    assert await listed(store.list_room("room-a", ALL)) == [kept]
    assert await listed(store.list_user("user-1", ALL)) == [kept]
    assert await raw.smembers(keys.room("room-a")) == {kept.recording_id}
    assert await raw.smembers(keys.user("user-1")) == {kept.recording_id}
    with pytest.raises(NotFound):
        await store.get(gone.recording_id)


async def test_unknown_recording_is_not_found(store: StateStore) -> None:
    with pytest.raises(NotFound):
        await store.get("nope")
    with pytest.raises(NotFound):
        await store.update("nope", lambda s: s)


async def test_identity_fields_cannot_change(store: StateStore) -> None:
    state = await store.admit(make_state("room-a"), LIMITS)
    with pytest.raises(ValueError, match="room_id"):
        await store.update(state.recording_id, lambda s: s.model_copy(update={"room_id": "x"}))
    assert await store.get(state.recording_id) == state


async def test_prefix_keeps_stores_apart(
    store: StateStore, raw: aioredis.Redis, keys: KeySpace
) -> None:
    state = await store.admit(make_state(), LIMITS)
    names = [str(name) for name in await raw.keys("*")]  # str already: decode_responses
    assert names
    assert all(name.startswith(keys.prefix) for name in names)
    other = StateStore(raw, KeySpace("other:"), STATE_TTL, INDEX_TTL)
    with pytest.raises(NotFound):
        await other.get(state.recording_id)
    assert await other.active_ids() == set()
