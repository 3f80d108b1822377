"""Building the settings at start-up: the config file, the environment, and one line naming
the setting when anything is wrong (including a setting of an earlier release)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from recorder.config.settings import DEFAULT_REDIS_URL, ENV_PREFIX, Settings

# Settings that are gone, and what replaced them (docs/configuration.md lists them too).
REPLACED = {
    "room_processes": "RECORDER_ROOM_ISOLATION (pool, process or inline)",
    "rooms_per_process": "RECORDER_ROOM_WORKERS (rooms share a pool of warm workers)",
}


def replaced_message(old: str) -> str:
    return f"{ENV_PREFIX}{old.upper()} is gone: use {REPLACED[old]}"


class SettingsError(Exception):
    """One line naming the setting, for start-up."""


def load_settings(config_path: str | None = None, **overrides: Any) -> Settings:
    """Build the settings; `config_path` (``--config``) wins over RECORDER_CONFIG."""
    if config_path is not None:
        if not Path(config_path).is_file():
            raise SettingsError(f"{ENV_PREFIX}CONFIG: no such file {config_path}")
        os.environ[f"{ENV_PREFIX}CONFIG"] = config_path
    elif (path := os.environ.get(f"{ENV_PREFIX}CONFIG")) and not Path(path).is_file():
        raise SettingsError(f"{ENV_PREFIX}CONFIG: no such file {path}")
    for old in REPLACED:
        if f"{ENV_PREFIX}{old.upper()}" in os.environ:
            raise SettingsError(replaced_message(old))
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = "_".join(str(part) for part in err["loc"]) or "settings"
        if err["type"] == "extra_forbidden" and loc in REPLACED:  # from the config file
            raise SettingsError(replaced_message(loc)) from exc
        name = f"{ENV_PREFIX}{loc.upper()}" if err["type"] != "extra_forbidden" else loc
        raise SettingsError(f"invalid setting {name}: {err['msg']}") from exc
    if settings.redis_sentinels and settings.redis_url != DEFAULT_REDIS_URL:
        raise SettingsError(f"invalid settings {ENV_PREFIX}REDIS_SENTINELS and "
                            f"{ENV_PREFIX}REDIS_URL: both name the store; drop "
                            f"{ENV_PREFIX}REDIS_URL to use Sentinel, or "
                            f"{ENV_PREFIX}REDIS_SENTINELS to use the URL")
    if (settings.webhook_url or settings.webhook_allowed_urls) and not settings.webhook_secret:
        raise SettingsError(f"invalid setting {ENV_PREFIX}WEBHOOK_SECRET: required (whsec_ + "
                            "base64) when webhooks are configured")
    if settings.jwt_public_key and not (settings.jwt_secret or settings.url_signing_secret):
        raise SettingsError(f"invalid setting {ENV_PREFIX}URL_SIGNING_SECRET: required with "
                            "public-key JWT auth (RECORDER_JWT_PUBLIC_KEY)")
    missing = settings.upload_target_missing(settings.upload_target)
    if missing:
        raise SettingsError(f"invalid setting {ENV_PREFIX}UPLOAD_TARGET: "
                            f"{settings.upload_target.value} needs {' and '.join(missing)}")
    return settings
