"""The panel's Compare tab: picked results side by side, a before/after view, and a sweep's grid.

Two images are easiest to judge on top of each other, so with exactly two results (or one edit,
which is compared with the image it started from) the tab also overlays them: the slider sets how
much of the "after" image shows, and flicker swaps which one is on top. Each move re-renders one
small HTML block from thumbnails kept as data URIs, never the full images.
"""

from __future__ import annotations

import html
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import ipywidgets as w
from PIL import Image

from ..journal.db import default_folder
from ..journal.folder import grids_folder
from ..result import Result
from ..views import render
from ..views.compare import Comparison
from ..views.grid import Grid
from .cards import blurred, close_tree
from .rating import RatingStars

if TYPE_CHECKING:
    from ..session import Session

SIDE = 320
RED = "#b00020"


@dataclass(frozen=True)
class Shot:
    """One side of the before/after view: a thumbnail as a data URI, its label, its shape."""

    uri: str
    label: str
    ratio: float


class CompareView:
    """Results side by side with what differs highlighted, a before/after slider and flicker for a pair,
    and a sweep's labelled grid with PNG export."""

    def __init__(self, *, folder: str | os.PathLike[str] | None = None, session: Session | None = None) -> None:
        self.items: list[Result] = []
        self.session = session
        """For the stars: ratings go to this session's journal (None: no stars)."""
        self.folder = Path(folder) if folder is not None else None
        """Where exported grids go (``grids/`` inside it); default: the runs folder of the grid's results."""
        self.grid: Grid | None = None
        self._pair: tuple[Shot, Shot] | None = None
        self.chips = w.HBox(layout=w.Layout(flex_flow="row wrap"))
        self.clear_button = w.Button(description="clear", tooltip="remove every result from the comparison")
        self.clear_button.on_click(lambda _: self.clear())
        self.message = w.HTML()
        self.comparison = w.HTML()
        self.slider = w.IntSlider(value=50, min=0, max=100, description="after %", continuous_update=True)
        self.flicker = w.ToggleButton(value=False, description="flicker", tooltip="swap which image is on top")
        self.changes = w.ToggleButton(value=False, description="what changed", tooltip="overlay the change heat map")
        self.before_after = w.HTML()
        self.pair_box = w.VBox(
            [w.HBox([self.slider, self.flicker, self.changes]), self.before_after], layout=w.Layout()
        )
        self.slider.observe(self._draw_pair, "value")
        self.flicker.observe(self._draw_pair, "value")
        self.changes.observe(self._draw_pair, "value")
        self._pair_images: tuple[Image.Image, Image.Image] | None = None
        self.stars = w.HBox(layout=w.Layout(flex_flow="row wrap"))
        """A RatingStars per result in the journal (kx.rate from the comparison)."""
        self.grid_html = w.HTML()
        self.export = w.Button(description="export PNG", icon="download", tooltip="save the grid with its metadata")
        self.export.on_click(lambda _: self.export_grid())
        self.export_status = w.HTML()
        self.grid_box = w.VBox([self.grid_html, w.HBox([self.export, self.export_status])], layout=w.Layout())
        self.widget = w.VBox(
            [
                w.HBox([self.chips, self.clear_button]),
                self.message,
                self.comparison,
                self.stars,
                self.pair_box,
                self.grid_box,
            ]
        )
        self._render()
        self._show(self.grid_box, False)

    # -- the items ----------------------------------------------------------------------------------
    def add(self, result: Result) -> None:
        """Add a result (the same one twice is kept once)."""
        if not any(item is result for item in self.items):
            self.items.append(result)
            self._render()

    def remove(self, index: int) -> None:
        del self.items[index]
        self._render()

    def clear(self) -> None:
        self.items.clear()
        self._render()

    # -- a sweep's grid -----------------------------------------------------------------------------
    def show_grid(self, grid: Grid) -> None:
        """Show a sweep's labelled grid, with a button that exports it as PNG into the runs folder."""
        self.grid = grid
        self.grid_html.value = grid._repr_mimebundle_()["text/html"]
        self.export_status.value = ""
        self._show(self.grid_box, True)

    def export_grid(self) -> list[Path]:
        """Write the grid (one PNG per page, metadata inside) to ``grids/`` in the runs folder; show the paths."""
        if self.grid is None:
            return []
        target = _free(self._grid_folder() / f"grid-{time.strftime('%Y%m%d-%H%M%S')}.png")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            paths = self.grid.save(target)
        except (OSError, ValueError) as exc:
            self.export_status.value = f'<span style="color:{RED}">export failed: {html.escape(str(exc))}</span>'
            return []
        links = ", ".join(
            f'<a href="{html.escape(render.file_link(p))}" target="_blank">{html.escape(str(p))}</a>' for p in paths
        )
        self.export_status.value = f'<span style="font:12px sans-serif">saved {links}</span>'
        return paths

    def _grid_folder(self) -> Path:
        if self.folder is not None:
            return grids_folder(self.folder)
        results = self.grid.results if self.grid is not None else []
        files = [r.files[0] for r in results if isinstance(r, Result) and r.files]
        return grids_folder(files[0].parent.parent if files else default_folder())

    # -- drawing -----------------------------------------------------------------------------------
    def close(self) -> None:
        close_tree(self.widget)

    def _render(self) -> None:
        self._render_chips()
        self._pair, self.message.value = None, ""
        comparison: Comparison | None = None
        if not self.items:
            self.message.value = _note("pick results with “compare” in the gallery")
        elif len(self.items) == 1 and self.items[0].inputs:
            try:
                comparison = Comparison.edit_and_source(self.items[0])
            except ValueError as exc:
                self.message.value = f'<span style="color:{RED};font:12px sans-serif">{html.escape(str(exc))}</span>'
                comparison = Comparison(self.items)
        else:
            comparison = Comparison(self.items)
            if len(self.items) == 1:
                self.message.value = _note("add another result to see what differs")
        self.comparison.value = comparison._repr_mimebundle_()["text/html"] if comparison is not None else ""
        self._pair_images = None
        if comparison is not None and len(comparison.items) == 2:
            self._pair = (
                _shot(comparison.items[0], comparison.labels[0]),
                _shot(comparison.items[1], comparison.labels[1]),
            )
            first, second = comparison.items
            self._pair_images = (
                first.images[0] if isinstance(first, Result) else first,
                second.images[0] if isinstance(second, Result) else second,
            )
        self._show(self.pair_box, self._pair is not None)
        self._draw_pair()

    def _render_stars(self) -> None:
        old = self.stars.children
        rows = []
        for item in self.items:
            if item.journal_id is None or self.session is None:
                continue
            stars = RatingStars()
            stars.bind(self.session, item.journal_id)
            rows.append(w.HBox([w.HTML(_note(item.ref or "")), stars]))
        self.stars.children = tuple(rows)
        close_tree(*old)

    def _render_chips(self) -> None:
        self._render_stars()
        old = self.chips.children
        chips = []
        for i, item in enumerate(self.items):
            chip = w.Button(description=f"✕ {item.ref or f'#{i + 1}'}", tooltip=f"remove {item.prompt[:80]}")
            chip.layout.width = "auto"
            chip.on_click(lambda _, i=i: self.remove(i))
            chips.append(chip)
        self.chips.children = tuple(chips)
        close_tree(*old)
        self.clear_button.disabled = not self.items

    def _draw_pair(self, _change: object = None) -> None:
        if self._pair is None:
            self.before_after.value = ""
            return
        before, after = self._pair
        if self.changes.value and self._pair_images is not None:
            self.before_after.value = changes_html(*self._pair_images)
            return
        top, bottom = (before, after) if self.flicker.value else (after, before)
        self.before_after.value = pair_html(bottom, top, self.slider.value)

    def _show(self, box: w.Box, visible: bool) -> None:
        box.layout.display = None if visible else "none"


def changes_html(before: Image.Image, after: Image.Image, side: int = SIDE) -> str:
    """The change heat map of ``after`` against ``before`` (what kx.changes shows), with its numbers."""
    from ..judging.changes import compute, summary

    found = compute(before, after)
    data, mime = render.thumbnail(found.image, side)
    return (
        f'<div class="kontext-changes" style="font:12px sans-serif"><img src="{render.data_uri(data, mime)}"'
        f' alt="what changed" style="width:{side}px;display:block"/>'
        f"<div>{html.escape(summary(found.as_dict()))}</div></div>"
    )


def pair_html(bottom: Shot, top: Shot, percent: int, side: int = SIDE) -> str:
    """``top`` over ``bottom`` at the same size, ``top`` clipped to ``percent`` of the width from the left."""
    esc = html.escape
    height = round(side * min(1.6, max(0.4, bottom.ratio, top.ratio)))
    clip = round(side * percent / 100)
    img = f"position:absolute;left:0;top:0;width:{side}px;height:{height}px;max-width:none;object-fit:contain"
    edge = "border-right:2px solid #fff;box-shadow:1px 0 3px rgba(0,0,0,.5);" if 0 < percent < 100 else ""
    return (
        f'<div class="kontext-before-after" style="font:12px sans-serif">'
        f'<div style="position:relative;width:{side}px;height:{height}px;background:#f3f3f3;overflow:hidden">'
        f'<img src="{bottom.uri}" alt="{esc(bottom.label)}" style="{img}"/>'
        f'<div class="clip" data-clip="{clip}" style="position:absolute;left:0;top:0;width:{clip}px;height:{height}px;'
        f'overflow:hidden;{edge}"><img src="{top.uri}" alt="{esc(top.label)}" style="{img}"/></div></div>'
        f'<div style="width:{side}px;display:flex;justify-content:space-between;margin-top:2px">'
        f"<span>◀ {esc(top.label)} ({percent}%)</span><span>{esc(bottom.label)} ▶</span></div></div>"
    )


def _shot(item: Result | Image.Image, label: str) -> Shot:
    image = item.images[0] if isinstance(item, Result) else item
    data, mime = render.thumbnail(image, SIDE)
    if isinstance(item, Result) and item.has_nsfw_concepts[:1] == [True]:
        data, mime = blurred(data), "image/jpeg"
    return Shot(render.data_uri(data, mime), label, image.height / image.width)


def _note(text: str) -> str:
    return f'<span style="font:12px sans-serif;opacity:.7">{html.escape(text)}</span>'


def _free(path: Path) -> Path:
    n, candidate = 1, path
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate
