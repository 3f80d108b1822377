"""Control routes for recordings (SPEC section 4): start, stop, pause, resume, cancel,
status, lists and the file download.

The edge checks what it can without the store (the token's rooms, who may list whose
recordings, query/body agreement) so a refused request costs nothing downstream; ownership
and lifecycle are the service's.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from aiohttp import hdrs, web
from pydantic import BaseModel, ConfigDict, Field

from recorder.api.context import AUTH, METRICS, PLAYBACK, SERVICE
from recorder.api.forwarding import by_recording, by_room
from recorder.api.routing import Route, body_of, caller_of, query_of
from recorder.api.schemas import RecordingList
from recorder.core.access import Caller
from recorder.core.errors import Draining, Forbidden, InvalidInput, LimitReached, NotFound
from recorder.core.models import RecordingState, StartRequest, Status
from recorder.core.presets import Format, Quality

logger = logging.getLogger(__name__)

ROOM = "/api/webrtc/rooms/{room_id}"
RECORDING = ROOM + "/recording/{recording_id}"
FILE_TYPES = {".webm": "video/webm", ".mp4": "video/mp4", ".mkv": "video/x-matroska"}


class StartQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recording_format: Format | None = None
    quality: Quality | None = None


class ListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

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


def state_json(state: RecordingState) -> str:
    """A state as the API shows it: the status route's body and a live-status stream's first
    message go through here, so both show the same view."""
    return state.model_dump_json()


def state_response(state: RecordingState, status: int = 200) -> web.Response:
    return web.Response(status=status, body=state_json(state).encode(),
                        content_type="application/json")


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
    response = state_response(state, 201)
    response.headers[hdrs.LOCATION] = (
        f"/api/webrtc/rooms/{quote(room_id, safe='')}/recording/{state.recording_id}/status")
    return response


async def stop(request: web.Request) -> web.StreamResponse:
    caller, room_id, recording_id = _target(request)
    return state_response(await request.app[SERVICE].stop(caller, room_id, recording_id))


async def pause(request: web.Request) -> web.StreamResponse:
    caller, room_id, recording_id = _target(request)
    return state_response(await request.app[SERVICE].pause(caller, room_id, recording_id))


async def resume(request: web.Request) -> web.StreamResponse:
    caller, room_id, recording_id = _target(request)
    return state_response(await request.app[SERVICE].resume(caller, room_id, recording_id))


async def cancel(request: web.Request) -> web.StreamResponse:
    caller, room_id, recording_id = _target(request)
    return state_response(await request.app[SERVICE].cancel(caller, room_id, recording_id))


async def status(request: web.Request) -> web.StreamResponse:
    caller, room_id, recording_id = _target(request)
    return state_response(await request.app[SERVICE].status(caller, room_id, recording_id))


def _target(request: web.Request) -> tuple[Caller, str, str]:
    caller = caller_of(request)
    room_id = request.match_info["room_id"]
    caller.check_room(room_id)
    return caller, room_id, request.match_info["recording_id"]


def list_response(states: list[RecordingState]) -> web.Response:
    body = RecordingList(recordings=states, count=len(states))
    return web.Response(body=body.model_dump_json().encode(), content_type="application/json")


async def list_room(request: web.Request) -> web.StreamResponse:
    caller = caller_of(request)
    room_id = request.match_info["room_id"]
    caller.check_room(room_id)
    return list_response(await request.app[SERVICE].list_room(caller, room_id))


async def list_user(request: web.Request) -> web.StreamResponse:
    caller = caller_of(request)
    query = query_of(request, ListQuery)
    if query.user_id is not None and not caller.is_admin and query.user_id != caller.user_id:
        raise Forbidden("only admins may list another user's recordings")
    states = await request.app[SERVICE].list_user(caller, query.user_id, query.status)
    return list_response(states)


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
_FILE_MEDIA = (*FILE_TYPES.values(), "application/octet-stream")

ROUTES: tuple[Route, ...] = (
    Route("POST", ROOM + "/recording/start", start, "startRecording", "Start a recording",
          "recordings", query=StartQuery, body=StartRequest, response=RecordingState,
          success=201, success_headers=("Location",),
          errors=(403, 404, 409, 422, 429, 502, 503), locate=by_room,
          description="Query values fill what the body leaves out; a disagreement is 400. "
          "With a pull source the answer waits for the upstream; 502 if it fails (the "
          "recording is stored as failed; the problem names it and the upstream status)."),
    Route("POST", RECORDING + "/stop", stop, "stopRecording", "Stop a recording",
          "recordings", response=RecordingState, errors=_STATE_ERRORS, locate=by_recording),
    Route("POST", RECORDING + "/pause", pause, "pauseRecording", "Pause a recording",
          "recordings", response=RecordingState, errors=_STATE_ERRORS, locate=by_recording),
    Route("POST", RECORDING + "/resume", resume, "resumeRecording", "Resume a recording",
          "recordings", response=RecordingState, errors=_STATE_ERRORS, locate=by_recording),
    Route("DELETE", RECORDING, cancel, "cancelRecording",
          "Cancel a recording: stop it and delete its files", "recordings",
          response=RecordingState, errors=_STATE_ERRORS, locate=by_recording),
    Route("GET", RECORDING + "/status", status, "getRecording", "A recording's state",
          "recordings", response=RecordingState, errors=(403, 404, 503)),
    Route("GET", ROOM + "/recordings", list_room, "listRoomRecordings",
          "The room's recordings (the caller's own, or all for admins)", "recordings",
          response=RecordingList, errors=(403, 503)),
    Route("GET", "/api/webrtc/recordings", list_user, "listRecordings",
          "The caller's recordings; admins may name another user", "recordings",
          query=ListQuery, response=RecordingList, errors=(403, 503)),
    Route("GET", "/api/webrtc/recordings/{recording_id}/file", download, "getRecordingFile",
          "Download a recording's file (supports Range)", "recordings", query=FileQuery,
          auth=False, response_media=_FILE_MEDIA, other_statuses=(206,),
          errors=(401, 403, 404, 416, 503),
          description="A bearer token, or a signed URL from playback-url (`name`, `exp`, `sig`:"
          " 403 when the signature is wrong, 401 once it expired)."),
)
