"""recorderd's storage folder is private: made 0700, and an open one is tightened or named.

Without a JWT setting the folder holds the development secret that signs every token
(`.dev-jwt-secret`), so a folder other users can open would hand them admin tokens.
"""

from __future__ import annotations

import stat
from pathlib import Path

from tests.support.daemon import run_daemon

DEV = {"RECORDER_JWT_SECRET": ""}  # no JWT setting: the development secret


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_development_folder_is_0700(redis_url: str, tmp_path: Path) -> None:
    storage = tmp_path / "new" / "recordings"
    with run_daemon(redis_url, storage=storage, extra_env=DEV, key_prefix="store-a:"):
        assert (storage / ".dev-jwt-secret").exists()
        assert mode_of(storage) == 0o700
        assert mode_of(storage / ".dev-jwt-secret") == 0o600


def test_a_new_folder_is_0700_with_a_jwt_setting_too(redis_url: str, tmp_path: Path) -> None:
    storage = tmp_path / "recordings"
    with run_daemon(redis_url, storage=storage, key_prefix="store-b:"):
        assert mode_of(storage) == 0o700


def test_an_open_development_folder_of_ours_is_tightened_and_said(
    redis_url: str, tmp_path: Path
) -> None:
    storage = tmp_path / "recordings"
    storage.mkdir()
    storage.chmod(0o755)
    with run_daemon(redis_url, storage=storage, extra_env=DEV, key_prefix="store-c:") as node:
        assert mode_of(storage) == 0o700
        assert "was open to other users (mode 0755)" in node.log()


def test_a_world_open_folder_is_named_in_the_log(redis_url: str, tmp_path: Path) -> None:
    """With a JWT setting the operator's folder is left as it is, but not silently."""
    storage = tmp_path / "recordings"
    storage.mkdir()
    storage.chmod(0o755)
    with run_daemon(redis_url, storage=storage, key_prefix="store-d:") as node:
        assert mode_of(storage) == 0o755
        assert f"storage folder {storage} is open to every user" in node.log()
