"""The pure pieces behind tests/security/test_views.py: cursors, pages, the shown URL, the
metric label and the log escaping."""

from __future__ import annotations

import hashlib
import logging
import random
import sys
from datetime import UTC, datetime, timedelta

import pytest

from recorder.api.metrics import endpoint_label
from recorder.api.views import public_url, view
from recorder.core.access import Caller
from recorder.core.errors import InvalidInput
from recorder.core.paging import MAX_LIMIT, Newest, PageRequest, Position
from recorder.logs import EscapingFormatter, escape_controls
from tests.support.states import make_state

USER = Caller("user-1", False, None)
ADMIN = Caller("ops", True, None)


def test_a_cursor_round_trips_and_anything_else_is_unknown() -> None:
    position = Position(datetime(2026, 11, 21, 12, 0, 1, 5, tzinfo=UTC), "ab-12_cd")
    assert Position.decode(position.encode()) == position
    for bad in ("", "!!!", "bm90IGpzb24", "WyJ4IiwieSJd", "WyIyMDI2LTExLTIxVDEyOjAwOjAxIiwieSJd",
                "x" * 300, Position(position.created_at, "a/b").encode()):
        with pytest.raises(InvalidInput):
            Position.decode(bad)


@pytest.mark.parametrize("limit", [0, MAX_LIMIT + 1, -1])
def test_a_page_size_outside_1_to_1000_is_refused(limit: int) -> None:
    with pytest.raises(InvalidInput):
        PageRequest(limit)


def test_pages_hold_each_item_once_newest_first_whatever_the_order_offered() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    positions = [Position(start + timedelta(seconds=i // 3), f"id{i:03d}") for i in range(50)]
    expected = sorted(positions, reverse=True)
    seen: list[Position] = []
    after = None
    while True:
        newest: Newest[str] = Newest(PageRequest(7, after))
        for position in random.sample(positions, len(positions)):
            newest.offer(position, position.recording_id)
        page = newest.page()
        assert len(page.items) <= 7
        seen += [p for p, _ in page.items]
        if page.next is None:
            break
        after = page.next
    assert seen == expected


def test_an_item_offered_twice_is_held_once() -> None:
    """A SCAN may return a key twice (the cluster-wide admin list reads by SCAN)."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    positions = [Position(start + timedelta(seconds=i), f"id{i:03d}") for i in range(20)]
    offered = positions + random.sample(positions, 10) + positions[:5]
    for limit in (3, 7, 25):
        newest: Newest[str] = Newest(PageRequest(limit))
        for position in random.sample(offered, len(offered)):
            newest.offer(position, position.recording_id)
        page = newest.page()
        assert [p for p, _ in page.items] == sorted(positions, reverse=True)[:limit]


def test_public_url_drops_userinfo_query_and_fragment() -> None:
    assert public_url("https://u:p@host.example:8443/a/b?token=s#f") == \
        "https://host.example:8443/a/b"
    assert public_url("http://[::1]:9/x?y") == "http://[::1]:9/x"
    assert public_url("https://host") == "https://host"
    assert public_url("not a url") is None
    assert public_url("http://host:99999/") is None  # a port that does not parse


def test_view_hides_local_path_and_source_secrets_from_users_only() -> None:
    state = make_state().model_copy(
        update={"source": {"type": "whep", "url": "https://u:p@h/p?t=s"}})
    shown = view(USER, state)
    assert shown["local_path"] is None
    assert shown["source"] == {"type": "whep", "url": "https://h/p"}
    assert state.source["url"] == "https://u:p@h/p?t=s"  # the stored state is untouched
    assert view(ADMIN, state) == state.model_dump(mode="json")
    whip = make_state()
    assert view(USER, whip)["source"] == {"type": "whip"}


def test_endpoint_label_is_a_short_digest_of_the_url() -> None:
    url = "https://hooks.example/x?token=secret"
    assert endpoint_label(url) == hashlib.sha256(url.encode()).hexdigest()[:12]
    assert len(endpoint_label(url)) == 12


def test_log_lines_escape_controls_but_keep_tracebacks() -> None:
    assert escape_controls("a\x1b[31m\nb\r\t\x7f\x9b\u2028") == \
        "a\\x1b[31m\\nb\\r\\t\\x7f\\x9b\\u2028"
    assert escape_controls("plain ünïcode ok") == "plain ünïcode ok"
    formatter = EscapingFormatter("%(levelname)s %(message)s")
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "room %s", ("a\nFAKE",),
                                   exc_info=sys.exc_info())
    lines = formatter.format(record).splitlines()
    assert lines[0] == "ERROR room a\\nFAKE"
    assert lines[1] == "Traceback (most recent call last):"
