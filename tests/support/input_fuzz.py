"""Mutated credentials and bodies, for fuzzing what the API reads before it trusts anything.

Bearer tokens (a valid one with characters flipped, segments dropped or doubled, bytes
injected, its header swapped for hostile ones, or signed with the right secret around
claims of the wrong type), Stream's ``Webhook-Signature`` header, and raw JSON bodies
(a valid start body cut short, nested deep, with numbers swapped and bytes injected).
Everything is bytes, because a client can send bytes that are not UTF-8 in a header, and
everything comes from a seeded generator, so a failure names an input that can be rebuilt.

:func:`send_raw` speaks HTTP/1.1 over a socket: aiohttp's client refuses to send such
headers at all.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tests.support.sdp_fuzz import HOSTILE_NUMBERS, INJECTED


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes


async def send_raw(url: str, method: str, path: str, headers: list[bytes],
                   body: bytes = b"") -> Answer:
    """One request with these exact header lines; the connection closes after it."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    head = (f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
            f"Content-Length: {len(body)}\r\n").encode()
    writer.write(head + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + body)
    await writer.drain()
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    head_bytes, _, rest = data.partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    fields = dict(line.split(":", 1) for line in lines[1:] if ":" in line)
    content_type = next((v.strip() for k, v in fields.items()
                         if k.lower() == "content-type"), "")
    return Answer(int(lines[0].split(" ")[1]), content_type, rest)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(secret: str, header: Any, claims: Any) -> str:
    """A token signed (HS256) with `secret` around any header and claims, of any type:
    what a careless issuer could mint, which the library's own encoder would refuse."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


HOSTILE_HEADERS: tuple[Any, ...] = (
    {"alg": "none"}, {"alg": "None"}, {"alg": ""}, {"alg": None}, {"alg": ["HS256"]},
    {"alg": "RS256"}, {"alg": "HS512"}, {"alg": "ES256"}, {"alg": "EdDSA"}, {},
    {"alg": "HS256", "kid": 5}, {"alg": "HS256", "crit": ["exp"]}, {"alg": "HS256", "b64": False},
    {"alg": "HS256", "jku": "http://169.254.169.254/"}, [1], "HS256", 1, None,
)


def hostile_claims(now: int) -> list[Any]:
    later = now + 3600
    return [
        {"sub": "x", "exp": "soon"}, {"sub": "x", "exp": 1e308}, {"sub": "x", "exp": -1},
        {"sub": "x", "exp": [later]}, {"sub": 5, "exp": later}, {"sub": "", "exp": later},
        {"sub": ["x"], "exp": later}, {"exp": later}, {"sub": "x"},
        {"sub": "x", "exp": later, "iat": 10**30}, {"sub": "x", "exp": later, "nbf": [1]},
        {"sub": "x", "exp": later, "nbf": "now"}, {"sub": "x", "exp": later, "rooms": "r"},
        {"sub": "x", "exp": later, "rooms": [1]}, {"sub": "x", "exp": later, "role": 1},
        {"sub": "x", "exp": later, "role": {"admin": True}}, {"sub": "x", "exp": later,
                                                             "iss": 5, "aud": {"a": 1}},
        {"sub": "\x00\ud800", "exp": later}, [], "claims", None, 1,
    ]


def mutated_tokens(valid: str, secret: str, now: int, count: int,
                   seed: int) -> Iterator[tuple[str, bytes]]:
    """(what was done, the Authorization header value): the hostile headers and claims
    first, then random mutations of `valid` until `count`."""
    made = 0
    for header in HOSTILE_HEADERS:
        yield f"header {header!r}", b"Bearer " + forge(secret, header, {"sub": "x",
                                                                        "exp": now + 60}).encode()
        made += 1
    for claims in hostile_claims(now):
        yield f"claims {claims!r}", b"Bearer " + forge(
            secret, {"alg": "HS256", "typ": "JWT"}, claims).encode("utf-8", "surrogatepass")
        made += 1
    rng = random.Random(seed)
    raw = valid.encode()
    while made < count:
        what, value = _mutate_token(rng, raw)
        yield what, value
        made += 1


def _mutate_token(rng: random.Random, raw: bytes) -> tuple[str, bytes]:
    segments = raw.split(b".")
    choice = rng.randrange(8)
    if choice == 0:
        i = rng.randrange(len(raw))
        return "flip", b"Bearer " + raw[:i] + bytes([rng.randrange(33, 127)]) + raw[i + 1:]
    if choice == 1:
        keep = rng.sample(range(3), rng.randrange(3))
        return "drop segments", b"Bearer " + b".".join(segments[i] for i in sorted(keep))
    if choice == 2:
        return "extra segments", b"Bearer " + raw + b"." + segments[rng.randrange(3)]
    if choice == 3:
        i = rng.randrange(len(raw) + 1)
        return "inject", b"Bearer " + raw[:i] + rng.choice(INJECTED).strip(b"\r\n") + raw[i:]
    if choice == 4:
        return "truncate", b"Bearer " + raw[:rng.randrange(len(raw))]
    if choice == 5:
        scheme = rng.choice((b"Basic", b"bearer", b"BEARER", b"Token", b"", b"Bearer\t"))
        return "scheme", scheme + b" " + raw
    if choice == 6:
        return "wrong secret", b"Bearer " + forge("not-the-secret", {"alg": "HS256"},
                                                  {"sub": "x", "exp": 2**31}).encode()
    segment = rng.randrange(3)
    garbage = b64url(rng.randbytes(rng.randrange(1, 40))).encode()
    segments[segment] = garbage
    return f"garbage segment {segment}", b"Bearer " + b".".join(segments)


def stream_signature(secret: str, time: int, body: bytes) -> str:
    return hmac.new(secret.encode(), str(time).encode() + b"." + body, hashlib.sha256).hexdigest()


def mutated_signatures(secret: str, now: int, body: bytes, count: int,
                       seed: int) -> Iterator[bytes]:
    """`Webhook-Signature` values that must all be refused: bad times, bad or foreign
    characters in sig1, fields missing, repeated or garbled, a right signature made stale."""
    rng = random.Random(seed)
    good = stream_signature(secret, now, body)
    fixed = [
        f"time={now - 3600},sig1={stream_signature(secret, now - 3600, body)}".encode(),
        f"time={now},sig1={good[:-1]}".encode(), f"time={now},sig1={good}0".encode(),
        f"sig1={good}".encode(), f"time={now}".encode(), b"", b",", b"=", b"time=,sig1=",
        f"time={now},sig1=é{good[1:]}".encode(), f"time={now},sig1=".encode() + b"\xff" * 64,
        "time=²,sig1=ab".encode(), "time=١٢٣,sig1=ab".encode(),
        f"time={'9' * 5000},sig1={good}".encode(), f"time={now},sig1={'z' * 64}".encode(),
    ]
    yield from fixed
    for _ in range(count - len(fixed)):
        time_value = rng.choice((str(now), *HOSTILE_NUMBERS)).encode()
        sig = bytearray(good.encode())
        for _ in range(rng.randrange(1, 4)):
            at = rng.randrange(len(sig) + 1)
            sig[at:at + rng.randrange(2)] = rng.choice(INJECTED).strip(b"\r\n")[:8]
        parts = [b"time=" + time_value, b"sig1=" + bytes(sig)]
        rng.shuffle(parts)
        if rng.random() < 0.3:
            parts.append(rng.choice((b"sig1=00", b"time=0", b"v1=x", b"", b"sig2=ab")))
        yield rng.choice((b",", b", ", b";", b",,")).join(parts)


START_BODY = json.dumps({
    "format": "webm", "quality": "low", "layout": "tracks", "transcode": "live",
    "source": {"type": "whip"}, "max_duration_seconds": 60, "upload": "none",
    "metadata": {"title": "talk", "tags": ["a", "b"], "n": 1.5},
}).encode()


def mutated_json_bodies(count: int, seed: int) -> Iterator[bytes]:
    """A valid start body, cut, nested, renumbered, retyped and sprinkled with bytes."""
    rng = random.Random(seed)
    yield b"[" * 100_000 + b"]" * 100_000
    yield b'{"metadata":' + b'{"a":' * 5_000 + b"1" + b"}" * 5_001
    yield b'{"max_duration_seconds":' + b"9" * 5_000 + b"}"
    yield START_BODY.replace(b"60", b"NaN")
    yield START_BODY.replace(b'"talk"', b'"\\ud800"')
    yield b"\xef\xbb\xbf" + START_BODY
    yield START_BODY.decode().encode("utf-16")
    for _ in range(count - 7):
        body = START_BODY
        for _ in range(rng.randrange(1, 4)):
            body = _mutate_json(rng, body)
        yield body


def _mutate_json(rng: random.Random, body: bytes) -> bytes:
    choice = rng.randrange(5)
    at = rng.randrange(len(body) + 1)
    if choice == 0:
        return body[:at]
    if choice == 1:
        return body[:at] + rng.choice(INJECTED) + body[at:]
    if choice == 2:
        value = rng.choice((*HOSTILE_NUMBERS, "null", "true", "[]", "{}", '""', "1e999"))
        return body.replace(b"60", value.encode() or b'""', 1).replace(
            b"1.5", rng.choice(HOSTILE_NUMBERS).encode() or b"0", 1)
    if choice == 3:
        depth = rng.randrange(1, 3000)
        return body.replace(b'"a"', b"[" * depth + b'"a"' + b"]" * depth, 1)
    key = rng.choice((b'"format"', b'"source"', b'"type"', b'"metadata"', b'"upload"'))
    return body.replace(key, rng.choice((b'"x"', b'"' + key.strip(b'"') + b'\\u0000"',
                                         key + b":1," + key, b'"__proto__"')), 1)
