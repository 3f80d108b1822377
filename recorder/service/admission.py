"""A start request, checked against this node's settings, becomes the initial state.

Every refusal here is a client's 400 naming what is wrong or missing; nothing is written
before it passes. Pull credentials go to the room command only, never into the state.
"""

from __future__ import annotations

import uuid
from typing import Any

from recorder.config.settings import Settings
from recorder.core import lifecycle
from recorder.core.access import Caller
from recorder.core.errors import InvalidInput
from recorder.core.models import (
    CloudflareSource,
    RecordingState,
    StartRequest,
    Transcode,
    Upload,
    UploadTarget,
    WhepSource,
)
from recorder.core.presets import CODECS, PRESETS, Layout, quality_settings
from recorder.core.webhooks import url_allowed
from recorder.room import messages as msg


def new_recording(
    settings: Settings, caller: Caller, room_id: str, request: StartRequest, *, uploads: bool
) -> tuple[RecordingState, msg.PullSource | None]:
    """The `pending` state of a start and its pull command (None for WHIP publishers).

    `uploads` says whether this node can queue uploads at all.
    """
    pull = pull_of(settings, request)
    state = _initial_state(settings, caller, room_id, request, uploads)
    if pull is not None:
        state.source = _stored_source(pull)
    return state, pull


def pull_of(settings: Settings, request: StartRequest) -> msg.PullSource | None:
    """The room command for a pull source, with the credentials the state never keeps."""
    source = request.source
    if isinstance(source, WhepSource):
        if settings.pull_allowed_urls and not url_allowed(source.url,
                                                          settings.pull_allowed_urls):
            raise InvalidInput("source url must start with one of RECORDER_PULL_ALLOWED_URLS")
        return msg.WhepPull(source.url, source.token)
    if isinstance(source, CloudflareSource):
        s = settings
        app_id = source.app_id or s.cf_realtime_app_id
        secret = s.cf_realtime_app_secret
        if not app_id or not secret:
            missing = [name for name, value in (("RECORDER_CF_REALTIME_APP_ID", app_id),
                       ("RECORDER_CF_REALTIME_APP_SECRET", secret)) if not value]
            raise InvalidInput("source 'cloudflare' is not configured on this node "
                               f"({' and '.join(missing)} not set)")
        return msg.CloudflarePull(s.cf_realtime_api_base, app_id, source.session_id,
                                  tuple(source.track_names), secret)
    return None


def _initial_state(settings: Settings, caller: Caller, room_id: str, request: StartRequest,
                   uploads: bool) -> RecordingState:
    s = settings
    fmt = request.format or s.default_format
    quality = request.quality or s.default_quality
    transcode = request.transcode or Transcode.LIVE
    if transcode is Transcode.DEFERRED and quality not in PRESETS:
        raise InvalidInput("transcode 'deferred' makes a preset (low, medium, high or ultra); "
                           "quality 'source' is recorded as received without it")
    target = request.upload or s.upload_target
    missing = s.upload_target_missing(target)
    if missing:
        raise InvalidInput(f"upload target {target.value!r} is not configured on this node "
                           f"({' and '.join(missing)} not set)")
    if target is not UploadTarget.NONE and not uploads:
        raise InvalidInput(f"upload target {target.value!r} is not available on this node")
    if request.webhook_url is not None and not url_allowed(request.webhook_url,
                                                           s.webhook_allowed_urls):
        raise InvalidInput("webhook_url must start with one of RECORDER_WEBHOOK_ALLOWED_URLS"
                           if s.webhook_allowed_urls else
                           "webhook_url is not allowed: RECORDER_WEBHOOK_ALLOWED_URLS is empty")
    max_duration = request.max_duration_seconds or s.max_duration_seconds
    if max_duration > s.max_duration_seconds:
        raise InvalidInput(f"max_duration_seconds exceeds this node's limit of "
                           f"{s.max_duration_seconds}")
    recording_id = str(uuid.uuid4())
    layout = request.layout or Layout.COMPOSITE
    # tracks: the files are named for publishers, known as they come; until the
    # capture finishes file_name is "" and then names the first publisher's file
    file_name = (f"recording_{recording_id}.{CODECS[fmt].extension}"
                 if layout is Layout.COMPOSITE else "")
    return RecordingState(
        recording_id=recording_id, room_id=room_id, user_id=caller.user_id,
        node_id=s.node, format=fmt, quality=quality, quality_settings=quality_settings(quality),
        layout=layout, transcode=transcode, storage_backend=target,
        local_path=str(s.storage / recording_id), file_name=file_name,
        upload=Upload(target=target), created_at=lifecycle.now(),
        max_duration_seconds=max_duration, metadata=request.metadata,
        webhook_url=request.webhook_url,
    )


def _stored_source(pull: msg.PullSource) -> dict[str, Any]:
    """What the state says of a pull source: where from, never a token or secret."""
    if isinstance(pull, msg.WhepPull):
        return {"type": "whep", "url": pull.url}
    return {"type": "cloudflare", "app_id": pull.app_id, "session_id": pull.session_id,
            "track_names": list(pull.track_names)}
