"""One settings object, built in ``main()`` and passed down.

Environment variables (``RECORDER_*``) override an optional TOML file whose keys are the
variable names without the prefix, in lower case (``max_per_user = 3``).
"""

from __future__ import annotations

import json
import os
import socket
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, Field, field_validator, model_validator
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
from recorder.core.sentinel import SentinelStore
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


class RoomIsolation(StrEnum):
    POOL = "pool"
    PROCESS = "process"
    INLINE = "inline"


DEFAULT_REDIS_URL = "embedded"


def sentinel_addresses(value: str) -> list[tuple[str, int]]:
    """`host:port,host:port` as pairs; ValueError naming an entry that is not one."""
    found: list[tuple[str, int]] = []
    for entry in (part.strip() for part in value.split(",")):
        if not entry:
            continue
        host, sep, port = entry.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{entry!r} is not host:port")
        found.append((host.strip("[]"), int(port)))
    return found


class Settings(BaseSettings):
    """Every setting, with what it means: docs/configuration.md is generated from the
    docstrings below (`python -m recorder.reference`)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid",
                                      use_attribute_docstrings=True)

    # ---- the node ----
    redis_url: str = DEFAULT_REDIS_URL
    """`embedded` (fakeredis inside recorderd: one node, nothing survives a restart but the
    files) or a `redis://`, `rediss://` or `unix://` URL."""
    redis_sentinels: str | None = None
    """`host:port,host:port`: find the Redis primary through these Sentinels instead
    (RECORDER_REDIS_URL stays at its default; docs/operations.md, "Redis with Sentinel")."""
    redis_sentinel_master: str = "recorder"
    """The name the Sentinels monitor the primary under."""
    redis_password: str | None = Field(None, repr=False)
    """The Redis password (under Sentinel; a URL carries its own)."""
    redis_sentinel_password: str | None = Field(None, repr=False)
    """The Sentinels' own password, when they have one."""
    redis_db: int = Field(0, ge=0)
    """The database number under Sentinel."""
    redis_tls: bool = False
    """TLS to the Sentinels and the primary (certificates checked against the system's)."""
    host: str = "127.0.0.1"
    """Address of the control API, WHIP and the page."""
    port: int = Field(8080, ge=0, le=65535)
    """Port of the control API, WHIP and the page."""
    public_url: str | None = None
    """How other nodes and clients reach this node (redirects and forwarding)."""
    node_id: str | None = None
    """This node's name in Redis; a restarted node must keep it to finish its recordings."""
    storage_dir: Path | None = None
    """Where recordings are written (created 0700)."""

    # ---- tokens ----
    jwt_secret: str | None = Field(None, repr=False)
    """HS256 secret of the tokens. Without it or a public key, recorderd keeps a development
    secret in `{storage_dir}/.dev-jwt-secret` and binds loopback only."""
    jwt_public_key: str | None = None
    """PEM (text or path) verifying RS256, ES256 or EdDSA tokens instead of a secret."""
    jwt_algorithms: Annotated[list[str], NoDecode] = ["HS256"]
    """Allowed algorithms, comma-separated; `none` is never accepted."""
    jwt_audience: str | None = None
    """Checked against the token's `aud` when set."""
    jwt_issuer: str | None = None
    """Checked against the token's `iss` when set."""

    # ---- limits ----
    max_concurrent: int = Field(10, ge=1)
    """Active recordings across all nodes sharing the Redis (429 `max_concurrent`)."""
    max_per_user: int = Field(3, ge=1)
    """Active recordings of one user (429 `max_per_user`)."""
    max_per_room: int = Field(1, ge=1)
    """Active recordings of one room (429 `max_per_room`)."""
    max_duration_seconds: int = Field(7200, ge=1)
    """Media time (pauses excluded) at which a recording stops itself; a start may ask less."""
    max_pause_seconds: int = Field(1800, ge=1)
    """A recording paused this long stops itself."""
    no_media_timeout_seconds: float = Field(60, gt=0)
    """No frame from any source this long while pending or recording: a pending recording
    fails, a recording one stops with what it has."""
    max_publishers_per_room: int = Field(16, ge=1)
    """WHIP publishers one room accepts (503 beyond)."""
    max_publishers_per_user: int = Field(4, ge=1)
    """Live WHIP sessions of one user, cluster-wide; admins spared (429, docs/security.md)."""
    max_watchers_per_user: int = Field(8, ge=1)
    """Live-status streams of one user, cluster-wide; admins spared (429)."""
    starts_per_user_per_minute: int = Field(30, ge=1)
    """Starts of one user admitted in the last 60 s, cluster-wide; admins spared (429)."""
    max_rooms: int = Field(64, ge=1)
    """Rooms one node hosts (429 `max_rooms`)."""
    max_events_per_second: int = Field(20, ge=1, le=1000)
    """Timed events one recording takes per second (API posts and publishers' data-channel
    messages together): the API answers 429 `event_rate` beyond it, data-channel messages
    beyond it are dropped and counted (docs/media.md, "Events")."""
    whip_connect_timeout_seconds: float = Field(15, gt=0)
    """A WHIP session not connected (ICE and DTLS) by then is closed and its slot freed."""
    default_format: Format = Format.WEBM
    """Format of a start that names none: webm, mp4 or mkv."""
    default_quality: Quality = Quality.MEDIUM
    """Quality of a start that names none: low, medium, high, ultra or source."""

    # ---- the store ----
    key_prefix: str = "webrtc:recording:"
    """Prefix of every Redis key."""
    state_ttl_seconds: int = Field(604800, ge=1)
    """How long a recording's state is kept after its last write."""
    index_ttl_seconds: int = Field(86400, ge=1)
    """How long the room and user indexes are kept after their last addition."""
    heartbeat_seconds: float = Field(5, gt=0)
    """The node's `node:` key is written this often and lives three heartbeats."""
    drain_seconds: float = Field(60, ge=0)
    """SIGTERM: how long active recordings get to finalise before recorderd exits."""
    orphan_timeout_seconds: float = Field(60, gt=0)
    """How long after a node's heartbeat is gone another node takes over its recordings."""

    # ---- media and rooms ----
    cpu_capacity: float | None = Field(None, gt=0)
    """Cores this node may spend on live media; CPU admission refuses past it (429 `cpu`)."""
    deferred_concurrency: int = Field(1, ge=1)
    """Deferred transcodes run at once on this node, at the lowest CPU priority."""
    room_isolation: RoomIsolation = RoomIsolation.POOL
    """Where rooms run: `pool` (warm room workers, each hosting many rooms), `process` (a
    process per room, started with it: a crash takes one room down, at the price of a start
    per room and a process woken per packet) or `inline` (inside recorderd: one core, no
    crash isolation; for tests)."""
    room_workers: int | None = Field(None, ge=1, le=256)
    """`pool`: how many room workers are kept warm."""
    ice_servers: list[IceServer] = []
    """JSON list of `{urls, username, credential}`, used by every peer and announced to WHIP
    publishers in `Link` headers."""
    ice_host_addresses: Annotated[list[str], NoDecode] = []
    """Addresses to gather host candidates on, comma-separated; empty: every interface
    (`127.0.0.1` keeps WebRTC on loopback, as the tests do)."""
    cors_origins: Annotated[list[str], NoDecode] = []
    """Origins whose pages may call WHIP and the API from a browser, comma-separated."""
    pull_allowed_urls: Annotated[list[str], NoDecode] = []
    """`scheme://host[:port][/path]` entries a `whep` source must match, comma-separated;
    empty: `whep` sources are refused (docs/security.md)."""

    # ---- uploads ----
    upload_target: UploadTarget = UploadTarget.NONE
    """Default upload target: `none`, `s3` or `cloudflare_stream` (a start may choose)."""
    s3_bucket: str | None = None
    """Bucket of target `s3`; credentials come from boto3's usual chain."""
    s3_prefix: str = "webrtc-recordings/"
    """Objects are `{prefix}{room_id}/{recording_id}/{file_name}`."""
    s3_endpoint_url: str | None = None
    """An S3-compatible store's endpoint (R2, MinIO); none: AWS."""
    s3_region: str | None = None
    """The bucket's region."""
    s3_part_bytes: int = Field(8 * MIB, ge=MIN_PART_BYTES)
    """Multipart part size (at least 5 MiB; grown so a file fits in 10,000 parts)."""
    cf_account_id: str | None = None
    """Cloudflare account of target `cloudflare_stream`."""
    cf_api_token: str | None = Field(None, repr=False)
    """Cloudflare API token with Stream Write."""
    cf_api_base: str = "https://api.cloudflare.com/client/v4"
    """Cloudflare API base URL."""
    cf_stream_key_id: str | None = None
    """Stream signing key id; with the PEM, videos require signed URLs, signed locally."""
    cf_stream_key_pem: str | None = Field(None, repr=False)
    """Stream signing key (PEM, or the base64 PEM Stream's key API returns)."""
    cf_stream_customer_code: str | None = None
    """`customer-{code}.cloudflarestream.com` of playback URLs and webhooks' `streamUrl`."""
    cf_webhook_secret: str | None = Field(None, repr=False)
    """Verifies Stream's own webhook (besides a secret registered through the admin route)."""
    cf_realtime_app_id: str | None = None
    """Cloudflare Realtime SFU app of `cloudflare` sources (a start's default `app_id`)."""
    cf_realtime_app_secret: str | None = Field(None, repr=False)
    """That app's secret."""
    cf_realtime_api_base: str = "https://rtc.live.cloudflare.com/v1"
    """Cloudflare Realtime API base URL."""
    tus_chunk_bytes: int = Field(52428800, ge=MIN_PART_BYTES)
    """tus chunk size for Stream: a multiple of 256 KiB, at least 5 MiB."""
    job_claim_seconds: float = Field(300, gt=0)
    """An upload job idle this long (its worker died) is claimed by another worker."""
    keep_local_after_upload: bool = False
    """Keep local files after a verified upload."""
    retention_days: float = Field(7, ge=0)
    """Folders marked `.uploaded` are removed after this; nothing else ever is."""
    upload_retry_attempts: int = Field(10, ge=1)
    """Tries of one upload step (a part, a chunk, an API call)."""
    upload_retry_max_seconds: float = Field(60, gt=0)
    """Longest backoff wait between two tries."""

    # ---- webhooks and signed URLs ----
    webhook_url: str | None = None
    """Where status-change webhooks go."""
    webhook_secret: str | None = Field(None, repr=False)
    """`whsec_` + base64 (at least 16 bytes); required when a URL or allow-list is set."""
    webhook_retry_schedule: str = DEFAULT_SCHEDULE
    """Seconds before each attempt, after the previous one; its length is the attempts."""
    webhook_allowed_urls: Annotated[list[str], NoDecode] = []
    """Entries a start's own `webhook_url` must match, as RECORDER_PULL_ALLOWED_URLS; empty:
    a start's `webhook_url` is refused."""
    webhook_timeout_seconds: float = Field(15, gt=0)
    """One delivery attempt's time limit."""
    url_signing_secret: str | None = Field(None, repr=False)
    """HMAC key of signed file URLs (the same on every node); default: the JWT or development
    secret; required with a public-key JWT setup."""

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

    @field_validator("redis_sentinels")
    @classmethod
    def _redis_sentinels(cls, value: str | None) -> str | None:
        if value and not sentinel_addresses(value):
            raise ValueError("names no host:port")
        return value or None  # (sentinel_addresses raised for an entry that is not one)

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
        if self.room_workers is None:
            self.room_workers = len(os.sched_getaffinity(0))
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
    def workers(self) -> int:
        assert self.room_workers is not None
        return self.room_workers

    @property
    def node(self) -> str:
        assert self.node_id is not None
        return self.node_id

    @property
    def limits(self) -> Limits:
        return Limits(self.max_per_room, self.max_per_user, self.max_concurrent)

    @property
    def embedded(self) -> bool:
        return self.redis_url == "embedded" and not self.redis_sentinels

    @property
    def sentinel(self) -> SentinelStore | None:
        """Where the Sentinels are, when the store is found through them."""
        if not self.redis_sentinels:
            return None
        return SentinelStore(sentinel_addresses(self.redis_sentinels),
                             self.redis_sentinel_master, self.redis_password,
                             self.redis_sentinel_password, self.redis_db, self.redis_tls)

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
