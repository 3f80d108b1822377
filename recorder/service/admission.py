"""A start request, checked against this node's settings, becomes the initial state.

Every refusal here is a client's 400 naming what is wrong or missing; nothing is written
before it passes. Pull credentials go to the room command only, never into the state. URLs
that make this node call out (a `whep` source, a `webhook_url`) must match the operator's
allow-lists, parsed (docs/security.md, "Outbound requests").
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
from recorder.core.pulls import CloudflarePull, PullSource
from recorder.core.urls import AllowList, UrlRefused, parse_url


def new_recording(
    settings: Settings, caller: Caller, room_id: str, request: StartRequest, *, uploads: bool
) -> tuple[RecordingState, PullSource | None]:
    """The `pending` state of a start and its pull command (None for WHIP publishers).

    `uploads` says whether this node can queue uploads at all.
    """
    pull = pull_of(settings, request)
    state = _initial_state(settings, caller, room_id, request, uploads)
    if pull is not None:
        state.source = _stored_source(pull)
    return state, pull


def pull_of(settings: Settings, request: StartRequest) -> PullSource | None:
    """The room command for a pull source, with the credentials the state never keeps."""
    source = request.source
    if isinstance(source, WhepSource):
        _check_outbound(source.url, "source url", "RECORDER_PULL_ALLOWED_URLS",
                        settings.pull_allowed_urls)
        return source
    if isinstance(source, CloudflareSource):
        s = settings
        app_id = source.app_id or s.cf_realtime_app_id
        secret = s.cf_realtime_app_secret
        if not app_id or not secret:
            missing = [name for name, value in (("RECORDER_CF_REALTIME_APP_ID", app_id),
                       ("RECORDER_CF_REALTIME_APP_SECRET", secret)) if not value]
            raise InvalidInput("source 'cloudflare' is not configured on this node "
                               f"({' and '.join(missing)} not set)")
        return CloudflarePull(s.cf_realtime_api_base, app_id, source.session_id,
                              tuple(source.track_names), secret,
                              tuple(dict.fromkeys(source.data_channels)))
    return None


def _check_outbound(url: str, field: str, setting: str, entries: list[str]) -> None:
    """400 unless `url` parses and an entry of `setting` allows it; an empty list allows
    nothing, and the detail says how an operator opens it."""
    try:
        parse_url(url)  # a URL that does not parse is refused as such, whatever the list
        if not entries:
            raise InvalidInput(f"{field} is not allowed: {setting} is empty on this node (an "
                               "operator allows URLs by listing scheme://host[:port][/path] "
                               "entries there)")
        AllowList.parse(entries).check(url, setting)
    except UrlRefused as exc:
        raise InvalidInput(f"{field} {exc}") from exc


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
    if request.webhook_url is not None:
        _check_outbound(request.webhook_url, "webhook_url", "RECORDER_WEBHOOK_ALLOWED_URLS",
                        s.webhook_allowed_urls)
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


def _stored_source(pull: PullSource) -> dict[str, Any]:
    """What the state says of a pull source: where from, never a token or secret."""
    if isinstance(pull, WhepSource):
        return pull.stored()
    stored: dict[str, Any] = {"type": "cloudflare", "app_id": pull.app_id,
                              "session_id": pull.session_id,
                              "track_names": list(pull.track_names)}
    if pull.data_channels:
        stored["data_channels"] = list(pull.data_channels)
    return stored
