"""Every manifest a test sees is checked against docs/manifest.schema.json (jsonschema,
formats checked): call :func:`check_manifest` on one, or :func:`check_manifests` on a storage
folder (``run_daemon`` does it for every daemon's storage as it stops)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "manifest.schema.json"
MANIFEST_FILE = "manifest.json"


@functools.cache
def _validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


def check_manifest(manifest: Any) -> dict[str, Any]:
    """``manifest`` (a dict, or a path to one); AssertionError naming every violation."""
    if isinstance(manifest, Path):
        manifest = json.loads(manifest.read_text())
    errors = sorted(_validator().iter_errors(manifest), key=lambda e: list(e.path))
    assert not errors, "manifest does not follow the schema:\n" + "\n".join(
        f"{'/'.join(str(p) for p in e.path)}: {e.message}" for e in errors[:10])
    assert isinstance(manifest, dict)
    return manifest


def check_manifests(storage: Path) -> int:
    """Check every recording folder's manifest under ``storage``; how many there were."""
    found = sorted(storage.glob(f"*/{MANIFEST_FILE}")) if storage.is_dir() else []
    for path in found:
        check_manifest(path)
    return len(found)
