"""A sweep's results as labelled tables: HTML in a notebook, text in a terminal, one PNG per page on disk.

Thumbnails are embedded as data URIs so a saved notebook keeps them; saved PNGs carry every cell's
metadata (seed, prompt, request id, files) so the grid can be traced back to its jobs.
"""

from __future__ import annotations

import html
import io
import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

from ..endpoints import format_cost
from ..journal import metadata
from ..result import Result
from ..sweep import Sweep
from . import render

HTML_SIDE = 256
"""Pixels of the longer side of each thumbnail in the HTML table."""
GREY, LIGHT, DARK, RED = (200, 200, 200), (235, 235, 235), (60, 60, 60), "#c62828"

Outcome = Result | BaseException | None
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
Point = tuple[int, int]


@dataclass(frozen=True)
class Page:
    """One table: ``cells[row][column]`` indexes the sweep's cells (and the results)."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[str, ...]
    cells: tuple[tuple[int, ...], ...]
    column_axis: str | None
    row_axis: str | None


class Grid:
    """Results laid out by a sweep's axes: columns = first axis, rows = second, one page per value of the others."""

    def __init__(self, sweep: Sweep, results: Sequence[Outcome]) -> None:
        if len(results) != len(sweep.cells):
            raise ValueError(f"{len(results)} results for a sweep of {len(sweep.cells)} cells: give one per cell")
        self.sweep = sweep
        self.results: list[Outcome] = list(results)

    def pages(self) -> list[Page]:
        axes = self.sweep.axes
        index = {cell.coords: i for i, cell in enumerate(self.sweep.cells)}
        col = axes[0] if axes else None
        row = axes[1] if len(axes) > 1 else None
        pages = []
        for rest in itertools.product(*(range(len(a.values)) for a in axes[2:])):
            cells = tuple(
                tuple(index[(c, r, *rest)[: len(axes)]] for c in range(len(col.values) if col else 1))
                for r in range(len(row.values) if row else 1)
            )
            title = " · ".join(_named(a.name, a.labels[i]) for a, i in zip(axes[2:], rest, strict=True))
            pages.append(
                Page(
                    title,
                    col.labels if col else ("",),
                    row.labels if row else ("",),
                    cells,
                    col.name if col else None,
                    row.name if row else None,
                )
            )
        return pages

    # -- notebook and terminal -------------------------------------------------------------------------------------

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/plain": repr(self), "text/html": self._html()}

    def __repr__(self) -> str:
        lines = [f"Grid: {self.sweep.prompt or '(one prompt)'} — {self.sweep.describe()}"]
        for page in self.pages():
            if page.title:
                lines.append(f"[{page.title}]")
            table = [["", *page.columns]] if page.column_axis else []
            errors = []
            for label, row in zip(page.rows, page.cells, strict=True):
                table.append([label, *(self._status(i) for i in row)])
                errors += [f"  {self._where(i)}: {_error_text(self.results[i])}" for i in row if self._failed(i)]
            widths = [min(24, max(len(r[k]) for r in table)) for k in range(len(table[0]))]
            lines += ["  ".join(_cut(t, w).ljust(w) for t, w in zip(r, widths, strict=True)).rstrip() for r in table]
            lines += errors
        return "\n".join(lines + self.not_taken())

    def _html(self) -> str:
        esc = html.escape
        head = f"<b>{esc(self.sweep.prompt)}</b> · " if self.sweep.prompt else ""
        out = [f'<div class="kontext-grid" style="font:12px sans-serif">{head}{esc(self.sweep.describe())}']
        cell_style = "padding:4px;vertical-align:top;text-align:center;border:1px solid #ddd"
        for page in self.pages():
            out.append('<table style="border-collapse:collapse;margin:6px 0">')
            if page.title:
                out.append(
                    f'<caption style="caption-side:top;text-align:left;font-weight:bold">{esc(page.title)}</caption>'
                )
            if page.column_axis:
                corner = esc(" ↓ / ".join(n for n in (page.row_axis, page.column_axis) if n) + " →")
                heads = "".join(f'<th style="{cell_style}">{esc(c)}</th>' for c in page.columns)
                out.append(f'<tr><th style="{cell_style};opacity:.6;font-weight:normal">{corner}</th>{heads}</tr>')
            for label, row in zip(page.rows, page.cells, strict=True):
                th = f'<th style="{cell_style};text-align:right">{esc(label)}</th>' if page.row_axis else ""
                th = th or (f'<th style="{cell_style}"></th>' if page.column_axis else "")
                tds = "".join(f'<td style="{cell_style}">{self._cell_html(i)}</td>' for i in row)
                out.append(f"<tr>{th}{tds}</tr>")
            out.append("</table>")
        out += [f'<div style="opacity:.75">{html.escape(line)}</div>' for line in self.not_taken()]
        return "".join(out) + "</div>"

    def _cell_html(self, i: int) -> str:
        esc, outcome, cell = html.escape, self.results[i], self.sweep.cells[i]
        box = f"width:{HTML_SIDE}px;min-height:48px;padding:6px;box-sizing:border-box;white-space:pre-wrap;"
        if isinstance(outcome, Result) and (shown := outcome.thumbnail(0, HTML_SIDE)) is None:
            return f'<div style="{box}background:#eee;color:#777">{esc(outcome.no_preview(0))}</div>'
        if isinstance(outcome, Result) and shown is not None:
            data, mime = shown
            blur = "filter:blur(14px);" if outcome.has_nsfw_concepts[:1] == [True] else ""
            img = (
                f'<img src="{render.data_uri(data, mime)}" alt="{esc(cell.prompt[:100])}" title="{esc(cell.prompt)}"'
                f' style="max-width:{HTML_SIDE}px;max-height:{HTML_SIDE}px;{blur}"/>'
            )
            caption = esc(self._caption(i))
            return f'<figure style="margin:0">{img}<figcaption>{caption}</figcaption></figure>'
        if outcome is None:
            return f'<div style="{box}background:#eee;color:#777">not run</div>'
        return (
            f'<div style="{box}background:#fdecea;border:1px solid {RED};color:{RED};text-align:left">'
            f"{esc(_error_text(outcome))}</div>"
        )

    def _caption(self, i: int) -> str:
        """A cell's seed, what it cost, and '–' for each swept setting its model does not take."""
        outcome, cell = self.results[i], self.sweep.cells[i]
        parts = [_caption(outcome)] if isinstance(outcome, Result) else []
        if isinstance(outcome, Result) and self._models():
            parts.append(format_cost(outcome.cost))
        parts += [f"{name} –" for name in cell.not_taken if name != "seed"]
        return " · ".join(parts)

    def _models(self) -> bool:
        """Whether the sweep spans models (their cells' costs differ: each is shown)."""
        return len({c.model for c in self.sweep.cells}) > 1

    def not_taken(self) -> list[str]:
        """The lines under the grid: each setting some model lacks, and which (nothing is dropped silently)."""
        return self.sweep.not_taken()

    def _status(self, i: int) -> str:
        outcome = self.results[i]
        if isinstance(outcome, Result):
            return self._caption(i)
        return "not run" if outcome is None else "failed"

    def _failed(self, i: int) -> bool:
        return self.results[i] is not None and not isinstance(self.results[i], Result)

    def _where(self, i: int) -> str:
        coords = self.sweep.cells[i].coords
        return " / ".join(_named(a.name, a.labels[k]) for a, k in zip(self.sweep.axes, coords, strict=True)) or "cell"

    # -- images --------------------------------------------------------------------------------------------------

    def image(self, page: int = 0, cell_size: int = 256) -> Image.Image:
        """One composite picture of a page with its headers and title drawn in, for sharing or saving."""
        p = self.pages()[page]
        font = ImageFont.load_default(size=max(11, cell_size // 16))
        line = round(font.size * 1.35) if isinstance(font, ImageFont.FreeTypeFont) else 14
        pad = max(4, cell_size // 32)
        tiles = {i: self._tile(i, cell_size) for row in p.cells for i in row}
        tallest = max((t.height for t in tiles.values() if t is not None), default=cell_size)
        heights = [max((t.height for i in row if (t := tiles[i]) is not None), default=tallest) for row in p.cells]
        columns = [_named(p.column_axis, c) for c in p.columns]
        rows = [_named(p.row_axis, r) for r in p.rows]
        measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
        row_w = min(cell_size, int(max(measure.textlength(t, font=font) for t in rows)) + 2 * pad) if p.row_axis else 0
        col_h = 2 * line + pad if p.column_axis else 0
        width = row_w + len(columns) * (cell_size + pad) + pad
        title = [t for t in (self.sweep.prompt, p.title) if t]
        title_lines = [w for t in title for w in _wrap(measure, t, font, width - 2 * pad, 2)]
        top = pad + len(title_lines) * line + (pad if title_lines else 0)
        canvas = Image.new("RGB", (width, top + col_h + sum(h + line + pad for h in heights)), "white")
        draw = ImageDraw.Draw(canvas)
        for k, text in enumerate(title_lines):
            draw.text((pad, pad + k * line), text, fill="black", font=font)
        for c, text in enumerate(columns if p.column_axis else []):
            x = row_w + pad + c * (cell_size + pad)
            for k, part in enumerate(_wrap(draw, text, font, cell_size, 2)):
                w = draw.textlength(part, font=font)
                draw.text((x + (cell_size - w) / 2, top + k * line), part, fill="black", font=font)
        y = top + col_h
        for text, row, h in zip(rows, p.cells, heights, strict=True):
            parts = _wrap(draw, text, font, row_w - pad, 3) if p.row_axis else []
            for k, part in enumerate(parts):
                draw.text((pad, y + (h - len(parts) * line) / 2 + k * line), part, fill="black", font=font)
            for c, i in enumerate(row):
                self._draw_cell(
                    canvas, font, i, tiles[i], (row_w + pad + c * (cell_size + pad), y), (cell_size, h), line
                )
            y += h + line + pad
        return canvas

    def _tile(self, i: int, side: int) -> Image.Image | None:
        outcome = self.results[i]
        if not isinstance(outcome, Result):
            return None
        tile = ImageOps.contain(outcome.images[0].convert("RGB"), (side, side), Image.Resampling.LANCZOS)
        return tile.filter(ImageFilter.GaussianBlur(side / 10)) if outcome.has_nsfw_concepts[:1] == [True] else tile

    def _draw_cell(
        self, canvas: Image.Image, font: Font, i: int, tile: Image.Image | None, at: Point, box: Point, line: int
    ) -> None:
        (x, y), (w, h), outcome, draw = at, box, self.results[i], ImageDraw.Draw(canvas)
        if tile is not None and isinstance(outcome, Result):
            canvas.paste(tile, (x + (w - tile.width) // 2, y + (h - tile.height) // 2))
            caption = self._caption(i)
        else:
            draw.rectangle((x, y, x + w - 1, y + h - 1), fill=GREY if outcome is not None else LIGHT)
            word = "failed" if outcome is not None else "not run"
            draw.text((x + (w - draw.textlength(word, font=font)) / 2, y + (h - line) / 2), word, fill=DARK, font=font)
            caption = ""
        draw.text((x + (w - draw.textlength(caption, font=font)) / 2, y + h + 2), caption, fill=DARK, font=font)

    def full_size(self) -> int:
        """The cell size that shows every image at its full resolution: the longest side of any of them."""
        sides = [max(r.sizes[0]) for r in self.results if isinstance(r, Result) and r.image_bytes]
        return max(sides, default=256)

    def save(self, path: str | os.PathLike[str], page: int | None = None, cell_size: int | None = 256) -> list[Path]:
        """Write one PNG per page (``stem-p1.png``, ... when there are several) with every cell's metadata inside;
        ``cell_size=None``: every image at its full resolution."""
        target = Path(path)
        if target.suffix.lower() != ".png":
            raise ValueError(f"grids are saved as PNG: give a path ending in .png, not {target.name!r}")
        numbers = range(len(self.pages())) if page is None else [page]
        paths = [target] if len(numbers) == 1 else [target.with_name(f"{target.stem}-p{n + 1}.png") for n in numbers]
        for n, out in zip(numbers, paths, strict=True):
            buf = io.BytesIO()
            self.image(n, cell_size if cell_size is not None else self.full_size()).save(buf, "PNG")
            out.write_bytes(metadata.embed(buf.getvalue(), self.metadata(n)))
        return paths

    def metadata(self, page: int = 0) -> dict[str, Any]:
        """What a saved page carries: its title, the axes and every cell's seed, prompt, request and files."""
        p = self.pages()[page]
        title = " — ".join(t for t in (self.sweep.prompt, p.title) if t) or self.sweep.describe()
        axes = [{"name": a.name, "values": list(a.values), "labels": list(a.labels)} for a in self.sweep.axes]
        cells = [self._cell_meta(i) for row in p.cells for i in row]
        grid = {
            "axes": axes,
            "page": page,
            "pages": len(self.pages()),
            "summary": self.sweep.describe(),
            "cells": cells,
        }
        return {"prompt": title, "seed": None, "kontext_nb_grid": grid | {"cells": cells}}

    def _cell_meta(self, i: int) -> dict[str, Any]:
        cell, outcome = self.sweep.cells[i], self.results[i]
        meta: dict[str, Any] = {"coords": list(cell.coords), "prompt": cell.prompt, "model": cell.model}
        meta["not_taken"] = list(cell.not_taken)
        if isinstance(outcome, Result):
            return meta | {
                "status": "done",
                "seed": outcome.seed,
                "endpoint": outcome.endpoint,
                "arguments": outcome.arguments,
                "request_id": outcome.request_id,
                "journal_id": outcome.journal_id,
                "files": [str(f) for f in outcome.files],
            }
        status = "not run" if outcome is None else "failed"
        meta |= {"status": status, "seed": cell.arguments.get("seed"), "endpoint": None, "arguments": cell.arguments}
        meta |= {"request_id": getattr(outcome, "request_id", None), "journal_id": None, "files": []}
        return meta | ({"error": _error_text(outcome)} if outcome is not None else {})


def _named(axis: str | None, label: str) -> str:
    return label if axis in (None, "prompt") else f"{axis} {label}"


def _caption(result: Result) -> str:
    more = len(result.image_bytes) - 1
    seed = "–" if result.seed is None else result.seed
    return f"seed {seed}" + (f" +{more}" if more > 0 else "")


def _error_text(error: object) -> str:
    text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return _cut(text, 300)


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: Font, width: float, max_lines: int) -> list[str]:
    """Words in lines no wider than ``width``; the last line ends with '…' when text is left over."""
    lines: list[str] = []
    words = text.split()
    while words and len(lines) < max_lines:
        k = 1
        while k < len(words) and draw.textlength(" ".join(words[: k + 1]), font=font) <= width:
            k += 1
        lines.append(" ".join(words[:k]))
        words = words[k:]
    if words or (lines and draw.textlength(lines[-1], font=font) > width):
        last = lines[-1] if lines else ""
        while last and draw.textlength(last + "…", font=font) > width:
            last = last[:-1]
        lines[-1:] = [last + "…"]
    return lines
