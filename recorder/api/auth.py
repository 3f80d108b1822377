"""Bearer JWT verification, development tokens and the development secret.

The algorithm is pinned twice: the token's header must name one of RECORDER_JWT_ALGORITHMS
that the configured key can verify, and the key is chosen by that family (HMAC secret for
HS*, the public key otherwise), so a public key can never be used as an HMAC secret and
`none` never reaches the library. Misconfiguration fails at start-up, not on every request.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from recorder.config.loading import SettingsError
from recorder.config.settings import Settings
from recorder.core.access import Caller
from recorder.core.errors import Unauthorized

DEV_SECRET_FILE = ".dev-jwt-secret"
LEEWAY_SECONDS = 10  # clock skew tolerated between the token issuer and this node
MAX_CLAIM_CHARS = 512
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_=-]+\.[A-Za-z0-9_=-]+\.[A-Za-z0-9_=-]*")

PublicKey = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
)


def _load_public_key(value: str) -> PublicKey:
    """RECORDER_JWT_PUBLIC_KEY holds the PEM itself or a path to it."""
    text = value.strip()
    if not text.startswith("-----BEGIN"):
        try:
            text = Path(text).expanduser().read_text()
        except OSError as exc:
            raise SettingsError(
                f"invalid setting RECORDER_JWT_PUBLIC_KEY: neither PEM text nor a readable "
                f"file ({exc.strerror}: {text})") from exc
    try:
        key = load_pem_public_key(text.encode())
    except ValueError as exc:
        raise SettingsError(
            "invalid setting RECORDER_JWT_PUBLIC_KEY: not a PEM public key") from exc
    if not isinstance(key, PublicKey):
        raise SettingsError(
            f"invalid setting RECORDER_JWT_PUBLIC_KEY: unsupported key type {type(key).__name__}")
    return key


def _fits(algorithm: str, key: PublicKey | None, secret: str | None) -> bool:
    if algorithm.startswith("HS"):
        return secret is not None
    if algorithm.startswith(("RS", "PS")):
        return isinstance(key, rsa.RSAPublicKey)
    if algorithm.startswith("ES"):
        return isinstance(key, ec.EllipticCurvePublicKey)
    if algorithm == "EdDSA":
        return isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey)
    return False


class Authenticator:
    """Turns an ``Authorization`` header into a :class:`Caller`, or raises Unauthorized."""

    def __init__(self, settings: Settings, dev_secret: str | None = None) -> None:
        self._secret = settings.jwt_secret or dev_secret
        self._key = _load_public_key(settings.jwt_public_key) if settings.jwt_public_key else None
        self._audience = settings.jwt_audience
        self._issuer = settings.jwt_issuer
        self._algorithms = frozenset(
            alg for alg in settings.jwt_algorithms if _fits(alg, self._key, self._secret))
        if not self._algorithms:
            raise SettingsError(
                f"invalid setting RECORDER_JWT_ALGORITHMS: none of {settings.jwt_algorithms} "
                "can be verified with the configured key (HS* need RECORDER_JWT_SECRET; RS*, "
                "PS*, ES*, EdDSA need a matching RECORDER_JWT_PUBLIC_KEY)")

    @property
    def algorithms(self) -> frozenset[str]:
        return self._algorithms

    def authenticate(self, authorization: str | None) -> Caller:
        token = _bearer_token(authorization)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"malformed token: {exc}") from exc
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in self._algorithms:
            raise Unauthorized(f"token algorithm {algorithm!r} is not accepted")
        key: Any = self._secret if algorithm.startswith("HS") else self._key
        try:
            claims = jwt.decode(
                token, key, algorithms=[algorithm], audience=self._audience,
                issuer=self._issuer, leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "sub"], "verify_aud": self._audience is not None},
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid token: {exc}") from exc
        return _caller(claims)


def _bearer_token(authorization: str | None) -> str:
    """The token of a `Bearer` header, in the compact JWS form (RFC 7515 section 7.1).

    Checked here because the header is whatever a client sent (aiohttp hands undecodable
    bytes on as lone surrogates) and the JWT library fails on non-ASCII text with errors
    that are not its own."""
    if not authorization:
        raise Unauthorized("a bearer token is required (Authorization: Bearer <jwt>)")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("the Authorization header must be 'Bearer <jwt>'")
    if not _COMPACT_JWS.fullmatch(token):
        raise Unauthorized("malformed token: not three base64url segments")
    return token


def _is_text(value: object) -> bool:
    """A non-empty, printable string of sane length: `sub` ends up in Redis keys and logs,
    and a lone surrogate or a control character cannot go there."""
    return isinstance(value, str) and 0 < len(value) <= MAX_CLAIM_CHARS and value.isprintable()


def _caller(claims: dict[str, Any]) -> Caller:
    sub = claims.get("sub")
    if not _is_text(sub):
        raise Unauthorized(f"claim 'sub' must be a printable string of 1 to "
                           f"{MAX_CLAIM_CHARS} characters")
    assert isinstance(sub, str)
    role = claims.get("role")
    if role is not None and not isinstance(role, str):
        raise Unauthorized("claim 'role' must be a string")
    rooms = claims.get("rooms")
    if rooms is not None and (not isinstance(rooms, list) or not all(map(_is_text, rooms))):
        raise Unauthorized("claim 'rooms' must be a list of room ids")
    return Caller(
        user_id=sub,
        is_admin=role == "admin",
        rooms=frozenset(rooms) if rooms is not None else None,
    )


def mint_token(
    secret: str,
    sub: str,
    role: str | None = None,
    rooms: Iterable[str] | None = None,
    ttl_seconds: int = 3600,
    *,
    audience: str | None = None,
    issuer: str | None = None,
) -> str:
    """An HS256 token for development and tests (production tokens come from the app)."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": sub, "iat": now, "exp": now + ttl_seconds}
    if role is not None:
        claims["role"] = role
    if rooms is not None:
        claims["rooms"] = list(rooms)
    if audience is not None:
        claims["aud"] = audience
    if issuer is not None:
        claims["iss"] = issuer
    return jwt.encode(claims, secret, algorithm="HS256")


def load_or_create_dev_secret(storage_dir: Path) -> str:
    """The node's development secret: made once, then reused so tokens survive restarts.

    Created with O_EXCL and mode 0600 so two processes starting together agree on one secret
    and no other user can read it; `recorderctl token` reads the same file.
    """
    storage_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = storage_dir / DEV_SECRET_FILE
    for _ in range(50):
        with contextlib.suppress(FileNotFoundError):
            existing = path.read_text().strip()
            if existing:
                if path.stat().st_mode & 0o077:
                    path.chmod(0o600)
                return existing
        secret = secrets.token_urlsafe(48)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            time.sleep(0.01)  # another process is writing it: read theirs
            continue
        with os.fdopen(fd, "w") as file:
            file.write(secret + "\n")
        return secret
    raise SettingsError(f"invalid setting RECORDER_STORAGE_DIR: {path} exists but stays empty")
