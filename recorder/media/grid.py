"""Where each video source goes in a composite picture (pure geometry, no pixels).

A room's composite shows every video publisher at once. Tiles split the canvas into a
grid that grows with the count (1 fills the frame, 2 sit side by side, 3-4 make 2x2, 5-6
3x2, 7-9 3x3 ...), the last row centred when it is short, so a re-flow as people join and
leave keeps everyone as large as the count allows. A screen share is what viewers read,
so the first one gets a large tile (the left part of a landscape canvas, the top of a
portrait one) and everyone else shares a strip beside it. Each picture is later fitted
into its tile with its own aspect ratio kept (:func:`recorder.media.letterbox.fit_rect`).

All edges are on even pixels so the 4:2:0 chroma planes of every tile line up with luma.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from recorder.media.letterbox import Rect

# The strip beside a large tile takes this share of the canvas's longer side: at 16:9
# it leaves the large tile 4:3, and four 16:9 cameras fill a 1280x720 strip exactly.
STRIP_SHARE: Final = 0.25


@dataclass(frozen=True)
class Tile:
    source_id: str
    rect: Rect


def _even(value: float) -> int:
    return int(value) // 2 * 2


def _cuts(length: int, parts: int) -> list[int]:
    """``parts + 1`` even boundaries from 0 to ``length`` (the last one is ``length``)."""
    return [length if i == parts else _even(i * length / parts) for i in range(parts + 1)]


def grid_shape(count: int) -> tuple[int, int]:
    """(columns, rows) of a plain grid for ``count`` tiles: as square as possible, wider
    than tall, so 2 -> 2x1, 3-4 -> 2x2, 5-6 -> 3x2, 7-9 -> 3x3."""
    if count <= 0:
        return 0, 0
    columns = math.ceil(math.sqrt(count))
    return columns, math.ceil(count / columns)


def _grid(x0: int, y0: int, width: int, height: int, sources: Sequence[str]) -> list[Tile]:
    columns, rows = grid_shape(len(sources))
    xs, ys = _cuts(width, columns), _cuts(height, rows)
    tiles = []
    for index, source_id in enumerate(sources):
        row, column = divmod(index, columns)
        in_row = min(columns, len(sources) - row * columns)
        shift = _even((columns - in_row) * width / columns / 2)  # centre a short last row
        tiles.append(Tile(source_id, Rect(x0 + xs[column] + shift, y0 + ys[row],
                                          xs[column + 1] - xs[column], ys[row + 1] - ys[row])))
    return tiles


def layout(width: int, height: int, sources: Sequence[str],
           featured: str | None = None) -> list[Tile]:
    """Tiles for ``sources`` (in join order) on a ``width`` x ``height`` canvas.

    ``featured`` (a screen share among them) gets the large tile when there is anyone
    else to show; the others fill the strip in order.
    """
    if featured is None or featured not in sources or len(sources) == 1:
        return _grid(0, 0, width, height, sources)
    others = [s for s in sources if s != featured]
    if width >= height:
        strip = _even(width * STRIP_SHARE)
        main = Rect(0, 0, width - strip, height)
        ys = _cuts(height, len(others))
        cells = [Rect(main.width, ys[i], strip, ys[i + 1] - ys[i]) for i in range(len(others))]
    else:
        strip = _even(height * STRIP_SHARE)
        main = Rect(0, 0, width, height - strip)
        xs = _cuts(width, len(others))
        cells = [Rect(xs[i], main.height, xs[i + 1] - xs[i], strip) for i in range(len(others))]
    return [Tile(featured, main)] + [Tile(s, r) for s, r in zip(others, cells, strict=True)]
