"""Sentinel settings at start-up: one line naming what to drop or what is wrong, for
recorderd and recorder-worker alike (docs/operations.md, "Redis with Sentinel")."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from recorder.config.loading import SettingsError, load_settings


@pytest.fixture(autouse=True)
def _no_recorder_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("RECORDER_"):
            monkeypatch.delenv(key)


def test_sentinels_and_a_url_stop_start_up_naming_which_to_drop(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECORDER_REDIS_SENTINELS", "10.0.0.1:26379,10.0.0.2:26379")
    monkeypatch.setenv("RECORDER_REDIS_URL", "redis://10.0.0.9:6379/0")
    with pytest.raises(SettingsError, match="drop RECORDER_REDIS_URL to use Sentinel"):
        load_settings()


def test_a_sentinel_that_is_not_host_port_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECORDER_REDIS_SENTINELS", "10.0.0.1:26379,sentinel-b")
    with pytest.raises(SettingsError, match=r"RECORDER_REDIS_SENTINELS.*'sentinel-b'"):
        load_settings()


def test_sentinel_settings_name_the_primary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECORDER_REDIS_SENTINELS", " s1:26379, s2:26380 ")
    monkeypatch.setenv("RECORDER_REDIS_SENTINEL_MASTER", "rec")
    monkeypatch.setenv("RECORDER_REDIS_PASSWORD", "primary-secret")
    monkeypatch.setenv("RECORDER_REDIS_DB", "2")
    monkeypatch.setenv("RECORDER_REDIS_TLS", "true")
    settings = load_settings()
    sentinel = settings.sentinel
    assert sentinel is not None
    assert (sentinel.sentinels, sentinel.master, sentinel.db, sentinel.tls) == (
        [("s1", 26379), ("s2", 26380)], "rec", 2, True)
    assert not settings.embedded
    assert "primary-secret" not in repr(settings)
    assert "primary-secret" not in repr(sentinel)


@pytest.mark.parametrize("program", ["recorder", "workers"])
def test_both_programs_refuse_the_conflict_with_one_line(program: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECORDER_")}
    env.update({"RECORDER_REDIS_SENTINELS": "127.0.0.1:1",
                "RECORDER_REDIS_URL": "redis://127.0.0.1:1/0"})
    done = subprocess.run([sys.executable, "-m", program], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert "drop RECORDER_REDIS_URL" in lines[-1]
