"""One settings object, built in ``main()`` and passed down.

Environment variables (``RECORDER_*``) override an optional TOML file whose keys are the
variable names without the prefix, in lower case (``max_per_user = 3``).
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from recorder.core.limits import Limits
from recorder.core.models import UploadTarget
from recorder.core.presets import Format, Quality

ENV_PREFIX = "RECORDER_"


class IceServer(BaseModel):
    urls: str | list[str]
    username: str | None = None
    credential: str | None = None


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid")

    redis_url: str = "embedded"
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    public_url: str | None = None
    node_id: str | None = None
    storage_dir: Path | None = None

    jwt_secret: str | None = None
    jwt_public_key: str | None = None
    jwt_algorithms: Annotated[list[str], NoDecode] = ["HS256"]
    jwt_audience: str | None = None
    jwt_issuer: str | None = None

    max_concurrent: int = Field(10, ge=1)
    max_per_user: int = Field(3, ge=1)
    max_per_room: int = Field(1, ge=1)
    max_duration_seconds: int = Field(7200, ge=1)
    max_pause_seconds: int = Field(1800, ge=1)
    no_media_timeout_seconds: float = Field(60, gt=0)
    max_publishers_per_room: int = Field(16, ge=1)
    default_format: Format = Format.WEBM
    default_quality: Quality = Quality.MEDIUM

    key_prefix: str = "webrtc:recording:"
    state_ttl_seconds: int = Field(604800, ge=1)
    index_ttl_seconds: int = Field(86400, ge=1)
    heartbeat_seconds: float = Field(5, gt=0)
    drain_seconds: float = Field(60, ge=0)

    upload_target: UploadTarget = UploadTarget.NONE
    ice_servers: list[IceServer] = []
    ice_host_addresses: Annotated[list[str], NoDecode] = []
    cors_origins: Annotated[list[str], NoDecode] = []

    @field_validator("jwt_algorithms", "ice_host_addresses", "cors_origins", mode="before")
    @classmethod
    def _csv(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("jwt_algorithms")
    @classmethod
    def _no_none_alg(cls, value: list[str]) -> list[str]:
        allowed = {"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384",
                   "ES512", "PS256", "PS384", "PS512", "EdDSA"}
        bad = [alg for alg in value if alg not in allowed]
        if bad or not value:
            raise ValueError(f"unsupported algorithm(s) {bad or value}; 'none' is never accepted")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if value != "embedded" and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be 'embedded' or a redis://, rediss:// or unix:// URL")
        return value

    @model_validator(mode="after")
    def _derived(self) -> Settings:
        if self.public_url is None:
            self.public_url = f"http://{self.host}:{self.port}"
        if self.node_id is None:
            self.node_id = f"{socket.gethostname()}:{self.port}"
        if self.storage_dir is None:
            state_dir = os.environ.get("STATE_DIRECTORY")
            base = Path(state_dir.split(":")[0]) if state_dir else Path(".")
            self.storage_dir = (base / "recordings").resolve()
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_path = os.environ.get(f"{ENV_PREFIX}CONFIG")
        if toml_path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_path))
        return tuple(sources)

    # Derived views used across the code.
    @property
    def storage(self) -> Path:
        assert self.storage_dir is not None
        return self.storage_dir

    @property
    def node(self) -> str:
        assert self.node_id is not None
        return self.node_id

    @property
    def limits(self) -> Limits:
        return Limits(self.max_per_room, self.max_per_user, self.max_concurrent)

    @property
    def embedded(self) -> bool:
        return self.redis_url == "embedded"

    def ice_servers_json(self) -> str:
        return json.dumps([s.model_dump(exclude_none=True) for s in self.ice_servers])


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
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = "_".join(str(part) for part in err["loc"]) or "settings"
        name = f"{ENV_PREFIX}{loc.upper()}" if err["type"] != "extra_forbidden" else loc
        raise SettingsError(f"invalid setting {name}: {err['msg']}") from exc
