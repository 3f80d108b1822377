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
from recorder.core.urls import AllowList
from recorder.core.webhooks import DEFAULT_SCHEDULE, WebhookRouting, parse_schedule, parse_secret

ENV_PREFIX = "RECORDER_"
MIB = 1 << 20
TUS_CHUNK_MULTIPLE = 256 << 10  # Cloudflare Stream: chunks are multiples of 256 KiB
MIN_PART_BYTES = 5 * MIB  # S3's smallest part, and Stream's smallest tus chunk


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
    # caps of what one user (admins spared) or one node may hold: docs/security.md "Caps"
    max_publishers_per_user: int = Field(4, ge=1)
    max_watchers_per_user: int = Field(8, ge=1)
    starts_per_user_per_minute: int = Field(30, ge=1)
    max_rooms: int = Field(64, ge=1)
    whip_connect_timeout_seconds: float = Field(15, gt=0)
    default_format: Format = Format.WEBM
    default_quality: Quality = Quality.MEDIUM

    key_prefix: str = "webrtc:recording:"
    state_ttl_seconds: int = Field(604800, ge=1)
    index_ttl_seconds: int = Field(86400, ge=1)
    heartbeat_seconds: float = Field(5, gt=0)
    drain_seconds: float = Field(60, ge=0)
    orphan_timeout_seconds: float = Field(60, gt=0)
    cpu_capacity: float | None = Field(None, gt=0)  # None: the machine's CPU count
    deferred_concurrency: int = Field(1, ge=1)
    room_processes: bool = True  # rooms in child processes (False: in recorderd)
    # rooms one child process may host: 1, each room alone; more, rooms share processes
    # once every core has one (cheaper per light stream; a crash takes down more rooms)
    rooms_per_process: int = Field(1, ge=1)

    upload_target: UploadTarget = UploadTarget.NONE
    s3_bucket: str | None = None
    s3_prefix: str = "webrtc-recordings/"
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_part_bytes: int = Field(8 * MIB, ge=MIN_PART_BYTES)
    cf_account_id: str | None = None
    cf_api_token: str | None = Field(None, repr=False)
    cf_api_base: str = "https://api.cloudflare.com/client/v4"
    cf_stream_key_id: str | None = None
    cf_stream_key_pem: str | None = Field(None, repr=False)
    cf_stream_customer_code: str | None = None
    cf_webhook_secret: str | None = Field(None, repr=False)
    cf_realtime_app_id: str | None = None
    cf_realtime_app_secret: str | None = Field(None, repr=False)
    cf_realtime_api_base: str = "https://rtc.live.cloudflare.com/v1"
    tus_chunk_bytes: int = Field(52428800, ge=MIN_PART_BYTES)
    job_claim_seconds: float = Field(300, gt=0)
    keep_local_after_upload: bool = False
    retention_days: float = Field(7, ge=0)
    upload_retry_attempts: int = Field(10, ge=1)
    upload_retry_max_seconds: float = Field(60, gt=0)
    ice_servers: list[IceServer] = []
    ice_host_addresses: Annotated[list[str], NoDecode] = []
    cors_origins: Annotated[list[str], NoDecode] = []
    webhook_url: str | None = None
    webhook_secret: str | None = Field(None, repr=False)
    webhook_retry_schedule: str = DEFAULT_SCHEDULE
    webhook_allowed_urls: Annotated[list[str], NoDecode] = []
    pull_allowed_urls: Annotated[list[str], NoDecode] = []  # empty: no `whep` source
    webhook_timeout_seconds: float = Field(15, gt=0)
    url_signing_secret: str | None = Field(None, repr=False)

    @field_validator("jwt_algorithms", "ice_host_addresses", "cors_origins",
                     "webhook_allowed_urls", "pull_allowed_urls", mode="before")
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

    @field_validator("tus_chunk_bytes")
    @classmethod
    def _tus_chunk(cls, value: int) -> int:
        if value % TUS_CHUNK_MULTIPLE:
            raise ValueError(f"must be a multiple of 256 KiB ({TUS_CHUNK_MULTIPLE} bytes)")
        return value

    @field_validator("s3_endpoint_url", "cf_api_base", "cf_realtime_api_base")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/") if value is not None else None

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: str | None) -> str | None:
        if value is not None:
            parse_secret(value)
        return value

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _webhook_schedule(cls, value: str) -> str:
        parse_schedule(value)
        return value

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value or None

    @field_validator("webhook_allowed_urls", "pull_allowed_urls")
    @classmethod
    def _allow_list(cls, value: list[str]) -> list[str]:
        AllowList.parse(value)  # ValueError naming the entry that does not parse
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
        if self.cpu_capacity is None:
            self.cpu_capacity = float(os.cpu_count() or 1)
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
    def cpu(self) -> float:
        assert self.cpu_capacity is not None
        return self.cpu_capacity

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

    def upload_target_missing(self, target: UploadTarget) -> list[str]:
        """The settings `target` needs that this node lacks ([] when it can upload there)."""
        needed: dict[UploadTarget, dict[str, str | None]] = {
            UploadTarget.S3: {"RECORDER_S3_BUCKET": self.s3_bucket},
            UploadTarget.CLOUDFLARE_STREAM: {"RECORDER_CF_ACCOUNT_ID": self.cf_account_id,
                                             "RECORDER_CF_API_TOKEN": self.cf_api_token},
        }
        return [name for name, value in needed.get(target, {}).items() if not value]

    @property
    def signed_stream_urls(self) -> bool:
        """Stream videos require signed URLs when this node can sign them."""
        return bool(self.cf_stream_key_id and self.cf_stream_key_pem)

    @property
    def webhook_routing(self) -> WebhookRouting:
        """Where status-change webhooks go; no secret means no webhooks are queued."""
        if not self.webhook_secret:
            return WebhookRouting(customer_code=self.cf_stream_customer_code)
        return WebhookRouting(self.webhook_url, tuple(self.webhook_allowed_urls),
                              self.cf_stream_customer_code)

    @property
    def webhook_schedule(self) -> tuple[float, ...]:
        return parse_schedule(self.webhook_retry_schedule)

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
        settings = Settings(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = "_".join(str(part) for part in err["loc"]) or "settings"
        name = f"{ENV_PREFIX}{loc.upper()}" if err["type"] != "extra_forbidden" else loc
        raise SettingsError(f"invalid setting {name}: {err['msg']}") from exc
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
