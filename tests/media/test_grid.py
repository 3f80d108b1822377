"""Composite geometry: where each publisher's tile goes as people join and leave."""

from __future__ import annotations

import itertools

import pytest

from recorder.media.grid import Tile, grid_shape, layout
from recorder.media.letterbox import Rect


def rects(tiles: list[Tile]) -> dict[str, Rect]:
    return {t.source_id: t.rect for t in tiles}


def test_one_source_fills_the_frame() -> None:
    assert rects(layout(1280, 720, ["a"])) == {"a": Rect(0, 0, 1280, 720)}


def test_nobody_means_no_tiles() -> None:
    assert layout(1280, 720, []) == []


def test_two_sources_sit_side_by_side() -> None:
    assert rects(layout(1280, 720, ["a", "b"])) == {
        "a": Rect(0, 0, 640, 720), "b": Rect(640, 0, 640, 720)}


def test_three_make_a_two_by_two_with_the_last_row_centred() -> None:
    assert rects(layout(1280, 720, ["a", "b", "c"])) == {
        "a": Rect(0, 0, 640, 360), "b": Rect(640, 0, 640, 360), "c": Rect(320, 360, 640, 360)}


def test_four_fill_a_two_by_two_in_join_order() -> None:
    assert rects(layout(1280, 720, ["a", "b", "c", "d"])) == {
        "a": Rect(0, 0, 640, 360), "b": Rect(640, 0, 640, 360),
        "c": Rect(0, 360, 640, 360), "d": Rect(640, 360, 640, 360)}


@pytest.mark.parametrize(("count", "shape"), [(1, (1, 1)), (2, (2, 1)), (3, (2, 2)),
                                              (4, (2, 2)), (5, (3, 2)), (6, (3, 2)),
                                              (7, (3, 3)), (9, (3, 3)), (10, (4, 3)),
                                              (16, (4, 4))])
def test_the_grid_grows_as_square_as_it_can(count: int, shape: tuple[int, int]) -> None:
    assert grid_shape(count) == shape


def test_a_screen_share_gets_the_large_tile_and_cameras_a_strip() -> None:
    tiles = layout(1280, 720, ["cam1", "screen", "cam2"], featured="screen")
    assert tiles[0] == Tile("screen", Rect(0, 0, 960, 720))
    assert rects(tiles[1:]) == {"cam1": Rect(960, 0, 320, 360),
                                "cam2": Rect(960, 360, 320, 360)}


def test_four_cameras_beside_a_screen_are_exactly_sixteen_by_nine() -> None:
    tiles = layout(1280, 720, ["s", "a", "b", "c", "d"], featured="s")
    assert [t.rect for t in tiles[1:]] == [Rect(960, y, 320, 180) for y in (0, 180, 360, 540)]


def test_a_screen_alone_fills_the_frame() -> None:
    assert rects(layout(1280, 720, ["screen"], featured="screen")) == {
        "screen": Rect(0, 0, 1280, 720)}


def test_a_featured_source_that_left_does_not_change_the_grid() -> None:
    assert layout(1280, 720, ["a", "b"], featured="gone") == layout(1280, 720, ["a", "b"])


def test_a_portrait_canvas_puts_the_strip_below() -> None:
    tiles = layout(720, 1280, ["cam", "screen"], featured="screen")
    assert rects(tiles) == {"screen": Rect(0, 0, 720, 960), "cam": Rect(0, 960, 720, 320)}


def _overlap(a: Rect, b: Rect) -> bool:
    return (a.x < b.x + b.width and b.x < a.x + a.width
            and a.y < b.y + b.height and b.y < a.y + a.height)


@pytest.mark.parametrize(("width", "height"), [(854, 480), (1280, 720), (1920, 1080),
                                               (3840, 2160), (480, 854)])
@pytest.mark.parametrize("count", range(1, 18))
@pytest.mark.parametrize("screen", [False, True])
def test_tiles_are_even_inside_the_frame_and_never_overlap(
        width: int, height: int, count: int, screen: bool) -> None:
    sources = [f"s{i}" for i in range(count)]
    tiles = layout(width, height, sources, featured="s1" if screen and count > 1 else None)
    assert sorted(t.source_id for t in tiles) == sorted(sources)
    for t in tiles:
        r = t.rect
        assert min(r.width, r.height, r.x, r.y) >= 0
        assert r.width * r.height > 0
        assert r.x + r.width <= width
        assert r.y + r.height <= height
        assert r.x % 2 == r.y % 2 == r.width % 2 == r.height % 2 == 0
    for a, b in itertools.combinations(tiles, 2):
        assert not _overlap(a.rect, b.rect), (a, b)
    if screen and count > 1:
        large = next(t.rect for t in tiles if t.source_id == "s1")
        assert all(large.width * large.height > 2 * t.rect.width * t.rect.height
                   for t in tiles if t.source_id != "s1")
