"""The panel's Compare tab: picked results side by side, two of them overlaid, and a sweep's grid.

The comparison is drawn in the browser (CompareWidget): the images travel once as binary buffers, and dragging
the divider, zooming and flickering never reach the kernel. An edit alone is compared with the image it started
from. A sweep's grid exports at the images' full resolution, with every cell's metadata, into ``grids/``; the file
is offered for download under a readable name.
"""

from __future__ import annotations

import html
import io
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import ipywidgets as w
from PIL import Image

from ..journal.db import default_folder
from ..journal.folder import grids_folder
from ..result import Result
from ..views.compare import Comparison
from ..views.grid import Grid
from ..views.names import readable_name
from . import files, theme
from .cards import close_tree
from .compare_widget import MAX_ITEMS, CompareWidget
from .rating import RatingStars

if TYPE_CHECKING:
    from ..session import Session

RED = theme.ERROR
SIDE = 320


class CompareView:
    """Results side by side with what differs highlighted, two of them overlaid (divider, flicker, difference),
    zoomed and panned together in the browser, and a sweep's labelled grid with a full-resolution PNG export."""

    def __init__(self, *, folder: str | os.PathLike[str] | None = None, session: Session | None = None) -> None:
        self.items: list[Result] = []
        self.session = session
        """For the stars: ratings go to this session's journal (None: no stars)."""
        self.folder = Path(folder) if folder is not None else None
        """Where exported grids go (``grids/`` inside it); default: the runs folder of the grid's results."""
        self.grid: Grid | None = None
        self.comparison: Comparison | None = None
        """What the view shows now (None: nothing picked)."""
        self.chips = w.HBox(layout=w.Layout(flex_flow="row wrap"))
        self.clear_button = w.Button(
            description="clear", tooltip="remove every result from the comparison", layout=w.Layout(width="auto")
        )
        self.clear_button.on_click(lambda _: self.clear())
        self.message = w.HTML()
        self.view = CompareWidget()
        self.stars = w.HBox(layout=w.Layout(flex_flow="row wrap"))
        """A RatingStars per result in the journal (kx.rate from the comparison)."""
        self.changes = w.ToggleButton(value=False, description="what changed", tooltip="show the change heat map")
        self.changes.observe(self._draw_changes, "value")
        self.before_after = w.HTML()
        """A pair's change heat map with its numbers (kx.changes), computed in the kernel when asked for."""
        self.pair_box = w.VBox([self.changes, self.before_after], layout=w.Layout())
        self._pair_images: tuple[Image.Image, Image.Image] | None = None
        self.grid_html = w.HTML()
        self.export = w.Button(
            description="export PNG", icon="download", tooltip="save the grid at full resolution with its metadata"
        )
        self.export.on_click(lambda _: self.export_grid())
        self.export_status = w.HTML()
        self.grid_box = w.VBox([self.grid_html, w.HBox([self.export, self.export_status])], layout=w.Layout())
        self.widget = w.VBox(
            [w.HBox([self.chips, self.clear_button]), self.message, self.view, self.stars, self.pair_box, self.grid_box]
        )
        self._render()
        self._show(self.grid_box, False)

    # -- the items ----------------------------------------------------------------------------------
    def add(self, result: Result) -> None:
        """Add a result (the same one twice is kept once; beyond MAX_ITEMS the oldest makes room). A sweep's grid
        shown before gives way to the comparison."""
        self._show(self.grid_box, False)
        if not any(item is result for item in self.items):
            self.items = [*self.items, result][-MAX_ITEMS:]
            self._render()

    def replace(self, results: list[Result]) -> None:
        """Compare exactly these results (History's two rows): what was picked before, and a grid, are let go."""
        self._show(self.grid_box, False)
        self.items = list(results)[-MAX_ITEMS:]
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
        """Write the grid at the images' full resolution (one PNG per page, metadata inside) to ``grids/`` in the
        runs folder; show a download link per page, under a readable name."""
        if self.grid is None:
            return []
        target = _free(self._grid_folder() / f"grid-{time.strftime('%Y%m%d-%H%M%S')}.png")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            paths = self.grid.save(target, cell_size=None)
        except (OSError, ValueError) as exc:
            self.export_status.value = f'<span style="color:{RED}">export failed: {html.escape(str(exc))}</span>'
            return []
        links = ", ".join(
            files.link(p, self._grid_name(n, len(paths)), self._grid_name(n, len(paths)), "download", str(p))
            for n, p in enumerate(paths)
        )
        self.export_status.value = f'<span style="font:12px sans-serif">saved · download {links}</span>'
        return paths

    def _grid_name(self, page: int, pages: int) -> str:
        assert self.grid is not None
        ids = [r.journal_id for r in self.grid.results if isinstance(r, Result) and r.journal_id is not None]
        return readable_name(
            kind="grid",
            prompt=self.grid.sweep.prompt,
            journal_id=min(ids, default=None),
            mime="image/png",
            index=page,
            count=pages,
        )

    def _grid_folder(self) -> Path:
        if self.folder is not None:
            return grids_folder(self.folder)
        results = self.grid.results if self.grid is not None else []
        saved = [r.files[0] for r in results if isinstance(r, Result) and r.files]
        return grids_folder(saved[0].parent.parent if saved else default_folder())

    # -- drawing -----------------------------------------------------------------------------------
    def close(self) -> None:
        self.view.close()
        close_tree(self.widget)

    def _render(self) -> None:
        self._render_chips()
        self.message.value = ""
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
        self.comparison = comparison
        source = (
            self.items[0].inputs[0].data if comparison is not None and len(comparison.items) > len(self.items) else None
        )
        self.view.show(comparison, source)
        self._show(self.view, comparison is not None)
        self._pair_images = None
        if comparison is not None and len(comparison.items) == 2:
            first, second = comparison.items
            self._pair_images = (
                first.images[0] if isinstance(first, Result) else first,
                second.images[0] if isinstance(second, Result) else second,
            )
        self._show(self.pair_box, self._pair_images is not None)
        self._draw_changes()

    def _draw_changes(self, _change: object = None) -> None:
        """ "what changed": the heat map over the pair's image in the browser (zoomed and panned with it), its
        numbers below; computed in the kernel (kx.changes) only when asked for."""
        if not (self.changes.value and self._pair_images is not None):
            self.view.show_overlay(None)
            self.before_after.value = ""
            return
        png, note = changes_overlay(*self._pair_images)
        self.view.show_overlay(png, note)
        self.before_after.value = _note(note)

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

    def _show(self, box: w.DOMWidget, visible: bool) -> None:
        box.layout.display = None if visible else "none"


def changes_overlay(before: Image.Image, after: Image.Image) -> tuple[bytes, str]:
    """What kx.changes shows, as an overlay: a PNG of ``after``'s shape, red where it differs from ``before``
    (stronger = more), clear elsewhere; and the scores as one line."""
    from PIL import ImageChops

    from ..judging.changes import compute, summary

    found = compute(before, after)
    red, green, _ = found.image.convert("RGB").split()
    # the heat map is grey with red mixed in by the change's strength h: red - green = 210 * h
    strength = ImageChops.subtract(red, green).point(lambda v: min(255, round(v * 255 / 210)))
    overlay = Image.new("RGBA", found.image.size, (230, 20, 20, 0))
    overlay.putalpha(strength)
    out = io.BytesIO()
    overlay.save(out, "PNG")
    return out.getvalue(), summary(found.as_dict())


def _note(text: str) -> str:
    return f'<span style="font:12px sans-serif;color:{theme.MUTED}">{html.escape(text)}</span>'


def _free(path: Path) -> Path:
    n, candidate = 1, path
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate
