"""Playback: signed URLs for a recording's file, and Stream's word on its videos.

A playback URL goes where the file is: Stream (a locally signed token URL), S3 (a presigned
GET) or this cluster's file route (an expiring HMAC signature any node verifies, pointing at
the node whose disk holds the file). Stream's webhook sets a file's `playback` to ready or
error and emits `recording.ready` / `recording.failed` in the same atomic write; `status`
never changes, and a repeated notification changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import redis.asyncio as aioredis
from pydantic import BaseModel

from recorder.config.settings import Settings
from recorder.core.access import Caller
from recorder.core.errors import (
    Forbidden,
    InvalidInput,
    InvalidTransition,
    NotFound,
    SourceFailed,
    Unauthorized,
    Unavailable,
)
from recorder.core.models import FileInfo, Playback, RecordingState
from recorder.core.playback import (
    MAX_EXPIRY_HOURS,
    Expired,
    SignatureError,
    file_signature,
    load_stream_key,
    stream_playback_url,
    stream_token,
    verify_file_signature,
    verify_stream_signature,
)
from recorder.core.webhooks import Notice, iso
from recorder.state.connection import store_errors
from recorder.state.store import Change, StateStore

logger = logging.getLogger(__name__)

REGISTER_TIMEOUT_SECONDS = 30.0


class PlaybackUrl(BaseModel):
    recording_id: str
    signed_url: str
    expires_at: str


class StreamOutcome(BaseModel):
    """What the Stream webhook did: `updated`, `duplicate` or `ignored` (with why)."""

    result: str
    recording_id: str | None = None
    detail: str | None = None


class _Unchanged(Exception):
    """The file's playback already says this (a repeated notification)."""


class PlaybackService:
    def __init__(self, settings: Settings, store: StateStore, redis: aioredis.Redis,
                 url_secret: str) -> None:
        self._settings = settings
        self._store = store
        self._redis = redis
        self._url_secret = url_secret
        self.secret_key = f"{store.keys.prefix}cloudflare:webhook-secret"

    # ---- signed URLs --------------------------------------------------------------------------

    async def playback_url(self, caller: Caller, recording_id: str, expiry_hours: float,
                           name: str | None = None) -> PlaybackUrl:
        if not 0 < expiry_hours <= MAX_EXPIRY_HOURS:
            raise InvalidInput(f"expiry_hours must be more than 0 and at most {MAX_EXPIRY_HOURS}")
        state = await self._store.get(recording_id)
        caller.check_recording(recording_id, state.room_id, state.user_id)
        info = _file_of(state, name)
        now = time.time()
        exp = int(now + expiry_hours * 3600)
        if info.stream_id:
            url = self._stream_url(info.stream_id, int(now), exp)
        elif info.s3_key:
            url = await asyncio.to_thread(self._s3_url, info.s3_key, exp - int(now))
        else:
            url = await self._file_url(state, info.name, exp)
        logger.info("recording %s: playback URL for %s issued to %s, expires in %g h",
                    recording_id, info.name, caller.user_id, expiry_hours)
        return PlaybackUrl(recording_id=recording_id, signed_url=url,
                           expires_at=iso(datetime.fromtimestamp(exp, UTC)))

    def _stream_url(self, video_id: str, now: int, exp: int) -> str:
        s = self._settings
        missing = [n for n, v in (("RECORDER_CF_STREAM_KEY_ID", s.cf_stream_key_id),
                                  ("RECORDER_CF_STREAM_KEY_PEM", s.cf_stream_key_pem),
                                  ("RECORDER_CF_STREAM_CUSTOMER_CODE",
                                   s.cf_stream_customer_code)) if not v]
        if missing:
            raise InvalidInput(f"Stream playback URLs need {' and '.join(missing)}")
        key_id, pem, code = (s.cf_stream_key_id or "", s.cf_stream_key_pem or "",
                             s.cf_stream_customer_code or "")
        try:
            key = load_stream_key(pem)
        except ValueError as exc:
            raise Unavailable(f"RECORDER_CF_STREAM_KEY_PEM: {exc}") from exc
        token = stream_token(key, key_id, video_id, exp=exp, nbf=now)
        return stream_playback_url(code, token)

    def _s3_url(self, key: str, seconds: int) -> str:
        import boto3  # boto3 is slow to import; only nodes that sign S3 URLs pay for it

        s = self._settings
        if not s.s3_bucket:
            raise InvalidInput("S3 playback URLs need RECORDER_S3_BUCKET")
        client: Any = boto3.client("s3", endpoint_url=s.s3_endpoint_url, region_name=s.s3_region)
        url: str = client.generate_presigned_url(
            "get_object", Params={"Bucket": s.s3_bucket, "Key": key}, ExpiresIn=seconds)
        return url

    async def _file_url(self, state: RecordingState, name: str, exp: int) -> str:
        base = self._settings.public_url or ""
        if state.node_id != self._settings.node:
            node = await self._store.node(state.node_id)
            if node is not None and node.public_url:
                base = node.public_url
        sig = file_signature(self._url_secret, state.recording_id, name, exp)
        query = urlencode({"name": name, "exp": exp, "sig": sig})
        return (f"{base.rstrip('/')}/api/webrtc/recordings/"
                f"{quote(state.recording_id, safe='')}/file?{query}")

    async def signed_file(self, recording_id: str, name: str, exp: int, sig: str) -> Path:
        """The file a signed URL names: 403 when the signature is wrong, 401 once expired."""
        try:
            verify_file_signature(self._url_secret, recording_id, name, exp, sig, time.time())
        except Expired as exc:
            raise Unauthorized(str(exc)) from exc
        except SignatureError as exc:
            raise Forbidden(str(exc)) from exc
        state = await self._store.get(recording_id)
        if name not in {f.name for f in state.files}:
            raise NotFound(f"recording {recording_id} has no finished file {name!r}")
        path = Path(state.local_path) / name
        if not await asyncio.to_thread(path.is_file):
            raise NotFound(f"file {name!r} of recording {recording_id} is not on this node")
        return path

    # ---- Stream's webhook -----------------------------------------------------------------------

    async def _secrets(self) -> list[str]:
        with store_errors():
            registered: Any = await self._redis.get(self.secret_key)
        return [s for s in (self._settings.cf_webhook_secret, registered) if s]

    async def stream_notification(self, body: bytes, signature: str | None) -> StreamOutcome:
        try:
            verify_stream_signature(await self._secrets(), signature, body, time.time())
        except SignatureError as exc:
            logger.warning("Stream webhook refused: %s", exc)
            raise Unauthorized(f"Stream webhook: {exc}") from exc
        video = _video_of(body)
        uid = str(video["uid"])
        with store_errors():
            raw_id: Any = await self._redis.get(self._store.keys.stream(uid))
        if raw_id is None:
            logger.info("Stream webhook for unknown video %s ignored", uid)
            return StreamOutcome(result="ignored", detail=f"unknown video {uid}")
        recording_id = str(raw_id)
        playback = _playback_of(video)
        if playback is None:
            return StreamOutcome(result="ignored", recording_id=recording_id,
                                 detail="not finished processing")
        notice = (Notice("recording_ready") if playback.state == "ready"
                  else Notice("recording_failed", f"playback: {playback.error}"))
        try:
            await self._store.update(recording_id, _set_playback(uid, playback), notice=notice)
        except _Unchanged:
            logger.info("recording %s: Stream webhook for video %s repeated; nothing to do",
                        recording_id, uid)
            return StreamOutcome(result="duplicate", recording_id=recording_id)
        logger.info("recording %s: video %s playback %s%s", recording_id, uid, playback.state,
                    f" ({playback.error})" if playback.error else "")
        return StreamOutcome(result="updated", recording_id=recording_id)

    async def register_stream_webhook(self, url: str) -> dict[str, Any]:
        """PUT our URL to Stream and keep the secret it answers with."""
        s = self._settings
        if not (s.cf_account_id and s.cf_api_token):
            raise InvalidInput("registering Stream's webhook needs RECORDER_CF_ACCOUNT_ID and "
                              "RECORDER_CF_API_TOKEN")
        api = f"{s.cf_api_base}/accounts/{s.cf_account_id}/stream/webhook"
        timeout = aiohttp.ClientTimeout(total=REGISTER_TIMEOUT_SECONDS)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as http, http.put(
                    api, json={"notificationUrl": url},
                    headers={"Authorization": f"Bearer {s.cf_api_token}"}) as response:
                answer: Any = await response.json(content_type=None)
                status = response.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise SourceFailed(f"Stream webhook registration: {exc}") from exc
        result = answer.get("result") if isinstance(answer, dict) else None
        if status != 200 or not isinstance(result, dict) or not result.get("secret"):
            errors = answer.get("errors") if isinstance(answer, dict) else answer
            raise SourceFailed(f"Stream webhook registration: HTTP {status} {errors}", status)
        with store_errors():
            await self._redis.set(self.secret_key, str(result["secret"]))
        logger.info("Stream webhook registered: %s", url)
        return {"notificationUrl": result.get("notificationUrl", url),
                "modified": result.get("modified")}


def _file_of(state: RecordingState, name: str | None) -> FileInfo:
    wanted = name or state.file_name
    for info in state.files:
        if info.name == wanted:
            return info
    if not state.files:
        raise InvalidTransition(state.status.value, "get a playback URL of")
    raise NotFound(f"recording {state.recording_id} has no file {wanted!r}")


def _video_of(body: bytes) -> dict[str, Any]:
    try:
        video = json.loads(body)
    except ValueError as exc:
        raise InvalidInput(f"Stream webhook body is not JSON: {exc}") from exc
    if not isinstance(video, dict) or not isinstance(video.get("uid"), str) or not video["uid"]:
        raise InvalidInput("Stream webhook body has no video `uid`")
    return video


def _playback_of(video: dict[str, Any]) -> Playback | None:
    """ready, error (with Stream's reason code), or None while Stream is still busy."""
    status = video.get("status")
    status = status if isinstance(status, dict) else {}
    state = status.get("state")
    if state == "error":
        code = status.get("errorReasonCode") or status.get("errReasonCode") or "unknown"
        return Playback(state="error", error=str(code))
    if state == "ready" or video.get("readyToStream") is True:
        return Playback(state="ready")
    return None


def _set_playback(uid: str, playback: Playback) -> Change:
    def change(state: RecordingState) -> RecordingState:
        for index, info in enumerate(state.files):
            if info.stream_id != uid:
                continue
            if info.playback == playback:
                raise _Unchanged(uid)
            info.playback = playback.model_copy()
            if index == 0 or info.name == state.file_name:
                state.playback = playback.model_copy()
            return state
        raise Unavailable(f"recording {state.recording_id} does not list video {uid} yet")
    return change
