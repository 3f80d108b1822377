"""Mutated WHIP offers, for fuzzing the ingest edge.

Real offers are the seeds (aiortc's, a Chromium one, the shape of FFmpeg's WHIP muxer and a
data-channel-only one, all in tests/rtc/data), and each fuzzed offer is one of them with one
to three mutations: a line dropped, duplicated, swapped or cut short, a number swapped for a
hostile one, bytes injected (control characters, invalid UTF-8, stray separators), every
line of a required kind removed, a section's kind or codec changed. A fixed seed makes a run
repeatable: an offer that fails in CI is rebuilt locally from its index.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "rtc" / "data"
SEED_FILES = ("aiortc_offer.sdp", "chromium_offer.sdp", "ffmpeg_offer.sdp",
              "datachannel_offer.sdp")

HOSTILE_NUMBERS = ("0", "-1", "65536", "4294967296", "18446744073709551616", "1e9", "0x10",
                   "", "NaN", "٣", "²", "9" * 400)
INJECTED = (b"\x00", b"\xff\xfe", b"\xc3\x28", b"\r", b"\n", b"\r\n\r\n", b"=", b":", b" ",
            b"\t", b"/", b"\xe2\x80\xae", "é".encode(), b"a=", b"m=", b"%s%n", b"\x1b[0m",
            b"x" * 300)
REQUIRED_PREFIXES = ("v=", "o=", "s=", "t=", "c=", "m=", "a=mid:", "a=ice-ufrag:",
                     "a=ice-pwd:", "a=fingerprint:", "a=setup:", "a=rtpmap:", "a=rtcp-mux",
                     "a=sctp-port:", "a=group:", "a=fmtp:")
KINDS = ("audio", "video", "application", "text", "message", "", "AUDIO", "video video")
CODECS = ("VP8", "VP9", "AV1", "H264", "H265", "opus", "PCMU", "rtx", "red", "x", "")
SETUPS = ("actpass", "active", "passive", "holdconn", "", "ACTPASS", "active passive")


def seed_offers() -> dict[str, bytes]:
    return {name.removesuffix("_offer.sdp"): (DATA / name).read_bytes() for name in SEED_FILES}


@dataclass(frozen=True)
class FuzzedOffer:
    index: int
    seed: str
    mutations: tuple[str, ...]
    body: bytes

    def describe(self) -> str:
        return f"#{self.index} {self.seed} + {', '.join(self.mutations)}"


Lines = list[bytes]
Mutation = Callable[[random.Random, Lines], Lines]


def _pick(rng: random.Random, lines: Lines) -> int:
    return rng.randrange(len(lines)) if lines else 0


def drop_line(rng: random.Random, lines: Lines) -> Lines:
    i = _pick(rng, lines)
    return lines[:i] + lines[i + 1:]


def duplicate_line(rng: random.Random, lines: Lines) -> Lines:
    i = _pick(rng, lines)
    return lines[:i + 1] + lines[i:]


def swap_lines(rng: random.Random, lines: Lines) -> Lines:
    if len(lines) < 2:
        return lines
    i, j = rng.sample(range(len(lines)), 2)
    out = list(lines)
    out[i], out[j] = out[j], out[i]
    return out


def truncate_line(rng: random.Random, lines: Lines) -> Lines:
    i = _pick(rng, lines)
    out = list(lines)
    if out:
        out[i] = out[i][:rng.randrange(len(out[i]) + 1)]
    return out


def swap_number(rng: random.Random, lines: Lines) -> Lines:
    numbered = [i for i, line in enumerate(lines) if re.search(rb"\d", line)]
    if not numbered:
        return lines
    i = rng.choice(numbered)
    matches = list(re.finditer(rb"\d+", lines[i]))
    m = rng.choice(matches)
    out = list(lines)
    out[i] = lines[i][:m.start()] + rng.choice(HOSTILE_NUMBERS).encode() + lines[i][m.end():]
    return out


def inject_bytes(rng: random.Random, lines: Lines) -> Lines:
    i = _pick(rng, lines)
    out = list(lines)
    if out:
        at = rng.randrange(len(out[i]) + 1)
        out[i] = out[i][:at] + rng.choice(INJECTED) + out[i][at:]
    return out


def drop_required(rng: random.Random, lines: Lines) -> Lines:
    prefix = rng.choice(REQUIRED_PREFIXES).encode()
    return [line for line in lines if not line.startswith(prefix)]


def change_kind(rng: random.Random, lines: Lines) -> Lines:
    return _rewrite(rng, lines, rb"^m=(\w+)", rng.choice(KINDS).encode())


def change_codec(rng: random.Random, lines: Lines) -> Lines:
    return _rewrite(rng, lines, rb"^a=rtpmap:\d+ ([^/]+)", rng.choice(CODECS).encode())


def change_setup(rng: random.Random, lines: Lines) -> Lines:
    return _rewrite(rng, lines, rb"^a=setup:(.*)$", rng.choice(SETUPS).encode())


def _rewrite(rng: random.Random, lines: Lines, pattern: bytes, value: bytes) -> Lines:
    """Replace group 1 of `pattern` in one matching line."""
    hits = [i for i, line in enumerate(lines) if re.search(pattern, line)]
    if not hits:
        return lines
    i = rng.choice(hits)
    m = re.search(pattern, lines[i])
    assert m is not None
    out = list(lines)
    out[i] = lines[i][:m.start(1)] + value + lines[i][m.end(1):]
    return out


MUTATIONS: dict[str, Mutation] = {
    "drop-line": drop_line, "duplicate-line": duplicate_line, "swap-lines": swap_lines,
    "truncate-line": truncate_line, "swap-number": swap_number, "inject-bytes": inject_bytes,
    "drop-required": drop_required, "change-kind": change_kind, "change-codec": change_codec,
    "change-setup": change_setup,
}


def mutated_offers(count: int, seed: int) -> Iterator[FuzzedOffer]:
    """`count` offers, the same ones for the same `seed`. Every tenth offer is also cut
    short at a random byte, the way a dropped connection or a bad proxy leaves it."""
    rng = random.Random(seed)
    seeds = seed_offers()
    names = sorted(seeds)
    for index in range(count):
        name = names[index % len(names)]
        lines = seeds[name].split(b"\r\n")
        applied: list[str] = []
        for _ in range(rng.choice((1, 1, 2, 3))):
            mutation = rng.choice(sorted(MUTATIONS))
            lines = MUTATIONS[mutation](rng, lines)
            applied.append(mutation)
        body = b"\r\n".join(lines)
        if index % 10 == 9:
            body = body[:rng.randrange(len(body) + 1)]
            applied.append("truncate")
        yield FuzzedOffer(index, name, tuple(applied), body)
