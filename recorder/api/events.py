"""Live status of one recording as server-sent events, for `recorderctl watch` and the page.

The stream subscribes to the events channel *before* it reads the current state, so no change
can fall between the two (a change seen twice is harmless; one missed is not). The first
message is the whole state (`event: state`); then every status event of this recording is
forwarded as published (`event: recording_paused`, ...), and the stream ends after a terminal
status. Comment lines keep idle connections alive through proxies. When the node shuts down
the streams end, so an open watcher never holds up a drain.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import hdrs, web
from pydantic import BaseModel, Field

from recorder.api.context import CLOSING, EVENTS, SERVICE
from recorder.api.routing import Route, caller_of
from recorder.core.errors import Unavailable
from recorder.core.lifecycle import TERMINAL
from recorder.core.models import Status

logger = logging.getLogger(__name__)

EVENTS_PATH = "/api/webrtc/rooms/{room_id}/recording/{recording_id}/events"
EVENT_STREAM = "text/event-stream"
TICK_SECONDS = 1.0  # how soon a stream notices the node is shutting down
KEEPALIVE_SECONDS = 15.0


def install(app: web.Application) -> None:
    """Streams end on `on_shutdown`, which runs before aiohttp waits for open handlers."""
    app[CLOSING] = asyncio.Event()
    app.on_shutdown.append(_close_streams)


async def _close_streams(app: web.Application) -> None:
    app[CLOSING].set()


class ServerSentEvent(BaseModel):
    """One message of the stream, as the OpenAPI document describes it (for its readers and
    for checkers that parse event streams); the wire format is `event:` and `data:` lines."""

    event: str = Field(description="`state` first, then the pub/sub `type` "
                                   "(`recording_paused`, `recording_stopped`, ...)")
    data: str = Field(description="JSON: the whole state for `state`, else the pub/sub "
                                  "message {type, recording_id, room_id, user_id, status, at}")


def _message(event: str, data: str) -> bytes:
    return f"event: {event}\ndata: {data}\n\n".encode()


async def _open_stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={
        hdrs.CONTENT_TYPE: EVENT_STREAM, hdrs.CACHE_CONTROL: "no-cache",
        "X-Accel-Buffering": "no"})
    await response.prepare(request)
    return response


async def watch(request: web.Request) -> web.StreamResponse:
    caller = caller_of(request)
    room_id = request.match_info["room_id"]
    recording_id = request.match_info["recording_id"]
    caller.check_room(room_id)
    service = request.app[SERVICE]
    feed = request.app.get(EVENTS)
    if feed is None:  # no live feed (an app without a store): the state now, then the end
        state = await service.status(caller, room_id, recording_id)
        response = await _open_stream(request)
        await response.write(_message("state", state.model_dump_json()))
        await response.write_eof()
        return response
    closing = request.app[CLOSING]
    async with feed.subscribe() as subscription:
        state = await service.status(caller, room_id, recording_id)
        response = await _open_stream(request)
        await response.write(_message("state", state.model_dump_json()))
        status: Status = state.status
        logger.debug("recording %s: %s watches from %s", recording_id, caller.user_id, status)
        idle_since = time.monotonic()
        while status not in TERMINAL and not closing.is_set():
            try:
                event = await subscription.next_event(TICK_SECONDS)
            except Unavailable as exc:  # the answer has started: end it, the client retries
                logger.warning("recording %s: event stream ended: %s", recording_id, exc.detail)
                break
            if event is None or event.recording_id != recording_id:
                if time.monotonic() - idle_since >= KEEPALIVE_SECONDS:
                    await response.write(b": keep-alive\n\n")
                    idle_since = time.monotonic()
                continue
            await response.write(_message(event.type, event.model_dump_json()))
            idle_since = time.monotonic()
            status = event.status
        await response.write_eof()
    return response


ROUTES: tuple[Route, ...] = (
    Route("GET", EVENTS_PATH, watch, "watchRecording",
          "A recording's status changes, live (server-sent events)", "recordings",
          response=ServerSentEvent, response_media=(EVENT_STREAM,), errors=(403, 404, 503),
          description="`event: state` with the whole state first, then one message per "
          "status change (`event` is the pub/sub `type`, `data` its JSON: type, "
          "recording_id, room_id, user_id, status, at); the stream ends after a terminal "
          "status or when the node shuts down (a node without a live feed sends the state "
          "and ends: ask again). Lines starting with `:` keep it alive."),
)
