"""Every status change is announced on `{prefix}events` with the fields docs/operations.md lists."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
import redis.asyncio as aioredis

from recorder.core.errors import InvalidTransition
from recorder.core.lifecycle import Action, apply, now
from recorder.core.limits import Limits
from recorder.core.models import RecordingState, Status
from recorder.state import KeySpace, StateStore, StatusEvent
from tests.state.conftest import ClientFactory
from tests.support.states import make_state

LIMITS = Limits(max_per_room=5, max_per_user=5, max_concurrent=5)
FIELDS = {"type", "recording_id", "room_id", "user_id", "status", "at"}


class Listener:
    """A subscriber on its own connection, as the API's room broadcast would be."""

    def __init__(self, client: aioredis.Redis, channel: str) -> None:
        self._pubsub = client.pubsub()
        self._channel = channel

    async def start(self) -> None:
        await self._pubsub.subscribe(self._channel)
        # Wait for the confirmation so nothing published afterwards is missed.
        confirmation = await self._pubsub.get_message(timeout=10.0)
        assert confirmation is not None
        assert confirmation["type"] == "subscribe"

    async def raw(self, wait: float = 10.0) -> dict[str, Any] | None:
        message: dict[str, Any] | None = await self._pubsub.get_message(timeout=wait)
        return message

    async def take(self, count: int) -> list[StatusEvent]:
        events: list[StatusEvent] = []
        for _ in range(count):
            message = await self.raw()
            assert message is not None, f"only {len(events)} of {count} events arrived"
            assert message["type"] == "message"
            assert message["channel"] == self._channel
            events.append(StatusEvent.model_validate_json(message["data"]))
        return events

    async def close(self) -> None:
        await self._pubsub.aclose()


def step(state: RecordingState, action: Action) -> RecordingState:
    return apply(state, action, now(), error="capture: gone")


async def test_a_recording_s_life_is_announced(
    new_client: ClientFactory, store: StateStore, keys: KeySpace
) -> None:
    listener = Listener(await new_client(), keys.events())
    await listener.start()
    before = datetime.now(UTC) - timedelta(seconds=1)

    rec = await store.admit(make_state("room-a", "user-a"), LIMITS)
    rid = rec.recording_id
    for action in (Action.MEDIA_STARTED, Action.PAUSE, Action.RESUME, Action.STOP):
        await store.update(rid, partial(step, action=action))
    await store.update(rid, lambda s: s.model_copy(update={"file_size_bytes": 10}))  # no event
    await store.update(rid, partial(step, action=Action.COMPLETE))
    cancelled = await store.admit(make_state("room-a", "user-b"), LIMITS)
    await store.update(cancelled.recording_id, partial(step, action=Action.CANCEL))
    failed = await store.admit(make_state("room-b", "user-a"), LIMITS)
    await store.update(failed.recording_id, partial(step, action=Action.FAIL))
    # A marker written after everything: if it is the next message, no extra event was sent.
    await (await new_client()).publish(keys.events(), "end")

    events = await listener.take(10)
    marker = await listener.raw()
    await listener.close()
    assert marker is not None
    assert marker["data"] == "end"

    assert [(e.type, e.status) for e in events[:6]] == [
        ("recording_pending", Status.PENDING),
        ("recording_started", Status.RECORDING),
        ("recording_paused", Status.PAUSED),
        ("recording_resumed", Status.RECORDING),
        ("recording_stopped", Status.PROCESSING),
        ("recording_completed", Status.COMPLETED),
    ]
    assert {(e.recording_id, e.room_id, e.user_id) for e in events[:6]} == {
        (rid, "room-a", "user-a")
    }
    assert [(e.type, e.recording_id, e.room_id, e.user_id) for e in events[6:]] == [
        ("recording_pending", cancelled.recording_id, "room-a", "user-b"),
        ("recording_cancelled", cancelled.recording_id, "room-a", "user-b"),
        ("recording_pending", failed.recording_id, "room-b", "user-a"),
        ("recording_failed", failed.recording_id, "room-b", "user-a"),
    ]
    assert all(e.at.endswith("Z") for e in events)
    stamps = [datetime.fromisoformat(e.at) for e in events]
    assert stamps == sorted(stamps)
    assert before <= stamps[0] <= stamps[-1] <= datetime.now(UTC)


async def test_messages_carry_exactly_the_documented_fields(
    new_client: ClientFactory, store: StateStore, keys: KeySpace
) -> None:
    listener = Listener(await new_client(), keys.events())
    await listener.start()
    rec = await store.admit(make_state("room-x", "user-y"), LIMITS)
    message = await listener.raw()
    await listener.close()
    assert message is not None
    body = json.loads(message["data"])
    assert set(body) == FIELDS
    assert body["type"] == "recording_pending"
    assert body["status"] == "pending"
    assert (body["recording_id"], body["room_id"], body["user_id"]) == (
        rec.recording_id,
        "room-x",
        "user-y",
    )


async def test_a_refused_change_publishes_nothing(
    new_client: ClientFactory, store: StateStore, keys: KeySpace
) -> None:
    rec = await store.admit(make_state(), LIMITS)
    listener = Listener(await new_client(), keys.events())
    await listener.start()
    with pytest.raises(InvalidTransition):
        await store.update(rec.recording_id, partial(step, action=Action.RESUME))
    await store.update(rec.recording_id, partial(step, action=Action.MEDIA_STARTED))
    [event] = await listener.take(1)
    await listener.close()
    assert event.type == "recording_started"
