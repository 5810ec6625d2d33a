"""One History row: a job's thumbnail, reference and time, prompt, model, seed, cost and rating, and its actions.

Rows are made a page at a time (the History tab's "more" adds the next page), so a journal of hundreds of jobs
costs one page of small saved thumbnails, not hundreds. Layouts and styles are shared by every row, as the
gallery's cards share theirs; a row keeps only its record's id and writes what it shows into a few trait values.
"""

from __future__ import annotations

import datetime as dt
import functools
import html
from collections.abc import Callable

import ipywidgets as w

from .. import endpoints
from ..endpoints import ENDPOINTS
from ..journal import folder as store
from ..journal.db import JobRecord
from . import theme
from .cards import close_tree, keep_open

ROW = "kx-history-row"
PICKED = "kx-history-picked"
"""The row picked as the first of a comparison (its "compare" waits for a second row)."""
CURRENT = "kx-history-current"
"""The row whose details and lineage show beside the list."""
THUMB = 64
PROMPT_CHARS = 160
ACTIONS: dict[str, tuple[str, str]] = {
    "use": ("use", "edit this image next (Create, edit mode)"),
    "compare": ("compare", "compare with another row: click compare on it next"),
    "load": ("load", "fill Create with this job's prompt and settings"),
    "details": ("details", "this job's settings and its lineage, beside the list"),
}
STATUS_COLOUR = {"failed": theme.ERROR, "cancelled": theme.WARN, "queued": theme.MUTED, "running": theme.ACCENT}
STYLE = f"""<style>
.kx-history-list {{ border-top: 1px solid var(--jp-border-color2, #e0e0e0); }}
.{ROW} {{ align-items: center; gap: 10px; padding: 6px 8px; border-bottom: 1px solid var(--jp-border-color2, #e0e0e0);
  border-left: 3px solid transparent; box-sizing: border-box; }}
.{ROW}:hover {{ background: {theme.HOVER}; }}
.{ROW}.{CURRENT} {{ background: {theme.mix(theme.ACCENT, 6, "transparent")}; border-left-color: {theme.ACCENT}; }}
.{ROW}.{PICKED} {{ background: {theme.PICKED}; border-left-color: {theme.ACCENT}; }}
.{ROW} img.widget-image {{ width: {THUMB}px; height: {THUMB}px; object-fit: cover; border-radius: 4px;
  background: {theme.SURFACE}; flex: 0 0 auto; }}
.{ROW} .kx-h-text {{ flex: 1 1 220px; min-width: 0; }}
.{ROW} .kx-h-text .widget-html-content {{ line-height: 1.35; }}
.kx-h-top {{ font: 12px var(--jp-ui-font-family, sans-serif); display: flex; gap: 8px; align-items: baseline;
  flex-wrap: wrap; }}
.kx-h-ref {{ font-weight: 600; }}
.kx-h-when {{ color: {theme.MUTED}; }}
.kx-h-prompt {{ font: 13px var(--jp-ui-font-family, sans-serif); overflow-wrap: anywhere; display: -webkit-box;
  -webkit-line-clamp: 2; -webkit-box-orient: vertical; overflow: hidden; margin: 1px 0; }}
.kx-h-meta {{ font: 11px var(--jp-ui-font-family, sans-serif); display: flex; gap: 6px; flex-wrap: wrap;
  align-items: center; }}
.kx-h-chip {{ padding: 0 6px; border-radius: 8px; background: {theme.PILL}; color: {theme.TEXT};
  font-family: var(--jp-code-font-family, monospace); }}
.kx-h-stars {{ color: {theme.STAR}; letter-spacing: 1px; }}
.kx-h-stars.kx-h-unrated {{ color: {theme.MUTED}; }}
.{ROW} .kx-h-actions {{ flex: 0 0 auto; gap: 4px; flex-wrap: wrap; justify-content: flex-end; }}
.{ROW} .kx-h-actions button {{ margin: 0; height: 26px; font-size: 12px; padding: 0 10px; }}
</style>"""


class Shared:
    """Layouts and styles every row uses: one widget each instead of one per row (never closed)."""

    def __init__(self) -> None:
        self.row = w.Layout(display="flex", flex_flow="row wrap", width="100%")
        self.image = w.Layout(width=f"{THUMB}px", height=f"{THUMB}px")
        self.text = w.Layout(flex="1 1 260px", width="auto", min_width="0", margin="0")
        self.actions = w.Layout(display="flex", flex_flow="row wrap", margin="0 0 0 auto")
        self.button = w.Layout(width="auto")
        self.button_style = w.ButtonStyle()
        keep_open(*vars(self).values())


@functools.cache
def shared() -> Shared:
    return Shared()


@functools.cache
def no_image() -> bytes:
    """A light grey square where a job without an image (running, failed, deleted) shows its thumbnail."""
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (THUMB, THUMB), (236, 236, 236)).save(out, "JPEG", quality=60)
    return out.getvalue()


class HistoryRow:
    """One job of the History list; ``on_action(name, journal_id)`` hears its buttons (ACTIONS' keys)."""

    def __init__(self, record: JobRecord, on_action: Callable[[str, int], None]) -> None:
        parts = shared()
        self.journal_id = record.id
        self.image = w.Image(value=b"", format="jpeg", layout=parts.image)
        self.text = w.HTML(layout=parts.text)
        self.text.add_class("kx-h-text")
        self.buttons: dict[str, w.Button] = {}
        for key, (label, tip) in ACTIONS.items():
            button = w.Button(description=label, tooltip=tip, layout=parts.button, style=parts.button_style)
            button.on_click(lambda _, key=key: on_action(key, self.journal_id))
            self.buttons[key] = button
        actions = w.HBox(list(self.buttons.values()), layout=parts.actions)
        actions.add_class("kx-h-actions")
        self.widget = w.HBox([self.image, self.text, actions], layout=parts.row)
        self.widget.add_class(ROW)
        self._thumbed = False
        self.update(record)

    @property
    def use(self) -> w.Button:
        return self.buttons["use"]

    @property
    def compare(self) -> w.Button:
        return self.buttons["compare"]

    @property
    def load(self) -> w.Button:
        return self.buttons["load"]

    def update(self, record: JobRecord) -> None:
        """Show the record as the journal has it now (a rating given, a job finished since the last refresh)."""
        if not self._thumbed:
            thumb = store.read_thumbnail(record.folder, record.files[0]) if record.files else None
            self.image.value = thumb or no_image()
            self._thumbed = thumb is not None
        self.text.value = row_html(record)
        usable = record.status == "done" and bool(record.files)
        self.buttons["use"].disabled = self.buttons["compare"].disabled = not usable

    def pick(self, on: bool) -> None:
        """Show the row as the first of a comparison (its "compare" then takes the pick back)."""
        self.mark(PICKED, on)
        self.compare.description = "cancel" if on else "compare"
        self.compare.button_style = "info" if on else ""

    def mark(self, css_class: str, on: bool) -> None:
        (self.widget.add_class if on else self.widget.remove_class)(css_class)

    def close(self) -> None:
        close_tree(self.widget)


def model_of(record: JobRecord) -> str:
    return ENDPOINTS[record.endpoint].model if record.endpoint in ENDPOINTS else record.endpoint


def row_label(record: JobRecord) -> str:
    """'@12 · seed 42 · max · 2026-11-21 · prompt…' (plain text: a row's text for search and tests)."""
    prompt = " ".join(record.prompt.split())
    prompt = prompt if len(prompt) <= 60 else prompt[:59] + "…"
    seed = "–" if record.seed is None else str(record.seed)
    day = dt.datetime.fromtimestamp(record.created).strftime("%Y-%m-%d")
    state = "" if record.status == "done" else f" · {record.status}"
    return f"{record.ref} · seed {seed} · {model_of(record)} · {day}{state} · {prompt}"


def row_html(record: JobRecord) -> str:
    """The row's text: reference and time; the prompt (two lines at most, all of it on hover); model, mode, seed,
    cost and stars."""
    esc = html.escape
    when = dt.datetime.fromtimestamp(record.created).strftime("%Y-%m-%d %H:%M")
    one_line = " ".join(record.prompt.split())
    short = one_line if len(one_line) <= PROMPT_CHARS else one_line[: PROMPT_CHARS - 1] + "…"
    status = ""
    if record.status != "done":
        colour = STATUS_COLOUR.get(record.status, "inherit")
        status = f'<span style="color:{colour};font-weight:600">{esc(record.status)}</span>'
    mode = ENDPOINTS[record.endpoint].mode if record.endpoint in ENDPOINTS else ""
    seed = "–" if record.seed is None else str(record.seed)
    cost = endpoints.format_cost(record.cost) + (" · cached" if record.cached else "")
    stars = "★" * (record.rating or 0) + "☆" * (5 - (record.rating or 0))
    rated = f"{record.rating} of 5 stars" if record.rating else "not rated"
    meta = [
        f"<span>{esc(model_of(record))}{' · ' + esc(mode) if mode else ''}</span>",
        f'<span class="kx-h-chip">seed {esc(seed)}</span>',
        f"<span>{esc(cost)}</span>",
        f'<span class="kx-h-stars{"" if record.rating else " kx-h-unrated"}" title="{rated}">{stars}</span>',
    ]
    return (
        f'<div class="kx-h-top"><span class="kx-h-ref">{esc(record.ref)}</span>'
        f'<span class="kx-h-when">{esc(when)}</span>{status}</div>'
        f'<div class="kx-h-prompt" title="{esc(record.prompt)}">{esc(short) or "<i>no prompt</i>"}</div>'
        f'<div class="kx-h-meta">{"".join(meta)}</div>'
    )
