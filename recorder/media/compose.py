"""Drawing the tiles of a composite into the frame the encoder gets, cheaply.

The video thread asks for a picture at every constant-rate slot, but most slots change
little: a 30 fps room of four publishers brings at most four new pictures per slot, often
fewer, and a still screen share none. So the compositor does work only where something
changed:

- each new input picture is scaled once into its tile's size (kept per source with the
  size it was scaled for, so repeated slots and tile moves without a size change reuse
  it; one swscale context per geometry, because building one costs more than using it);
- the canvas keeps what was drawn; a slot repaints only tiles whose picture changed, and
  the whole canvas only when the arrangement does;
- a slot where nothing changed returns the very same frame again.

One tile that fills the canvas with a picture of the canvas's own size needs no canvas
at all: the decoded picture goes to the encoder as it is (the common one-publisher case
costs nothing here). The encoders copy their input, so the canvas is drawn in place; in
case one still held it, :meth:`VideoFrame.make_writable` copies first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from av.video.frame import VideoFrame
from av.video.reformatter import VideoReformatter

from recorder.media.grid import Tile, layout
from recorder.media.letterbox import BLACK_UV, BLACK_Y, Rect, black_frame, fit_rect, plane_view

_MAX_SCALERS: Final = 32
_PLANES: Final = ((0, 1, BLACK_Y), (1, 2, BLACK_UV), (2, 2, BLACK_UV))  # index, subsampling


@dataclass
class _Source:
    """One source's current picture and its copy scaled for its tile."""

    picture: VideoFrame | None = None
    scaled_from: VideoFrame | None = None
    scaled_size: tuple[int, int] = (0, 0)  # the tile size it was scaled for
    scaled: VideoFrame | None = None
    inner: Rect | None = None  # where the scaled picture sits inside that tile
    drawn: Rect | None = None  # where it was pasted on the canvas last (absolute)
    dirty: bool = True


class Compositor:
    def __init__(self, width: int, height: int) -> None:
        self.width = width
        self.height = height
        self.tiles: list[Tile] = []
        self._sources: dict[str, _Source] = {}
        self._scalers: dict[tuple[int, int, str, int, int], VideoReformatter] = {}
        self._canvas: VideoFrame | None = None
        self._black: VideoFrame | None = None
        self._output: VideoFrame | None = None
        self._changed = True
        self.scaled = 0  # pictures scaled so far (what the caches save shows here)
        self.painted = 0  # tiles pasted onto the canvas so far

    def arrange(self, sources: Sequence[str], featured: str | None = None) -> None:
        """Show ``sources`` (join order); ``featured`` gets the large tile."""
        tiles = layout(self.width, self.height, sources, featured)
        if tiles == self.tiles:
            return
        self.tiles = tiles
        keep = {tile.source_id for tile in tiles}
        for source_id in [s for s in self._sources if s not in keep]:
            del self._sources[source_id]
        self._canvas = None  # everything moves: repaint from black
        self._changed = True

    def show(self, source_id: str, picture: VideoFrame) -> bool:
        """From now on ``picture`` is the source's; True if it is in the arrangement."""
        source = self._sources.get(source_id)
        if source is None:
            source = self._sources[source_id] = _Source()
        source.picture = picture
        source.dirty = True
        self._changed = True
        return any(tile.source_id == source_id for tile in self.tiles)

    def forget(self, source_id: str) -> None:
        """Drop the picture of a source that is not (or no longer) arranged."""
        if all(tile.source_id != source_id for tile in self.tiles):
            self._sources.pop(source_id, None)

    def render(self) -> VideoFrame:
        """The canvas as it stands; the same frame object while nothing changed."""
        if not self._changed and self._output is not None:
            return self._output
        self._changed = False
        self._output = self._render()
        return self._output

    def _render(self) -> VideoFrame:
        if not self.tiles:
            return self._black_frame()
        if len(self.tiles) == 1 and self._fills(self.tiles[0].rect):
            direct = self._direct(self.tiles[0].source_id)
            if direct is not None:
                self._canvas = None  # the canvas no longer shows what was sent
                return direct
        canvas = self._canvas
        if canvas is None:
            canvas = self._canvas = black_frame(self.width, self.height)
            for each in self._sources.values():
                each.dirty, each.drawn = True, None
        else:
            canvas.make_writable()
        for tile in self.tiles:
            source = self._sources.get(tile.source_id)
            if source is not None and source.dirty:
                self._paint(canvas, tile.rect, source)
        return canvas

    def _fills(self, rect: Rect) -> bool:
        return rect == Rect(0, 0, self.width, self.height)

    def _direct(self, source_id: str) -> VideoFrame | None:
        """The source's picture scaled to the whole canvas, when it covers all of it."""
        source = self._sources.get(source_id)
        if source is None or source.picture is None:
            return self._black_frame()
        scaled, inner = self._scaled(source, self.width, self.height)
        if not self._fills(inner):
            return None
        source.dirty = False
        return scaled

    def _paint(self, canvas: VideoFrame, tile: Rect, source: _Source) -> None:
        source.dirty = False
        if source.picture is None:
            return
        scaled, inner = self._scaled(source, tile.width, tile.height)
        at = Rect(tile.x + inner.x, tile.y + inner.y, inner.width, inner.height)
        if source.drawn is not None and source.drawn != at:
            _fill_black(canvas, tile)  # a smaller picture than before: clear what it left
        for index, sub, _ in _PLANES:
            dst = plane_view(canvas, index)
            src = plane_view(scaled, index)
            x, y = at.x // sub, at.y // sub
            dst[y: y + src.shape[0], x: x + src.shape[1]] = src
        source.drawn = at
        self.painted += 1

    def _scaled(self, source: _Source, width: int, height: int) -> tuple[VideoFrame, Rect]:
        picture = source.picture
        assert picture is not None
        if (source.scaled is not None and source.inner is not None
                and source.scaled_from is picture and source.scaled_size == (width, height)):
            return source.scaled, source.inner
        inner = fit_rect(picture.width, picture.height, width, height)
        if (inner.width, inner.height) == (picture.width, picture.height) and (
                picture.format.name == "yuv420p"):
            scaled = picture
        else:
            scaled = self._scaler(picture, inner).reformat(
                picture, inner.width, inner.height, "yuv420p")
            self.scaled += 1
        source.scaled_from, source.scaled_size = picture, (width, height)
        source.scaled, source.inner = scaled, inner
        return scaled, inner

    def _scaler(self, picture: VideoFrame, inner: Rect) -> VideoReformatter:
        key = (picture.width, picture.height, picture.format.name, inner.width, inner.height)
        scaler = self._scalers.get(key)
        if scaler is None:
            if len(self._scalers) >= _MAX_SCALERS:
                self._scalers.pop(next(iter(self._scalers)))
            scaler = self._scalers[key] = VideoReformatter()
        return scaler

    def _black_frame(self) -> VideoFrame:
        if self._black is None:
            self._black = black_frame(self.width, self.height)
        return self._black


def _fill_black(frame: VideoFrame, rect: Rect) -> None:
    for index, sub, value in _PLANES:
        view = plane_view(frame, index)
        view[rect.y // sub: (rect.y + rect.height) // sub,
             rect.x // sub: (rect.x + rect.width) // sub] = value
