"""A static record of what a panel made: small embedded thumbnails with their seeds, as plain HTML.

A saved notebook keeps no widget state by default, so a reader with no kernel sees "model not found" where the
panel was; this record, shown below the panel and updated through a display id, keeps the images. It is re-sent
whole on every update, so it embeds no full-size files: "full size · download" only where Jupyter serves the file.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .render import data_uri, file_html_of, of_count

if TYPE_CHECKING:
    from ..result import Result

SIDE = 128
KEEP = 24
"""The newest results kept in the record (a notebook stays small); the journal has them all."""


def record_html(results: Sequence[Result], *, total: int | None = None) -> str:
    """The newest results first, each image with its reference and seed."""
    total = len(results) if total is None else total
    esc = html.escape
    if not results:
        return (
            '<div class="kontext-record" style="font:12px sans-serif;opacity:.6">'
            "made in this panel: nothing yet (results are kept here in the saved notebook)</div>"
        )
    figures = []
    for result in list(results)[:KEEP]:
        for i in range(len(result.image_bytes)):
            small = result.thumbnail(i, SIDE)
            if small is None:  # too large to decode: the Result's one line says where its file is
                figures.append(f'<div style="font:11px monospace">{esc(result.no_preview(i))}</div>')
                continue
            data, mime = small
            flagged = i < len(result.has_nsfw_concepts) and result.has_nsfw_concepts[i]
            blur = "filter:blur(10px);" if flagged else ""
            ref = f"{result.ref} · " if result.ref else ""
            links = file_html_of(result, i, embed=False)
            links = f'<br/><span style="white-space:nowrap">{links}</span>' if links else ""
            figures.append(
                f'<figure style="margin:0 6px 6px 0;display:inline-block;vertical-align:top;max-width:{SIDE}px">'
                f'<img src="{data_uri(data, mime)}" alt="{esc(result.prompt[:100])}" title="{esc(result.prompt)}"'
                f' style="max-width:{SIDE}px;border-radius:3px;{blur}"/>'
                f'<figcaption style="font:11px sans-serif"><span style="white-space:nowrap">{esc(ref)}seed '
                f"{esc(str(result.seed))}{esc(of_count(i, len(result.image_bytes)))}</span>{links}</figcaption>"
                "</figure>"
            )
    shown = min(total, KEEP)
    more = f" (the newest {shown} of {total})" if total > shown else ""
    return (
        f'<div class="kontext-record"><div style="font:12px sans-serif;opacity:.75;margin:4px 0">'
        f"made in this panel{esc(more)}:</div>{''.join(figures)}</div>"
    )
