"""Admin routes for uploads (docs/api.md): retry a recording whose upload was given up.

Admins only, checked before anything is looked up, so the route tells nobody else whether
an id exists. The service decides the rest (404 unknown, 409 unless the recording failed
with `upload.state: failed`).
"""

from __future__ import annotations

import logging

from aiohttp import web

from recorder.api.context import UPLOADS
from recorder.api.routing import Route, caller_of
from recorder.api.schemas import RecordingView
from recorder.api.views import state_response
from recorder.core.errors import Forbidden, NotFound

logger = logging.getLogger(__name__)

ADMIN_RECORDING = "/api/webrtc/admin/recordings/{recording_id}"


async def retry_upload(request: web.Request) -> web.StreamResponse:
    caller = caller_of(request)
    if not caller.is_admin:
        raise Forbidden("only admins may retry an upload")
    recording_id = request.match_info["recording_id"]
    uploads = request.app.get(UPLOADS)
    if uploads is None:  # a node without uploads knows no recording with one
        raise NotFound(f"recording {recording_id} has no upload on this node")
    state = await uploads.retry_upload(caller, recording_id)
    logger.info("recording %s: upload retry by %s", recording_id, caller.user_id)
    return state_response(caller, state)


ROUTES: tuple[Route, ...] = (
    Route("POST", ADMIN_RECORDING + "/retry-upload", retry_upload, "retryUpload",
          "Retry a failed upload (admin)", "admin", admin=True, response=RecordingView,
          errors=(403, 404, 409, 503),
          description="A recording that is `failed` with `upload.state: failed` goes back to "
                      "`processing` and its upload job is queued again; anything else is 409."),
)
