"""What the API reads of recordings: a state, a list, a file, the node's readiness. Nothing
here changes anything; every read checks the caller first (docs/security.md)."""

from __future__ import annotations

import shutil
from pathlib import Path

from recorder.config.settings import Settings
from recorder.core.access import Caller
from recorder.core.errors import NotFound, Unavailable
from recorder.core.models import RecordingState, Status
from recorder.core.paging import ListFilter, Page, PageRequest
from recorder.state.store import StateStore

MIN_FREE_DISK_BYTES = 512 * 1024 * 1024


class RecordingQueries:
    def __init__(self, settings: Settings, store: StateStore) -> None:
        self._settings = settings
        self._store = store
        self.draining = False

    async def status(self, caller: Caller, room_id: str, recording_id: str) -> RecordingState:
        """The stored state; for a recording this node runs, what the node knows when the
        store cannot tell (unreachable, or it lost the state and is being written back)."""
        try:
            return await self._owned(caller, room_id, recording_id)
        except (NotFound, Unavailable):
            local = self.known_here(recording_id)
            if local is None:
                raise
        caller.check_recording(recording_id, local.room_id, local.user_id)
        if local.room_id != room_id:
            raise NotFound(f"recording {recording_id} is not in room {room_id}")
        return local

    def known_here(self, recording_id: str) -> RecordingState | None:
        """The state of a recording this node runs, as it knows it (None: not here)."""
        return None

    async def list_room(self, caller: Caller, room_id: str,
                        page: PageRequest) -> Page[RecordingState]:
        caller.check_room(room_id)
        only = ListFilter(user_id=None if caller.is_admin else caller.user_id)
        return await self._store.list_room(room_id, page, only)

    async def list_user(self, caller: Caller, user_id: str | None, status: Status | None,
                        page: PageRequest) -> Page[RecordingState]:
        user = user_id or caller.user_id
        caller.check_owner(user)
        only = ListFilter(status=None if status is None else status.value,
                          rooms=caller.visible_rooms)
        return await self._store.list_user(user, page, only)

    async def file_path(self, caller: Caller, recording_id: str, name: str | None) -> Path:
        state = await self._store.get(recording_id)
        caller.check_recording(recording_id, state.room_id, state.user_id)
        names = {f.name for f in state.files}
        wanted = name or state.file_name
        if wanted not in names:
            raise NotFound(f"recording {recording_id} has no finished file {wanted!r}")
        path = Path(state.local_path) / wanted
        if not path.is_file():
            raise NotFound(f"file {wanted!r} of recording {recording_id} is not on this node")
        return path

    async def readiness(self) -> list[str]:
        reasons: list[str] = []
        try:
            await self._store.ping()
        except Unavailable as exc:
            reasons.append(exc.detail)
        storage = self._settings.storage
        if shutil.disk_usage(storage).free < MIN_FREE_DISK_BYTES:
            reasons.append(f"disk: less than {MIN_FREE_DISK_BYTES >> 20} MiB free in {storage}")
        if self.draining:
            reasons.append("draining")
        return reasons

    async def _owned(self, caller: Caller, room_id: str, recording_id: str) -> RecordingState:
        caller.check_room(room_id)
        try:
            state = await self._store.get(recording_id)
        except NotFound:
            if self.known_here(recording_id) is None:
                raise
            raise Unavailable(f"recording {recording_id}: the store lost its state; the "
                              "node that runs it is writing it back", retry_after=1) from None
        caller.check_recording(recording_id, state.room_id, state.user_id)  # 403 before 404
        if state.room_id != room_id:
            raise NotFound(f"recording {recording_id} is not in room {room_id}")
        return state
