"""An in-memory RecordingsService for testing the HTTP edge on its own.

It keeps the real contract where the edge's answers depend on it: the core lifecycle
(so 409s are the real ones), ownership checks, the per-room limit (429 with Retry-After),
and a switch that makes every call unavailable (503), as a draining node would be.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from recorder.core.access import Caller
from recorder.core.errors import (
    InvalidInput,
    InvalidTransition,
    LimitReached,
    NotFound,
    Unavailable,
    Unprocessable,
)
from recorder.core.events import ChatEventBody, DataEventBody, Incoming, from_api
from recorder.core.lifecycle import ACTIVE, Action, apply
from recorder.core.models import RecordingState, StartRequest, Status
from recorder.core.paging import ListFilter, Newest, Page, PageRequest, Position
from recorder.core.presets import CODECS, Format, Quality, quality_settings

ANSWER_SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"


@dataclass
class FakeService:
    storage: Path
    max_per_room: int = 1
    unavailable: str | None = None  # when set, every call raises Unavailable with it
    not_ready: list[str] = field(default_factory=list)
    states: dict[str, RecordingState] = field(default_factory=dict)
    sessions: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # room, user, role
    start_requests: list[StartRequest] = field(default_factory=list)
    publishes: int = 0
    events: list[tuple[str, Incoming]] = field(default_factory=list)

    def _check_available(self) -> None:
        if self.unavailable is not None:
            raise Unavailable(self.unavailable, retry_after=7)

    async def start(self, caller: Caller, room_id: str, request: StartRequest) -> RecordingState:
        self._check_available()
        caller.check_room(room_id)
        active = [s for s in self.states.values()
                  if s.room_id == room_id and s.status in ACTIVE]
        if len(active) >= self.max_per_room:
            raise LimitReached("max_per_room", self.max_per_room, retry_after=11)
        self.start_requests.append(request)
        recording_id = str(uuid.uuid4())
        fmt = request.format or Format.WEBM
        quality = request.quality or Quality.MEDIUM
        name = f"recording_{recording_id}.{CODECS[fmt].extension}"
        state = RecordingState(
            recording_id=recording_id, room_id=room_id, user_id=caller.user_id,
            node_id="test:0", format=fmt, quality=quality,
            quality_settings=quality_settings(quality),
            local_path=str(self.storage / recording_id), file_name=name,
            created_at=datetime.now(UTC), max_duration_seconds=7200,
            metadata=request.metadata,
        )
        # The first frame arrives at once in this fake, so pause works right away.
        state = apply(state, Action.MEDIA_STARTED, datetime.now(UTC))
        self.states[recording_id] = state
        return state

    def _owned(self, caller: Caller, room_id: str, recording_id: str) -> RecordingState:
        self._check_available()
        caller.check_room(room_id)
        state = self.states.get(recording_id)
        if state is None or state.room_id != room_id:
            raise NotFound(f"no recording {recording_id} in room {room_id}")
        caller.check_owner(state.user_id)
        return state

    def _act(self, caller: Caller, room_id: str, recording_id: str,
             action: Action) -> RecordingState:
        state = apply(self._owned(caller, room_id, recording_id), action, datetime.now(UTC))
        self.states[recording_id] = state
        return state

    async def stop(self, caller: Caller, room_id: str, recording_id: str) -> RecordingState:
        return self._act(caller, room_id, recording_id, Action.STOP)

    async def pause(self, caller: Caller, room_id: str, recording_id: str) -> RecordingState:
        return self._act(caller, room_id, recording_id, Action.PAUSE)

    async def resume(self, caller: Caller, room_id: str, recording_id: str) -> RecordingState:
        return self._act(caller, room_id, recording_id, Action.RESUME)

    async def cancel(self, caller: Caller, room_id: str, recording_id: str) -> RecordingState:
        return self._act(caller, room_id, recording_id, Action.CANCEL)

    async def status(self, caller: Caller, room_id: str, recording_id: str) -> RecordingState:
        return self._owned(caller, room_id, recording_id)

    async def record_event(self, caller: Caller, room_id: str, recording_id: str,
                           body: ChatEventBody | DataEventBody) -> None:
        state = self._owned(caller, room_id, recording_id)
        if state.status is not Status.RECORDING:
            raise InvalidTransition(state.status.value, "record an event for")
        self.events.append((recording_id, from_api(body, caller.user_id)))

    async def list_room(self, caller: Caller, room_id: str,
                        page: PageRequest) -> Page[RecordingState]:
        self._check_available()
        caller.check_room(room_id)
        only = ListFilter(user_id=None if caller.is_admin else caller.user_id)
        return self._page([s for s in self.states.values() if s.room_id == room_id], page, only)

    async def list_user(self, caller: Caller, user_id: str | None, status: Status | None,
                        page: PageRequest) -> Page[RecordingState]:
        self._check_available()
        user = user_id or caller.user_id
        caller.check_owner(user)
        only = ListFilter(user_id=user, status=None if status is None else status.value,
                          rooms=caller.visible_rooms)
        return self._page(list(self.states.values()), page, only)

    @staticmethod
    def _page(states: list[RecordingState], page: PageRequest,
              only: ListFilter) -> Page[RecordingState]:
        newest: Newest[RecordingState] = Newest(page)
        for state in states:
            fields = state.model_dump(mode="json")
            if only.keeps(fields):
                newest.offer(Position.of(fields), state)
        found = newest.page()
        return Page([state for _, state in found.items], found.next)

    async def file_path(self, caller: Caller, recording_id: str, name: str | None) -> Path:
        self._check_available()
        state = self.states.get(recording_id)
        if state is None:
            raise NotFound(f"no recording {recording_id}")
        caller.check_owner(state.user_id)
        path = Path(state.local_path) / (name or state.file_name)
        if not path.is_file():
            raise NotFound(f"recording {recording_id} has no file {path.name}")
        return path

    async def publish(
        self, caller: Caller, room_id: str, role: str, offer_sdp: str
    ) -> tuple[str, str]:
        self._check_available()
        caller.check_room(room_id)
        if not offer_sdp.startswith("v=0"):
            raise InvalidInput("the offer is not an SDP session description")
        if "m=" in offer_sdp and not any(c in offer_sdp for c in ("VP8", "H264", "opus")):
            raise Unprocessable("the offer has no codec this node can record")
        session_id = uuid.uuid4().hex
        self.publishes += 1
        self.sessions[session_id] = (room_id, caller.user_id, role)
        return session_id, ANSWER_SDP

    async def unpublish(self, caller: Caller, room_id: str, session_id: str) -> None:
        self._check_available()
        session = self.sessions.get(session_id)
        if session is None or session[0] != room_id:
            raise NotFound(f"no WHIP session {session_id} in room {room_id}")
        caller.check_owner(session[1])
        del self.sessions[session_id]

    async def readiness(self) -> list[str]:
        return list(self.not_ready)
