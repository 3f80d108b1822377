"""Signatures around playback: Stream's incoming webhook, Stream's signed-URL tokens, and our
own expiring file URLs. Pure functions; the keys and secrets come from the settings.

- Stream signs its webhook with ``Webhook-Signature: time=<unix>,sig1=<hex HMAC-SHA256 of
  "time.body">`` keyed with the secret it returned when the webhook was registered.
- A Stream token is an RS256 JWT signed with a signing key of the account (``kid`` header
  and claim, ``sub`` the video id, ``exp``, ``nbf``, ``downloadable``, ``accessRules``);
  Stream's key API hands out the PEM base64-encoded, so both forms are accepted.
- A signed file URL carries ``exp`` and ``sig`` = hex HMAC-SHA256 of
  ``recording_id|name|exp``: any node with the same secret accepts it, no token needed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

STREAM_TOLERANCE_SECONDS = 300
MAX_EXPIRY_HOURS = 24


class SignatureError(Exception):
    """A signature is missing, malformed, wrong or stale (the message says which)."""


class Expired(SignatureError):
    """The signature is right but its time has passed."""


# ---- Stream's webhook ----------------------------------------------------------------------

_SIGNATURE_TIME = re.compile(r"[0-9]{1,12}")
_SIGNATURE_HEX = re.compile(r"[0-9a-fA-F]{64}")


def parse_stream_signature(header: str) -> tuple[int, str]:
    """`time` and `sig1` of the header, both ASCII: the header is whatever a client sent,
    and a non-ASCII digit or hex letter would pass str.isdigit() but not int() or
    hmac.compare_digest()."""
    fields: dict[str, str] = {}
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if sep:
            fields[name.strip()] = value.strip()
    raw_time, sig = fields.get("time", ""), fields.get("sig1", "")
    if not _SIGNATURE_TIME.fullmatch(raw_time) or not _SIGNATURE_HEX.fullmatch(sig):
        raise SignatureError("Webhook-Signature must be 'time=<unix>,sig1=<hex SHA-256>'")
    return int(raw_time), sig


def stream_signature(secret: str, time: int, body: bytes) -> str:
    return hmac.new(secret.encode(), str(time).encode() + b"." + body, hashlib.sha256).hexdigest()


def verify_stream_signature(secrets: list[str], header: str | None, body: bytes, now: float,
                            tolerance: float = STREAM_TOLERANCE_SECONDS) -> None:
    """Raise SignatureError unless one of `secrets` signed `body` within `tolerance`."""
    if not header:
        raise SignatureError("no Webhook-Signature header")
    time, sig = parse_stream_signature(header)
    if abs(now - time) > tolerance:
        raise Expired(f"signature time {time} is more than {tolerance:g} s from now")
    if not secrets:
        raise SignatureError("no Stream webhook secret is configured or registered")
    matches = [hmac.compare_digest(stream_signature(s, time, body), sig.lower())
               for s in secrets]
    if not any(matches):
        raise SignatureError("signature does not match")


# ---- Stream's signed URLs ------------------------------------------------------------------

def load_stream_key(value: str) -> rsa.RSAPrivateKey:
    """RECORDER_CF_STREAM_KEY_PEM: a PEM, or the base64 of one (as Stream's API returns it)."""
    text = value.strip()
    if not text.startswith("-----BEGIN"):
        try:
            text = base64.b64decode(text, validate=True).decode()
        except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
            raise ValueError("neither PEM nor base64-encoded PEM") from exc
    try:
        key = load_pem_private_key(text.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError("not an unencrypted PEM private key") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("Stream signing keys are RSA keys")
    return key


def stream_token(key: rsa.RSAPrivateKey, key_id: str, video_id: str, exp: int, nbf: int, *,
                 downloadable: bool = False,
                 access_rules: list[dict[str, Any]] | None = None) -> str:
    claims: dict[str, Any] = {"sub": video_id, "kid": key_id, "exp": exp, "nbf": nbf,
                              "downloadable": downloadable}
    if access_rules:
        claims["accessRules"] = access_rules
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": key_id})


def stream_playback_url(customer_code: str, token: str) -> str:
    return f"https://customer-{customer_code}.cloudflarestream.com/{token}/manifest/video.m3u8"


# ---- our signed file URLs ------------------------------------------------------------------

def file_signature(secret: str, recording_id: str, name: str, exp: int) -> str:
    message = f"{recording_id}|{name}|{exp}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify_file_signature(secret: str, recording_id: str, name: str, exp: int, sig: str,
                          now: float) -> None:
    """Raise SignatureError when `sig` is wrong (checked first) or `exp` has passed."""
    if not hmac.compare_digest(file_signature(secret, recording_id, name, exp), sig.lower()):
        raise SignatureError("the URL's signature does not match")
    if now >= exp:
        raise Expired("the URL has expired")
