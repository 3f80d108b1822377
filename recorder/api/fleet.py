"""Admin routes that show the cluster (docs/api.md, tag `admin`): every recording, the
nodes, the queues, storage, a recording's timeline and its picture.

Admins only: the route guard refuses anyone else (403) right after the token is verified,
before a query is parsed or anything is read. Any node answers for the whole cluster from
Redis; a picture is made by the node whose disk holds the recording (forwarded there).
"""

from __future__ import annotations

from aiohttp import hdrs, web
from pydantic import BaseModel, ConfigDict, Field

from recorder.api.context import FLEET, served
from recorder.api.forwarding import by_files
from recorder.api.recordings import PageQuery, list_response
from recorder.api.routing import RoomId, Route, caller_of, query_of
from recorder.api.schemas import RecordingList
from recorder.api.service import FleetAdmin
from recorder.core.fleet import NodesView, QueuesView, StorageView, Timeline
from recorder.core.models import Status
from recorder.core.paging import ListFilter
from recorder.state.totals import MAX_DAYS

ADMIN = "/api/webrtc/admin"


class FleetQuery(PageQuery):
    status: Status | None = Field(None, description="Only recordings in this status")
    room_id: RoomId | None = None
    user_id: str | None = Field(None, min_length=1, max_length=256,
                                description="Only this user's recordings")
    node_id: str | None = Field(None, min_length=1, max_length=256,
                                pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,255}$",
                                description="Only recordings of this node")


class StorageQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    days: int = Field(7, ge=1, le=MAX_DAYS, description=f"Days of uploads (1 to {MAX_DAYS})")


def _fleet(request: web.Request) -> FleetAdmin:
    return served(request, FLEET, "the admin view")


async def recordings(request: web.Request) -> web.StreamResponse:
    query = query_of(request, FleetQuery)
    only = ListFilter(user_id=query.user_id,
                      status=None if query.status is None else query.status.value,
                      rooms=None if query.room_id is None else frozenset({query.room_id}),
                      node_id=query.node_id)
    page = await _fleet(request).recordings(only, query.room_id, query.page())
    return list_response(caller_of(request), page)


async def nodes(request: web.Request) -> web.StreamResponse:
    return web.json_response((await _fleet(request).nodes()).model_dump(mode="json"))


async def queues(request: web.Request) -> web.StreamResponse:
    return web.json_response((await _fleet(request).queues()).model_dump(mode="json"))


async def storage(request: web.Request) -> web.StreamResponse:
    days = query_of(request, StorageQuery).days
    return web.json_response((await _fleet(request).storage(days)).model_dump(mode="json"))


async def timeline(request: web.Request) -> web.StreamResponse:
    answer = await _fleet(request).timeline(request.match_info["recording_id"])
    return web.json_response(answer.model_dump(mode="json"))


async def thumbnail(request: web.Request) -> web.StreamResponse:
    picture = await _fleet(request).thumbnail(request.match_info["recording_id"])
    return web.Response(body=picture, headers={hdrs.CONTENT_TYPE: "image/jpeg",
                                               hdrs.CACHE_CONTROL: "private, max-age=5"})


_RECORDING = ADMIN + "/recordings/{recording_id}"

ROUTES: tuple[Route, ...] = (
    Route("GET", ADMIN + "/recordings", recordings, "adminListRecordings",
          "Every recording of the cluster (admin)", "admin", admin=True, query=FleetQuery,
          response=RecordingList, errors=(404, 503),
          description="Filters `status`, `room_id`, `user_id`, `node_id`; newest first, "
          "paged like the other lists (`limit`, `cursor`, `next_cursor`). Without `room_id` "
          "or `user_id` every stored state is read, so narrow it on a large cluster."),
    Route("GET", ADMIN + "/nodes", nodes, "adminNodes", "The cluster's nodes (admin)",
          "admin", admin=True, response=NodesView, errors=(404, 503),
          description="Every node with a heartbeat, and those seen within 24 h: heartbeat "
          "age, version, CPU, rooms, room processes, active recordings, draining; `health` "
          "is `late` after two missed heartbeats and `gone` once its `node:` key expired."),
    Route("GET", ADMIN + "/queues", queues, "adminQueues", "Upload and webhook queues (admin)",
          "admin", admin=True, response=QueuesView, errors=(404, 503),
          description="Each node's upload stream (depth, jobs in progress, oldest age) and "
          "the webhook outbox (as GET /api/webrtc/admin/webhooks)."),
    Route("GET", ADMIN + "/storage", storage, "adminStorage", "Storage of the cluster (admin)",
          "admin", admin=True, query=StorageQuery, response=StorageView,
          errors=(404, 503),
          description="Bytes on disk per node (from its heartbeat), bytes uploaded per "
          "target in all and per UTC day, and folders still on disk after their upload."),
    Route("GET", _RECORDING + "/timeline", timeline, "adminTimeline",
          "A recording's timeline (admin)", "admin", admin=True, response=Timeline,
          errors=(404, 503),
          description="Status changes, pauses and publishers joining or leaving, oldest "
          "first, from the recording's history (the state's own times when it has none)."),
    Route("GET", _RECORDING + "/thumbnail.jpg", thumbnail, "adminThumbnail",
          "A recording's picture (admin)", "admin", admin=True,
          response_media=("image/jpeg",), errors=(404, 503), locate=by_files,
          description="The folder's `thumbnail.jpg`, else a JPEG of the newest keyframe of "
          "its video file (a live one too), made on the node that holds it and cached 5 s; "
          "404 when there is no picture, 503 when too many are being made."),
)
