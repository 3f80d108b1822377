"""The pure parts: webhook bodies and signatures (checked with the `standardwebhooks`
package's verifier), the retry schedule, Stream's webhook signature (vectors computed with
`openssl dgst` from Cloudflare's documented recipe), Stream tokens (verified with PyJWT and
the public key) and signed file URLs."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from recorder.core.manifest import manifest
from recorder.core.models import FileInfo, Playback, RecordingState, Status
from recorder.core.playback import (
    Expired,
    SignatureError,
    file_signature,
    load_stream_key,
    stream_playback_url,
    stream_signature,
    stream_token,
    verify_file_signature,
    verify_stream_signature,
)
from recorder.core.webhooks import (
    RetrySchedule,
    WebhookRouting,
    body_text,
    build_job,
    headers,
    parse_schedule,
    parse_secret,
    payload,
)
from tests.support.states import make_state

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()

# Cloudflare's documented example secret format (32 hex) and a Stream video body; the
# signatures were computed independently with `printf '%s' "time.body" | openssl dgst
# -sha256 -hmac SECRET`.
CF_SECRET = "85011ed3a913c6ad5f9cf6c5573cc0a7"
CF_TIME = 1230811200
CF_BODY = (b'{"uid":"dd5d531a12de0c724bd1275a3b2bc9c6","readyToStream":true,'
           b'"status":{"state":"ready"}}')
CF_SIG = "8ea5112f08034d4823b6a997f7b66c68366929b4441940259360189d7c1ae51b"


def completed_state() -> tuple[RecordingState, datetime]:
    state = make_state(status=Status.COMPLETED)
    state.duration_seconds = 12.5
    state.file_size_bytes = 1234
    state.sha256 = "ab" * 32
    state.stream_id = "dd5d531a12de0c724bd1275a3b2bc9c6"
    state.files = [FileInfo(name=state.file_name, kind="composite", size=1234,
                            sha256="ab" * 32, stream_id=state.stream_id,
                            playback=Playback(state="pending"))]
    return state, datetime(2026, 11, 21, 13, 0, 2, 500000, tzinfo=UTC)


def test_body_has_the_specified_shape() -> None:
    state, at = completed_state()
    body = payload("recording.complete", state, at, customer_code="abc123")
    assert list(body) == ["event", "timestamp", "data"]
    assert body["event"] == "recording.complete"
    assert body["timestamp"] == "2026-11-21T13:00:02.500Z"
    data = body["data"]
    assert list(data) == ["recordingId", "roomId", "userId", "status", "format", "quality",
                          "duration", "fileSize", "sha256", "s3Key", "streamId", "streamUrl",
                          "files", "error", "timestamp", "manifest"]
    assert data["manifest"] == manifest(state)  # complete and ready carry the manifest
    assert "manifest" not in payload("recording.stopped", state, at)["data"]
    assert data["status"] == "completed"
    assert data["format"] == "webm"
    assert data["duration"] == 12.5
    assert data["fileSize"] == 1234
    assert data["streamUrl"] == ("https://customer-abc123.cloudflarestream.com/"
                                 "dd5d531a12de0c724bd1275a3b2bc9c6/manifest/video.m3u8")
    assert data["files"][0]["streamId"] == state.stream_id


def test_signature_verifies_with_the_standard_webhooks_library() -> None:
    state, at = completed_state()
    job = build_job("https://example.test/hook", "recording.complete", state, at)
    now = int(time.time())
    sent = headers(parse_secret(SECRET), job.id, now, job.body)
    verified = Webhook(SECRET).verify(job.body, sent)
    assert verified["data"]["recordingId"] == job.recording_id
    assert sent["webhook-id"] == job.id
    assert sent["webhook-signature"].startswith("v1,")
    # another secret, another body or an old timestamp are refused by the library
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + base64.b64encode(b"x" * 32).decode()).verify(job.body, sent)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(job.body.replace("completed", "failed"), sent)
    old = headers(parse_secret(SECRET), job.id, now - 600, job.body)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(job.body, old)


def test_body_text_is_the_signed_text() -> None:
    state, at = completed_state()
    job = build_job("https://x.test/", "recording.ready", state, at, error=None)
    assert json.loads(job.body) == payload("recording.ready", state, at)
    assert job.body == body_text(json.loads(job.body))


@pytest.mark.parametrize("bad", ["abc", "whsec_", "whsec_!!!notbase64", "whsec_YWJj"])
def test_bad_secrets_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match=r"whsec_|base64|16 bytes"):
        parse_secret(bad)


def test_schedule_counts_attempts_and_honours_retry_after() -> None:
    schedule = RetrySchedule(parse_schedule("0,5,300,1800,7200,18000,36000,36000"))
    assert schedule.attempts == 8
    assert schedule.next_delay(1) == 5  # after the first attempt
    assert schedule.next_delay(2) == 300
    assert schedule.next_delay(2, retry_after=900) == 900  # the receiver asked for longer
    assert schedule.next_delay(2, retry_after=1) == 300  # never sooner than the schedule
    assert schedule.next_delay(7) == 36000
    assert schedule.next_delay(8) is None  # the last attempt failed: dead letter
    with pytest.raises(ValueError, match="negative"):
        parse_schedule("0,-1")
    with pytest.raises(ValueError, match="comma-separated"):
        parse_schedule("soon")


def test_a_starts_own_url_is_used_only_when_allowed() -> None:
    routing = WebhookRouting("https://app.test/hooks", ("https://tenant.test/",))
    state = make_state()
    assert routing.url_for(state) == "https://app.test/hooks"
    state.webhook_url = "https://tenant.test/rec"
    assert routing.url_for(state) == "https://tenant.test/rec"
    state.webhook_url = "http://169.254.169.254/latest"
    assert routing.url_for(state) == "https://app.test/hooks"
    assert WebhookRouting().url_for(make_state()) is None


def test_stream_signature_examples() -> None:
    header = f"time={CF_TIME},sig1={CF_SIG}"
    verify_stream_signature([CF_SECRET], header, CF_BODY, now=CF_TIME + 10)
    # a second configured secret (registered one) also works
    verify_stream_signature(["other", CF_SECRET], header, CF_BODY, now=CF_TIME)
    with pytest.raises(SignatureError, match="does not match"):
        verify_stream_signature([CF_SECRET], header, CF_BODY + b" ", now=CF_TIME)
    with pytest.raises(SignatureError, match="does not match"):
        verify_stream_signature(["wrong"], header, CF_BODY, now=CF_TIME)
    with pytest.raises(Expired):
        verify_stream_signature([CF_SECRET], header, CF_BODY, now=CF_TIME + 301)
    with pytest.raises(SignatureError, match="time="):
        verify_stream_signature([CF_SECRET], f"sig1={CF_SIG}", CF_BODY, now=CF_TIME)
    assert stream_signature(CF_SECRET, CF_TIME, CF_BODY) == CF_SIG


def _rsa() -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return key, pem


def test_stream_token_verifies_with_the_public_key() -> None:
    key, pem = _rsa()
    now = int(time.time())
    for form in (pem.decode(), base64.b64encode(pem).decode()):  # PEM, or Stream's base64
        token = stream_token(load_stream_key(form), "kid-1", "video-9", exp=now + 3600, nbf=now)
        claims = jwt.decode(token, key.public_key(), algorithms=["RS256"])
        assert claims == {"sub": "video-9", "kid": "kid-1", "exp": now + 3600, "nbf": now,
                          "downloadable": False}
        assert jwt.get_unverified_header(token)["kid"] == "kid-1"
    url = stream_playback_url("abc", token)
    assert url == f"https://customer-abc.cloudflarestream.com/{token}/manifest/video.m3u8"
    expired = stream_token(load_stream_key(pem.decode()), "kid-1", "v", exp=now - 10,
                           nbf=now - 100)
    with pytest.raises(jwt.ExpiredSignatureError):
        jwt.decode(expired, key.public_key(), algorithms=["RS256"])
    with pytest.raises(ValueError, match="PEM"):
        load_stream_key("not a key")


def test_file_signature_expires_and_binds_its_fields() -> None:
    exp = 2_000_000_000
    sig = file_signature("s3cret", "rec-1", "a.webm", exp)
    verify_file_signature("s3cret", "rec-1", "a.webm", exp, sig, now=exp - 1)
    with pytest.raises(Expired):
        verify_file_signature("s3cret", "rec-1", "a.webm", exp, sig, now=exp)
    for rid, name, e, secret in (("rec-2", "a.webm", exp, "s3cret"),
                                 ("rec-1", "b.webm", exp, "s3cret"),
                                 ("rec-1", "a.webm", exp + 1, "s3cret"),
                                 ("rec-1", "a.webm", exp, "other")):
        with pytest.raises(SignatureError) as info:
            verify_file_signature(secret, rid, name, e, sig, now=0)
        assert not isinstance(info.value, Expired)
