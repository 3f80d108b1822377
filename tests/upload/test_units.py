"""The pure parts of the worker: part sizing, tus headers and statuses, the retry schedule,
Stream metadata, retention, and the settings that configure them."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tenacity import RetryCallState

from recorder.config.loading import SettingsError, load_settings
from workers.cloudflare_stream import upload_metadata
from workers.errors import OffsetMismatch, PermanentError, TransientError, UploadGone
from workers.retention import sweep
from workers.retry import RetryPolicy, _Wait
from workers.s3 import MAX_PARTS, object_key, part_size, plan
from workers.tus import creation_headers, encode_metadata, patch_headers, status_error

MIB = 1 << 20
GIB = 1 << 30


@pytest.mark.parametrize("size", [0, 1, 5 * MIB, 8 * MIB + 1, 10 * GIB, 100 * GIB,
                                  5 * 1024 * GIB])
def test_parts_cover_the_file_within_s3_limits(size: int) -> None:
    each = part_size(size)
    parts = plan(size, each)
    assert 1 <= len(parts) <= MAX_PARTS
    assert each >= 5 * MIB
    assert each % MIB == 0
    assert [p.number for p in parts] == list(range(1, len(parts) + 1))
    assert sum(p.length for p in parts) == size
    assert all(p.length == each for p in parts[:-1])
    assert parts[-1].offset + parts[-1].length == size


def test_part_size_is_the_preferred_one_until_the_file_needs_larger() -> None:
    assert part_size(GIB) == 8 * MIB
    assert part_size(GIB, preferred=5 * MIB) == 5 * MIB
    assert part_size(100 * GIB) == 11 * MIB  # 100 GiB / 10,000 = 10.24 MiB, rounded up


def test_object_keys_follow_the_contract() -> None:
    assert object_key("webrtc-recordings/", "room_123", "3f1c", "recording_3f1c.webm") == (
        "webrtc-recordings/room_123/3f1c/recording_3f1c.webm")


def test_tus_headers() -> None:
    metadata = {"name": "recording_x.webm", "requiresignedurls": None,
                "maxdurationseconds": "120"}
    headers = creation_headers(1234, metadata)
    assert headers["Tus-Resumable"] == "1.0.0"
    assert headers["Upload-Length"] == "1234"
    pairs = headers["Upload-Metadata"].split(",")
    name_key, name_value = pairs[0].split(" ")
    assert name_key == "name"
    assert base64.b64decode(name_value) == b"recording_x.webm"
    assert pairs[1] == "requiresignedurls"
    assert pairs[2] == "maxdurationseconds " + base64.b64encode(b"120").decode()
    assert patch_headers(5 * MIB, 42) == {
        "Tus-Resumable": "1.0.0", "Upload-Offset": str(5 * MIB),
        "Content-Type": "application/offset+octet-stream", "Content-Length": "42"}
    for bad in ("", "two words", "a,b", "é"):
        with pytest.raises(ValueError, match="metadata key"):
            encode_metadata({bad: "x"})


@pytest.mark.parametrize(("status", "kind"), [
    (404, UploadGone), (410, UploadGone), (409, OffsetMismatch), (460, OffsetMismatch),
    (412, PermanentError), (415, PermanentError), (400, PermanentError),
    (403, PermanentError), (408, TransientError), (429, TransientError),
    (500, TransientError), (503, TransientError)])
def test_tus_statuses_mean_what_the_tus_spec_says(status: int, kind: type[Exception]) -> None:
    assert type(status_error(status, "tus PATCH")) is kind


def test_retry_after_is_carried_on_transient_errors() -> None:
    error = status_error(429, "tus PATCH", retry_after="30")
    assert isinstance(error, TransientError)
    assert error.retry_after == 30.0


def _state_after(attempt: int, exc: BaseException) -> RetryCallState:
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = attempt
    state.set_exception((type(exc), exc, None))
    return state


def test_the_retry_schedule_is_exponential_with_a_floor_and_a_cap() -> None:
    policy = RetryPolicy(attempts=10, initial=1.0, cap=60.0)
    ceilings = [policy.ceiling(n) for n in range(1, 10)]
    assert ceilings == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    for n, ceiling in enumerate(ceilings, start=1):
        assert policy.backoff(n, rng=lambda: 0.0) == ceiling / 2
        assert policy.backoff(n, rng=lambda: 0.999999) == pytest.approx(ceiling, rel=1e-5)
    # The attempts always span more than two minutes: a minute's outage is survived.
    assert policy.minimum_total() > 120
    wait = _Wait(policy)
    for n in range(1, 10):
        assert ceilings[n - 1] / 2 <= wait(_state_after(n, TransientError("x"))) <= ceilings[n - 1]


def test_retry_after_wins_when_longer_up_to_a_bound() -> None:
    wait = _Wait(RetryPolicy(initial=1.0, cap=60.0, max_retry_after=600.0))
    assert wait(_state_after(1, TransientError("429", retry_after=45))) == 45
    assert wait(_state_after(1, TransientError("429", retry_after=86400))) == 600
    assert wait(_state_after(1, TransientError("429", retry_after=0))) <= 1


async def test_only_transient_errors_are_retried_and_attempts_are_bounded() -> None:
    policy = RetryPolicy(attempts=3, initial=0.001, cap=0.002)
    calls: list[str] = []

    async def run(error: Exception) -> None:
        async for attempt in policy.retrying("step", "test"):
            with attempt:
                calls.append(type(error).__name__)
                raise error

    with pytest.raises(TransientError):
        await run(TransientError("down"))
    assert calls == ["TransientError"] * 3
    calls.clear()
    with pytest.raises(PermanentError):
        await run(PermanentError("forbidden"))
    assert calls == ["PermanentError"]


def test_stream_metadata() -> None:
    assert upload_metadata("a.webm", 12.2, signed=False) == {
        "name": "a.webm", "maxdurationseconds": "73"}
    assert upload_metadata("a.webm", None, signed=True) == {
        "name": "a.webm", "requiresignedurls": None}
    assert upload_metadata("a.webm", 10 ** 6, signed=False)["maxdurationseconds"] == "21600"


def test_retention_removes_only_uploaded_folders_past_their_days(tmp_path: Path) -> None:
    now = time.time()
    day = 86400

    def folder(name: str, marker_age_days: float | None, file_age_days: float = 30) -> Path:
        path = tmp_path / name
        path.mkdir()
        media = path / "recording.webm"
        media.write_bytes(b"x")
        os.utime(media, (now - file_age_days * day,) * 2)
        if marker_age_days is not None:
            marker = path / ".uploaded"
            marker.touch()
            os.utime(marker, (now - marker_age_days * day,) * 2)
        return path

    expired = folder("expired", marker_age_days=8)
    recent = folder("recent", marker_age_days=6)
    never_uploaded = folder("never-uploaded", marker_age_days=None, file_age_days=365)
    loose = tmp_path / "loose.webm"
    loose.write_bytes(b"x")
    os.utime(loose, (now - 365 * day,) * 2)
    link = tmp_path / "link"
    link.symlink_to(expired)
    assert sweep(tmp_path, 7, now=now) == [expired]
    assert not expired.exists()
    assert recent.exists()
    assert never_uploaded.exists()
    assert loose.exists()
    assert sweep(tmp_path, 0, now=now) == [recent]


@pytest.mark.parametrize(("env", "named"), [
    ({"RECORDER_TUS_CHUNK_BYTES": str(5 * MIB + 1)}, "RECORDER_TUS_CHUNK_BYTES"),
    ({"RECORDER_TUS_CHUNK_BYTES": str(4 * MIB)}, "RECORDER_TUS_CHUNK_BYTES"),
    ({"RECORDER_S3_PART_BYTES": str(MIB)}, "RECORDER_S3_PART_BYTES"),
    ({"RECORDER_UPLOAD_TARGET": "s3"}, "RECORDER_S3_BUCKET"),
    ({"RECORDER_UPLOAD_TARGET": "cloudflare_stream", "RECORDER_CF_ACCOUNT_ID": "a"},
     "RECORDER_CF_API_TOKEN"),
    ({"RECORDER_CF_API_BASE": "ftp://x"}, "RECORDER_CF_API_BASE"),
    ({"RECORDER_JOB_CLAIM_SECONDS": "0"}, "RECORDER_JOB_CLAIM_SECONDS"),
])
def test_invalid_upload_settings_stop_start_up_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: str,
) -> None:
    for key in [k for k in os.environ if k.startswith("RECORDER_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError, match=named) as raised:
        load_settings()
    assert "\n" not in str(raised.value)


def test_valid_upload_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("RECORDER_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("RECORDER_UPLOAD_TARGET", "s3")
    monkeypatch.setenv("RECORDER_S3_BUCKET", "b")
    monkeypatch.setenv("RECORDER_TUS_CHUNK_BYTES", str(200 * MIB))
    settings = load_settings()
    assert settings.s3_prefix == "webrtc-recordings/"
    assert settings.cf_api_base == "https://api.cloudflare.com/client/v4"
    assert (settings.job_claim_seconds, settings.retention_days) == (300, 7)
    assert settings.keep_local_after_upload is False
    assert not settings.signed_stream_urls


def test_a_worker_refuses_the_embedded_store() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECORDER_")}
    result = subprocess.run([sys.executable, "-m", "workers"], env=env, capture_output=True,
                            text=True, timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 2
    assert "RECORDER_REDIS_URL" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
