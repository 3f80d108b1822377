"""Live status of one recording as server-sent events, for `recorderctl watch` and the page.

Who may watch is checked first (the token's rooms, then owner or admin: 403 before 404), before
anything is subscribed or a watcher slot taken; then the stream takes one of its user's
watcher slots (429 `max_watchers_per_user` past RECORDER_MAX_WATCHERS_PER_USER; admins are
spared) on the node's one shared subscription (recorder.state.feed). It subscribes *before*
it reads the state it sends first, so no change can fall between the two (a change seen twice
is harmless; one missed is not). The first message is the whole state (`event: state`),
rendered as the status route renders it; then every status event of this recording is
forwarded as published (`event: recording_paused`, ...), and the stream ends after a terminal
status. Comment lines keep idle connections alive through proxies. When the node shuts down
the streams end, so an open watcher never holds up a drain; a client that goes away is
noted at debug level. See docs/security.md, "Live-status streams".
"""

from __future__ import annotations

import asyncio
import json
import logging

from aiohttp import hdrs, web
from pydantic import BaseModel, Field

from recorder.api.context import CLOSING, EVENTS, METRICS, SERVICE
from recorder.api.routing import Route, caller_of
from recorder.api.service import StatusSubscription
from recorder.api.views import view
from recorder.core.access import Caller
from recorder.core.errors import LimitReached
from recorder.core.lifecycle import TERMINAL
from recorder.core.models import RecordingState

logger = logging.getLogger(__name__)

EVENTS_PATH = "/api/webrtc/rooms/{room_id}/recording/{recording_id}/events"
EVENT_STREAM = "text/event-stream"
KEEPALIVE_SECONDS = 15.0


def install(app: web.Application) -> None:
    """Streams end on `on_shutdown`, which runs before aiohttp waits for open handlers."""
    app[CLOSING] = asyncio.Event()
    app.on_shutdown.append(_close_streams)


async def _close_streams(app: web.Application) -> None:
    app[CLOSING].set()
    feed = app.get(EVENTS)
    if feed is not None:
        await feed.close()


class ServerSentEvent(BaseModel):
    """One message of the stream, as the OpenAPI document describes it (for its readers and
    for checkers that parse event streams); the wire format is `event:` and `data:` lines."""

    event: str = Field(description="`state` first, then the pub/sub `type` "
                                   "(`recording_paused`, `recording_stopped`, ...)")
    data: str = Field(description="JSON: the whole state for `state`, else the pub/sub "
                                  "message {type, recording_id, room_id, user_id, status, at}")


def _message(event: str, data: str) -> bytes:
    return f"event: {event}\ndata: {data}\n\n".encode()


async def _open_stream(request: web.Request, response: web.StreamResponse, caller: Caller,
                       state: RecordingState) -> None:
    await response.prepare(request)
    await response.write(_message("state", json.dumps(view(caller, state))))


async def watch(request: web.Request) -> web.StreamResponse:
    caller = caller_of(request)
    room_id = request.match_info["room_id"]
    recording_id = request.match_info["recording_id"]
    caller.check_room(room_id)
    service = request.app[SERVICE]
    state = await service.status(caller, room_id, recording_id)  # 403/404 before a slot
    feed = request.app.get(EVENTS)
    response = web.StreamResponse(headers={
        hdrs.CONTENT_TYPE: EVENT_STREAM, hdrs.CACHE_CONTROL: "no-cache",
        "X-Accel-Buffering": "no"})
    try:
        if feed is None:  # no live feed (an app without a store): the state now, then the end
            await _open_stream(request, response, caller, state)
        else:
            try:
                async with feed.watch(None if caller.is_admin else caller.user_id,
                                      recording_id) as subscription:
                    state = await service.status(caller, room_id, recording_id)
                    await _open_stream(request, response, caller, state)
                    logger.debug("recording %s: %s watches from %s", recording_id,
                                 caller.user_id, state.status)
                    await _relay(request, response, subscription, state)
            except LimitReached as exc:
                request.app[METRICS].admission_refused(exc.limit)
                raise
        await response.write_eof()
    except ConnectionResetError:  # the client went away: nothing is wrong here
        logger.debug("recording %s: a watcher of %s went away", recording_id, caller.user_id)
    return response


async def _relay(request: web.Request, response: web.StreamResponse,
                 subscription: StatusSubscription, state: RecordingState) -> None:
    """Forward the recording's events until a terminal status, the node's shutdown, or the
    feed ending this stream (its client asks again)."""
    recording_id = state.recording_id
    status = state.status
    closing = request.app[CLOSING]
    while status not in TERMINAL and not closing.is_set():
        event = await subscription.next_event(KEEPALIVE_SECONDS)
        if subscription.ended is not None:  # the feed logged why, once for all streams
            logger.debug("recording %s: event stream ended: %s", recording_id,
                         subscription.ended)
            return
        if event is None:
            await response.write(b": keep-alive\n\n")
            continue
        await response.write(_message(event.type, event.model_dump_json()))
        status = event.status


ROUTES: tuple[Route, ...] = (
    Route("GET", EVENTS_PATH, watch, "watchRecording",
          "A recording's status changes, live (server-sent events)", "recordings",
          response=ServerSentEvent, response_media=(EVENT_STREAM,), errors=(403, 404, 429, 503),
          description="`event: state` with the whole state first, then one message per "
          "status change (`event` is the pub/sub `type`, `data` its JSON: type, "
          "recording_id, room_id, user_id, status, at); the stream ends after a terminal "
          "status or when the node shuts down (a node without a live feed sends the state "
          "and ends: ask again). Lines starting with `:` keep it alive."),
)
