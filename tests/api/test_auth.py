"""Who gets in: every way a token can be wrong is a 401 with a Bearer challenge."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from recorder.api.app import build_app
from recorder.api.auth import Authenticator, load_or_create_dev_secret, mint_token
from recorder.api.metrics import Metrics
from recorder.config.loading import SettingsError
from recorder.core.errors import Unauthorized
from tests.api.conftest import SECRET, Client, bearer, problem_of, settings_of
from tests.api.fakes import FakeService

START = "/api/webrtc/rooms/room-1/recording/start"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(**extra: Any) -> dict[str, Any]:
    return {"sub": "alice", "exp": int(time.time()) + 600, **extra}


def _forged(header: dict[str, Any], claims: dict[str, Any], key: bytes | None) -> str:
    """A token built by hand, as an attacker would (libraries refuse to make these)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    if key is None:
        return signing_input + "."
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _pem(private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
         | ed25519.Ed25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(None, id="missing"),
        pytest.param("Basic YWxpY2U6cHc=", id="not-bearer"),
        pytest.param("Bearer ", id="empty"),
        pytest.param("Bearer not.a.jwt", id="garbage"),
        pytest.param("Bearer " + jwt.encode(
            {"sub": "alice", "exp": int(time.time()) - 120}, SECRET), id="expired"),
        pytest.param("Bearer " + jwt.encode({"sub": "alice"}, SECRET), id="no-exp"),
        pytest.param("Bearer " + jwt.encode(_claims(sub=""), SECRET), id="empty-sub"),
        pytest.param("Bearer " + _forged({"alg": "none", "typ": "JWT"}, _claims(), None),
                     id="alg-none"),
        pytest.param("Bearer " + _forged({"alg": "HS256", "typ": "JWT"}, _claims(),
                                         b"another-secret-0123456789abcdef0123"), id="wrong-key"),
        pytest.param("Bearer " + jwt.encode(_claims(), SECRET, algorithm="HS512"),
                     id="algorithm-not-allowed"),
        pytest.param("Bearer " + jwt.encode(_claims(rooms="room-1"), SECRET),
                     id="rooms-not-a-list"),
    ],
)
async def test_a_bad_token_is_401_with_a_bearer_challenge(
    client: Client, service: FakeService, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = await client.post(START, headers=headers)
    await problem_of(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert service.states == {}


async def test_public_routes_need_no_token(client: Client) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/api/openapi.json"):
        assert (await client.get(path)).status == 200, path


@pytest.fixture
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
async def rs256_client(tmp_path: Path, rsa_key: rsa.RSAPrivateKey, service: FakeService
                       ) -> AsyncIterator[Client]:
    key_file = tmp_path / "jwt.pub"
    key_file.write_bytes(_pem(rsa_key))
    settings = settings_of(jwt_public_key=str(key_file), jwt_algorithms=["RS256"],
                        storage_dir=tmp_path)
    app = build_app(service, Authenticator(settings), settings, Metrics())
    async with TestClient(TestServer(app)) as client:
        yield client


async def test_rs256_accepts_its_key_and_nothing_else(
    rs256_client: Client, rsa_key: rsa.RSAPrivateKey
) -> None:
    good = jwt.encode(_claims(), rsa_key, algorithm="RS256")
    response = await rs256_client.post(START, headers={"Authorization": f"Bearer {good}"})
    assert response.status == 201

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    foreign = jwt.encode(_claims(), other, algorithm="RS256")
    # The classic confusion: HS256 "signed" with the public key as the HMAC secret.
    confused = _forged({"alg": "HS256", "typ": "JWT"}, _claims(), _pem(rsa_key))
    for token in (foreign, confused, mint_token(SECRET, "alice")):
        response = await rs256_client.post(START.replace("room-1", "room-2"),
                                           headers={"Authorization": f"Bearer {token}"})
        await problem_of(response, 401)


@pytest.mark.parametrize("algorithm", ["ES256", "EdDSA"])
def test_other_public_key_algorithms_verify(algorithm: str) -> None:
    private: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey = (
        ec.generate_private_key(ec.SECP256R1()) if algorithm == "ES256"
        else ed25519.Ed25519PrivateKey.generate())
    auth = Authenticator(settings_of(jwt_public_key=_pem(private).decode(),
                                  jwt_algorithms=[algorithm]))
    caller = auth.authenticate(
        "Bearer " + jwt.encode(_claims(role="admin", rooms=["r"]), private, algorithm=algorithm))
    assert (caller.user_id, caller.is_admin, caller.rooms) == ("alice", True, frozenset({"r"}))


def test_audience_and_issuer_are_checked_when_set() -> None:
    auth = Authenticator(settings_of(jwt_secret=SECRET, jwt_audience="recorder",
                                  jwt_issuer="https://app.example.com"))
    good = mint_token(SECRET, "alice", audience="recorder", issuer="https://app.example.com")
    assert auth.authenticate(f"Bearer {good}").user_id == "alice"
    for bad in (mint_token(SECRET, "alice"),
                mint_token(SECRET, "alice", audience="other", issuer="https://app.example.com"),
                mint_token(SECRET, "alice", audience="recorder", issuer="https://evil")):
        with pytest.raises(Unauthorized):
            auth.authenticate(f"Bearer {bad}")


def test_a_token_with_an_audience_passes_when_none_is_configured() -> None:
    auth = Authenticator(settings_of(jwt_secret=SECRET))
    assert auth.authenticate(f"Bearer {mint_token(SECRET, 'a', audience='x')}").user_id == "a"


def test_configurations_that_cannot_verify_anything_stop_start_up(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="RECORDER_JWT_ALGORITHMS"):
        Authenticator(settings_of(jwt_secret=SECRET, jwt_algorithms=["RS256"]))
    ec_pem = _pem(ec.generate_private_key(ec.SECP256R1())).decode()
    with pytest.raises(SettingsError, match="RECORDER_JWT_ALGORITHMS"):
        Authenticator(settings_of(jwt_public_key=ec_pem, jwt_algorithms=["RS256"]))
    with pytest.raises(SettingsError, match="RECORDER_JWT_PUBLIC_KEY"):
        Authenticator(settings_of(jwt_public_key=str(tmp_path / "missing.pem"),
                               jwt_algorithms=["RS256"]))
    with pytest.raises(SettingsError, match="RECORDER_JWT_PUBLIC_KEY"):
        Authenticator(settings_of(jwt_public_key="-----BEGIN PUBLIC KEY-----\nnope\n",
                               jwt_algorithms=["RS256"]))


def test_the_dev_secret_is_private_and_reused(tmp_path: Path) -> None:
    storage = tmp_path / "recordings"
    secret = load_or_create_dev_secret(storage)
    path = storage / ".dev-jwt-secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_dev_secret(storage) == secret
    auth = Authenticator(settings_of(storage_dir=storage), dev_secret=secret)
    token = mint_token(secret, sub="admin", role="admin", rooms=None, ttl_seconds=60)
    assert auth.authenticate(f"Bearer {token}").is_admin
    with pytest.raises(Unauthorized):
        auth.authenticate("Bearer " + mint_token("a-different-secret-of-enough-length", "x"))


async def test_the_rooms_claim_limits_where_a_token_acts(client: Client) -> None:
    allowed = await client.post(START, headers=bearer(rooms=["room-1"]))
    assert allowed.status == 201
    await problem_of(await client.post(START.replace("room-1", "room-2"),
                                       headers=bearer(rooms=["room-1"])), 403)
