"""What the fuzzer should cover in an OpenAPI document."""

from __future__ import annotations

from typing import Any


def fuzzable_operations(document: dict[str, Any]) -> int:
    """Operations schemathesis selects: every method of every path but CORS preflights."""
    return sum(1 for item in document["paths"].values() for method in item
               if method not in ("parameters", "options"))
