"""Control routes for recordings (docs/api.md): start, stop, pause, resume, cancel,
status, lists and the file download.

The edge checks what it can without the store (the token's rooms, who may list whose
recordings, query/body agreement) so a refused request costs nothing downstream; ownership
and lifecycle are the service's.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from aiohttp import hdrs, web
from pydantic import BaseModel, ConfigDict, Field, field_validator

from recorder.api.context import AUTH, METRICS, PLAYBACK, SERVICE
from recorder.api.forwarding import by_recording, by_room
from recorder.api.routing import Route, body_of, caller_of, query_of
from recorder.api.schemas import RecordingList, RecordingView
from recorder.api.views import state_response, view
from recorder.core.access import Caller
from recorder.core.errors import Draining, Forbidden, InvalidInput, LimitReached, NotFound
from recorder.core.events import MAX_EVENT_BYTES, EventBody
from recorder.core.models import RecordingState, StartRequest, Status
from recorder.core.paging import (
    DEFAULT_LIMIT,
    MAX_CURSOR_LENGTH,
    MAX_LIMIT,
    Page,
    PageRequest,
    Position,
)
from recorder.core.presets import Format, Quality

logger = logging.getLogger(__name__)

ROOM = "/api/webrtc/rooms/{room_id}"
RECORDING = ROOM + "/recording/{recording_id}"
FILE_TYPES = {".webm": "video/webm", ".mp4": "video/mp4", ".mkv": "video/x-matroska",
              ".jsonl": "application/jsonl", ".vtt": "text/vtt",
              ".json": "application/json", ".jpg": "image/jpeg"}


class EventAccepted(BaseModel):
    recording_id: str
    accepted: bool


class StartQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recording_format: Format | None = None
    quality: Quality | None = None


class PageQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT,
                       description=f"Recordings per page (1 to {MAX_LIMIT})")
    cursor: str | None = Field(
        None, min_length=1, max_length=MAX_CURSOR_LENGTH,
        description="`next_cursor` of the previous page (opaque); absent = the newest")

    @field_validator("cursor")
    @classmethod
    def _known(cls, cursor: str | None) -> str | None:
        if cursor is not None:
            try:
                Position.decode(cursor)
            except InvalidInput as exc:
                raise ValueError(exc.detail) from exc
        return cursor

    def page(self) -> PageRequest:
        after = None if self.cursor is None else Position.decode(self.cursor)
        return PageRequest(self.limit, after)


class ListQuery(PageQuery):
    status: Status | None = None
    user_id: str | None = Field(
        None, min_length=1, max_length=256,
        description="Whose recordings (admins; others may only name themselves)")


class FileQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(
        None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$",
        description="One of the recording's `files` (default: the composite file)")
    exp: int | None = Field(None, ge=0, description="Signed URL: unix time it expires")
    sig: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$",
                            description="Signed URL: its signature (no token needed then)")


def merge_start(query: StartQuery, body: StartRequest | None) -> StartRequest:
    """The body wins; a query value that names something else is a conflict, not a default."""
    request = body or StartRequest.model_validate({})
    pairs = (("recording_format", "format", query.recording_format),
             ("quality", "quality", query.quality))
    for query_name, field, value in pairs:
        if value is None:
            continue
        current = getattr(request, field)
        if current is not None and current != value:
            raise InvalidInput(
                f"query {query_name}={value} disagrees with body {field}={current}")
        request = request.model_copy(update={field: value})
    return request


async def start(request: web.Request) -> web.StreamResponse:
    caller = caller_of(request)
    room_id = request.match_info["room_id"]
    caller.check_room(room_id)
    wanted = merge_start(query_of(request, StartQuery), body_of(request, StartRequest))
    metrics = request.app[METRICS]
    try:
        state = await request.app[SERVICE].start(caller, room_id, wanted)
    except LimitReached as exc:
        metrics.admission_refused(exc.limit)
        logger.info("room %s: start by %s refused: %s", room_id, caller.user_id, exc.detail)
        raise
    except Draining:
        metrics.admission_refused("draining")
        raise
    metrics.recording_started(state.format, state.quality)
    response = state_response(caller, state, 201)
    response.headers[hdrs.LOCATION] = (
        f"/api/webrtc/rooms/{quote(room_id, safe='')}/recording/{state.recording_id}/status")
    return response


async def stop(request: web.Request) -> web.StreamResponse:
    caller, room_id, recording_id = _target(request)
    state = await request.app[SERVICE].stop(caller, room_id, recording_id)
    return state_response(caller, state)


async def pause(request: web.Request) -> web.StreamResponse:
    caller, room_id, recording_id = _target(request)
    state = await request.app[SERVICE].pause(caller, room_id, recording_id)
    return state_response(caller, state)


async def resume(request: web.Request) -> web.StreamResponse:
    caller, room_id, recording_id = _target(request)
    state = await request.app[SERVICE].resume(caller, room_id, recording_id)
    return state_response(caller, state)


async def cancel(request: web.Request) -> web.StreamResponse:
    caller, room_id, recording_id = _target(request)
    state = await request.app[SERVICE].cancel(caller, room_id, recording_id)
    return state_response(caller, state)


async def status(request: web.Request) -> web.StreamResponse:
    caller, room_id, recording_id = _target(request)
    state = await request.app[SERVICE].status(caller, room_id, recording_id)
    return state_response(caller, state)


async def record_event(request: web.Request) -> web.StreamResponse:
    caller, room_id, recording_id = _target(request)
    body = body_of(request, EventBody)
    if body is None:
        raise InvalidInput("an event body is required")
    await request.app[SERVICE].record_event(caller, room_id, recording_id, body.root)
    return web.json_response({"recording_id": recording_id, "accepted": True}, status=202)


def _target(request: web.Request) -> tuple[Caller, str, str]:
    caller = caller_of(request)
    room_id = request.match_info["room_id"]
    caller.check_room(room_id)
    return caller, room_id, request.match_info["recording_id"]


def list_response(caller: Caller, page: Page[RecordingState]) -> web.Response:
    return web.json_response({"recordings": [view(caller, s) for s in page.items],
                              "count": len(page.items), "next_cursor": page.next_cursor})


async def list_room(request: web.Request) -> web.StreamResponse:
    caller = caller_of(request)
    room_id = request.match_info["room_id"]
    caller.check_room(room_id)
    page = query_of(request, PageQuery).page()
    return list_response(caller, await request.app[SERVICE].list_room(caller, room_id, page))


async def list_user(request: web.Request) -> web.StreamResponse:
    caller = caller_of(request)
    query = query_of(request, ListQuery)
    if query.user_id is not None and not caller.is_admin and query.user_id != caller.user_id:
        raise Forbidden("only admins may list another user's recordings")
    page = await request.app[SERVICE].list_user(caller, query.user_id, query.status,
                                                query.page())
    return list_response(caller, page)


async def download(request: web.Request) -> web.StreamResponse:
    """The file itself; aiohttp's FileResponse answers Range (206) and conditional requests
    from its ETag, which video players rely on to seek."""
    recording_id = request.match_info["recording_id"]
    query = query_of(request, FileQuery)
    if query.exp is not None or query.sig is not None:
        playback = request.app.get(PLAYBACK)
        if query.exp is None or query.sig is None or query.name is None or playback is None:
            raise InvalidInput("a signed file URL needs name, exp and sig")
        path = await playback.signed_file(recording_id, query.name, query.exp, query.sig)
    else:  # no signature: the route's bearer token, checked here (the route is public)
        caller = request.app[AUTH].authenticate(request.headers.get(hdrs.AUTHORIZATION))
        path = await request.app[SERVICE].file_path(caller, recording_id, query.name)
    if not path.is_file():
        raise NotFound(f"recording {recording_id}: file {path.name} is not on this node")
    media_type = FILE_TYPES.get(path.suffix, "application/octet-stream")
    logger.debug("recording %s: serving %s", recording_id, path.name)
    return web.FileResponse(path, headers={hdrs.CONTENT_TYPE: media_type})


_STATE_ERRORS = (403, 404, 409, 503)
_LIST_DOC = ("Newest first (by `created_at`, then id), `limit` per page; follow `next_cursor` "
             "until it is null. An unknown cursor is 400.")
_FILE_MEDIA = (*FILE_TYPES.values(), "application/octet-stream")

ROUTES: tuple[Route, ...] = (
    Route("POST", ROOM + "/recording/start", start, "startRecording", "Start a recording",
          "recordings", query=StartQuery, body=StartRequest, response=RecordingView,
          success=201, success_headers=("Location",),
          errors=(403, 404, 409, 422, 429, 502, 503), locate=by_room,
          description="Query values fill what the body leaves out; a disagreement is 400. "
          "With a pull source the answer waits for the upstream; 502 if it fails (the "
          "recording is stored as failed; the problem names it and the upstream status)."),
    Route("POST", RECORDING + "/stop", stop, "stopRecording", "Stop a recording",
          "recordings", response=RecordingView, errors=_STATE_ERRORS, locate=by_recording),
    Route("POST", RECORDING + "/pause", pause, "pauseRecording", "Pause a recording",
          "recordings", response=RecordingView, errors=_STATE_ERRORS, locate=by_recording),
    Route("POST", RECORDING + "/resume", resume, "resumeRecording", "Resume a recording",
          "recordings", response=RecordingView, errors=_STATE_ERRORS, locate=by_recording),
    Route("DELETE", RECORDING, cancel, "cancelRecording",
          "Cancel a recording: stop it and delete its files", "recordings",
          response=RecordingView, errors=_STATE_ERRORS, locate=by_recording),
    Route("POST", RECORDING + "/events", record_event, "recordEvent",
          "Record a timed event (a chat message, or any named event) in a recording",
          "recordings", body=EventBody, body_limit=MAX_EVENT_BYTES, response=EventAccepted,
          success=202, errors=(403, 404, 409, 429, 503), locate=by_recording,
          description="Exactly `{\"type\": \"chat\", \"user\", \"text\"}` or "
          "`{\"type\": <other>, \"data\": {...}}`, at most 16 KiB (413). Stamped with the "
          "recording's media time `t` and the poster's token `sub`, appended to `events.jsonl`"
          "; 409 unless the recording is `recording`; 429 `event_rate` past "
          "RECORDER_MAX_EVENTS_PER_SECOND. `GET` on this path is the live-status stream."),
    Route("GET", RECORDING + "/status", status, "getRecording", "A recording's state",
          "recordings", response=RecordingView, errors=(403, 404, 503)),
    Route("GET", ROOM + "/recordings", list_room, "listRoomRecordings",
          "The room's recordings (the caller's own, or all for admins)", "recordings",
          query=PageQuery, response=RecordingList, errors=(403, 503),
          description=_LIST_DOC),
    Route("GET", "/api/webrtc/recordings", list_user, "listRecordings",
          "The caller's recordings; admins may name another user", "recordings",
          query=ListQuery, response=RecordingList, errors=(403, 503),
          description=_LIST_DOC + " Only recordings in the token's `rooms` are listed."),
    Route("GET", "/api/webrtc/recordings/{recording_id}/file", download, "getRecordingFile",
          "Download a recording's file (supports Range)", "recordings", query=FileQuery,
          auth=False, response_media=_FILE_MEDIA, other_statuses=(206,),
          errors=(401, 403, 404, 416, 503),
          description="A bearer token, or a signed URL from playback-url (`name`, `exp`, `sig`:"
          " 403 when the signature is wrong, 401 once it expired)."),
)
