"""The repository explains itself: the generated reference pages match the code, the README
stays a short entry point, and every link between the docs leads somewhere."""

from __future__ import annotations

import re
from pathlib import Path

from recorder.config.settings import Settings
from recorder.reference import PAGES, module_index, stale

ROOT = Path(__file__).resolve().parents[2]
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)\s]*)?\)")


def test_the_generated_pages_match_the_code() -> None:
    assert stale() == [], "run: python -m recorder.reference"


def test_the_generated_pages_cover_every_setting_and_route() -> None:
    configuration = PAGES["configuration.md"]("")
    api = PAGES["api.md"]("")
    assert "`RECORDER_PULL_ALLOWED_URLS`" in configuration
    assert "`RECORDER_MAX_WATCHERS_PER_USER`" in configuration
    assert "### POST `/whip/{room_id}`" in api
    assert "### GET `/api/webrtc/recordings`" in api


def test_the_architecture_page_names_every_module() -> None:
    index = module_index()
    for package in ("recorder", "workers"):
        for path in (ROOT / package).rglob("*.py"):
            if path.name not in ("__init__.py", "__main__.py"):
                assert f"`{path.relative_to(ROOT)}`" in index, path
    assert "| `recorder/service/rooms.py` | The rooms this node runs" in index


def test_the_readme_is_an_entry_point() -> None:
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200


def test_every_link_between_the_docs_leads_to_a_file() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target, _ in LINK.findall(page.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert broken == []


def test_the_example_config_shows_every_setting() -> None:
    example = (ROOT / "config" / "recorder.example.toml").read_text()
    shown = set(re.findall(r"^#?\s*([a-z0-9_]+)\s*=", example, re.M))
    assert set(Settings.model_fields) - shown == set()
