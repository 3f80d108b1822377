"""A state's files by kind, for tests: the media files (``composite``/``track``) apart from
the sidecars every recording now has beside them (thumbnail, manifest...)."""

from __future__ import annotations

from typing import Any

MEDIA_KINDS = ("composite", "track")


def media_files(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in state["files"] if f["kind"] in MEDIA_KINDS]


def sidecar_kinds(state: dict[str, Any]) -> list[str]:
    return [f["kind"] for f in state["files"] if f["kind"] not in MEDIA_KINDS]
