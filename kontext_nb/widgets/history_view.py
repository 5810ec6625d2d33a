"""The panel's History tab: the journal searched by prompt words, seed, model, tag and date.

People come back for "that seed from Tuesday": picking a row shows the job's settings and the
chain of edits that led to it (small thumbnails read from the runs folder), and "load" hands the
record to the panel, which fills Create from it.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from .. import endpoints
from ..endpoints import ENDPOINTS
from ..journal import folder as store
from ..journal.db import JobRecord
from ..result import Result
from ..views import render
from .cards import close_tree

if TYPE_CHECKING:
    from ..session import Session

MODELS = ("any", *sorted({ep.model for ep in ENDPOINTS.values()}))
LINEAGE_SIDE = 96
ROW_SIDE = 72
PROMPT_CHARS = 60
RED = "#b00020"
STATUS_COLOUR = {"done": "#2a7d2a", "failed": RED, "cancelled": "#8a6d00"}


def row_label(record: JobRecord) -> str:
    """'@12 · seed 42 · max · 2026-11-21 · prompt…' (plain text: a Select shows its labels as text)."""
    model = ENDPOINTS[record.endpoint].model if record.endpoint in ENDPOINTS else record.endpoint
    prompt = " ".join(record.prompt.split())
    prompt = prompt if len(prompt) <= PROMPT_CHARS else prompt[: PROMPT_CHARS - 1] + "…"
    seed = "–" if record.seed is None else str(record.seed)
    day = dt.datetime.fromtimestamp(record.created).strftime("%Y-%m-%d")
    state = "" if record.status == "done" else f" · {record.status}"
    return f"{record.ref} · seed {seed} · {model} · {day}{state} · {prompt}"


class HistoryView:
    """Search the journal, see one job's details and lineage, and load it back into Create."""

    def __init__(
        self,
        session: Session,
        *,
        on_load: Callable[[JobRecord], None] | None = None,
        on_use: Callable[[Result], None] | None = None,
        on_compare: Callable[[Result], None] | None = None,
        page_size: int = 50,
    ) -> None:
        self.session = session
        self.on_load = on_load
        self.on_use, self.on_compare = on_use, on_compare
        self.page_size = page_size
        self.records: list[JobRecord] = []
        self.selected: JobRecord | None = None
        self._limit = page_size
        self._quiet = False
        short = w.Layout(width="220px")
        self.search = w.Text(description="search", placeholder="words in the prompt", continuous_update=False)
        self.seed = w.Text(description="seed", placeholder="any", continuous_update=False, layout=short)
        self.seed_error = w.HTML()
        self.model = w.Dropdown(description="model", options=MODELS, value="any", layout=short)
        self.tag = w.Text(description="tag", placeholder="any", continuous_update=False, layout=short)
        self.since = w.DatePicker(description="since", layout=short)
        self.refresh_button = w.Button(description="refresh", icon="refresh", tooltip="search the journal again")
        self.more = w.Button(description="more", tooltip="show older jobs too")
        self.count = w.HTML()
        self.error = w.HTML()
        self.rows = w.Select(options=[], rows=12, layout=w.Layout(width="100%"))
        self.thumbnails = w.Box(
            layout=w.Layout(display="flex", flex_flow="row wrap", max_height="300px", overflow="auto")
        )
        """The listed jobs as thumbnails (with their references), newest first."""
        self._thumbs: dict[int, w.VBox] = {}
        self.details = w.HTML()
        self.lineage = w.HBox(layout=w.Layout(flex_flow="row wrap", align_items="center"))
        self.load = w.Button(description="load into Create", icon="upload", disabled=True)
        self.preview = w.Image(format="jpeg", layout=w.Layout(max_width=f"{store.THUMB_SIDE}px", display="none"))
        """The picked job's first image (its saved thumbnail)."""
        self.use = w.Button(description="use", tooltip="edit this image next", disabled=True)
        self.compare_button = w.Button(description="compare", tooltip="add to the Compare tab", disabled=True)
        for button in (self.load, self.use, self.compare_button):
            button.layout.width = "auto"
        for field in (self.search, self.seed, self.model, self.tag, self.since):
            field.observe(self._filter_changed, "value")
        self.refresh_button.on_click(lambda _: self.refresh())
        self.more.on_click(self._more)
        self.rows.observe(self._picked, "value")
        self.load.on_click(self._load)
        self.use.on_click(lambda _: self._with_result(self.on_use))
        self.compare_button.on_click(lambda _: self._with_result(self.on_compare))
        filters = w.VBox(
            [
                w.HBox([self.search, self.model, self.refresh_button]),
                w.HBox([self.seed, self.seed_error, self.tag, self.since]),
            ]
        )
        picked = w.VBox(
            [self.preview, w.HBox([self.use, self.compare_button, self.load]), self.details],
            layout=w.Layout(flex="1 1 300px", min_width="0"),
        )
        listing = w.VBox(
            [self.rows, w.HBox([self.count, self.more]), self.thumbnails],
            layout=w.Layout(flex="2 1 420px", min_width="0"),
        )
        self.widget = w.VBox(
            [filters, self.error, w.HBox([listing, picked], layout=w.Layout(flex_flow="row wrap")), self.lineage]
        )
        self.refresh()

    # -- querying ---------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Search the journal with the filters (newest first); a bad filter value is shown, not queried."""
        filters = self._filters()
        if filters is None:
            return
        try:
            records = self._query(filters)
        except Exception as exc:  # an unreadable journal: say so here
            self.error.value = f'<span style="color:{RED};font:12px sans-serif">{html.escape(str(exc))}</span>'
            return
        self.error.value = ""
        self.records = records
        keep = self.rows.value
        self._quiet = True
        try:
            self.rows.options = [(row_label(r), r.id) for r in records]
            self.rows.value = keep if any(r.id == keep for r in records) else None
        finally:
            self._quiet = False
        n = len(records)
        more = n >= self._limit
        text = f"{n} job{'s' if n != 1 else ''}" + (" (the newest; “more” shows older ones)" if more else "")
        self.count.value = f'<span style="font:12px sans-serif;opacity:.75">{html.escape(text)}</span>'
        self.more.disabled = not more
        self._show_thumbnails(records)

    def _filters(self) -> dict[str, Any] | None:
        filters: dict[str, Any] = {}
        seed = self.seed.value.strip()
        if seed and not seed.isdigit():
            self.seed_error.value = (
                f'<span style="color:{RED};font:12px sans-serif">'
                f"{html.escape(repr(seed))} is not a seed: give a whole number ≥ 0</span>"
            )
            return None
        self.seed_error.value = ""
        if seed:
            filters["seed"] = int(seed)
        if self.search.value.strip():
            filters["search"] = self.search.value.strip()
        if self.tag.value.strip():
            filters["tag"] = self.tag.value.strip().lstrip("#")
        if self.since.value is not None:
            filters["since"] = dt.datetime.combine(self.since.value, dt.time.min).timestamp()
        return filters

    def _query(self, filters: dict[str, Any]) -> list[JobRecord]:
        if self.model.value == "any":
            return list(self.session.history(**filters, limit=self._limit))
        # the journal matches one endpoint at a time; a model has several (text-to-image, edit, multi)
        found = [
            r
            for ep in ENDPOINTS.values()
            if ep.model == self.model.value
            for r in self.session.history(**filters, endpoint=ep.id, limit=self._limit)
        ]
        return sorted(found, key=lambda r: r.id, reverse=True)[: self._limit]

    def _filter_changed(self, _change: object) -> None:
        self._limit = self.page_size
        self.refresh()

    def _more(self, _button: w.Button) -> None:
        self._limit += self.page_size
        self.refresh()

    # -- one record -------------------------------------------------------------------------------
    def select(self, journal_id: int) -> None:
        """Show a job's details and its lineage: original -> ... -> this."""
        try:
            record = self.session.record(journal_id)
            chain = self.session.lineage(journal_id)
            children = self.session.children(journal_id)
        except Exception as exc:  # unknown id, journal trouble
            self.error.value = f'<span style="color:{RED};font:12px sans-serif">{html.escape(str(exc))}</span>'
            return
        self.error.value = ""
        self.selected = record
        if self.rows.value != record.id and any(r.id == record.id for r in self.records):
            self._quiet = True
            try:
                self.rows.value = record.id
            finally:
                self._quiet = False
        self.details.value = details_html(record, children)
        old = self.lineage.children
        self.lineage.children = tuple(self._lineage_items(chain, record))
        close_tree(*old)
        thumb = store.read_thumbnail(record.folder, record.files[0]) if record.files else None
        self.preview.value = thumb or b""
        self.preview.layout.display = "" if thumb else "none"
        self.load.disabled = False
        self.use.disabled = self.compare_button.disabled = not (record.status == "done" and record.files)

    def _lineage_items(self, chain: list[JobRecord], current: JobRecord) -> list[w.Widget]:
        """original → ... → this; a multi-reference edit shows every source: @3 + @5 → @7."""
        steps: list[list[JobRecord]] = [[r] for r in chain]
        if len(current.parents) > 1:
            sources = []
            for parent in current.parents:
                try:
                    sources.append(self.session.record(parent))
                except Exception:  # deleted since: the others still show
                    continue
            steps = [*steps[:-2], sources, [current]]
        items: list[w.Widget] = []
        for k, step in enumerate(steps):
            if k:
                items.append(w.HTML('<span style="font:18px sans-serif;padding:0 4px">→</span>'))
            for j, record in enumerate(step):
                if j:
                    items.append(w.HTML('<span style="font:18px sans-serif;padding:0 4px">+</span>'))
                items.append(self._lineage_item(record, current))
        return items

    def _lineage_item(self, record: JobRecord, current: JobRecord) -> w.Widget:
        data = lineage_thumbnail(record)
        picture: w.Widget = (
            w.Image(value=data, format="jpeg", layout=w.Layout(width=f"{LINEAGE_SIDE}px"))
            if data is not None
            else w.HTML(f'<div style="width:{LINEAGE_SIDE}px;font:11px sans-serif;opacity:.6">no image</div>')
        )
        button = w.Button(
            description=record.ref,
            tooltip=record.prompt[:200],
            disabled=record.id == current.id,
            layout=w.Layout(width=f"{LINEAGE_SIDE}px"),
        )
        button.on_click(lambda _, i=record.id: self.select(i))
        return w.VBox([picture, button])

    def _picked(self, change: dict[str, Any]) -> None:
        if not self._quiet and change["new"] is not None:
            self.select(change["new"])

    def _with_result(self, callback: Callable[[Result], None] | None) -> None:
        if self.selected is None or callback is None:
            return
        try:
            callback(self.session.result(self.selected.id))
        except Exception as exc:  # shown here, where the click was
            self.error.value = f'<span style="color:{RED};font:12px sans-serif">{html.escape(str(exc))}</span>'

    def _load(self, _button: w.Button) -> None:
        if self.selected is not None and self.on_load is not None:
            try:
                self.on_load(self.selected)
            except Exception as exc:  # shown here, where the click was
                self.error.value = f'<span style="color:{RED};font:12px sans-serif">{html.escape(str(exc))}</span>'

    def _show_thumbnails(self, records: list[JobRecord]) -> None:
        """The listed jobs as small thumbnails, newest first; a click picks one. Items of jobs still listed are
        kept, so a refresh only makes the new ones."""
        items = []
        for record in records:
            item = self._thumbs.get(record.id)
            if item is None:
                data = store.read_thumbnail(record.folder, record.files[0]) if record.files else None
                picture = w.Image(value=data or b"", format="jpeg", layout=w.Layout(width=f"{ROW_SIDE}px"))
                button = w.Button(
                    description=record.ref, tooltip=record.prompt[:200], layout=w.Layout(width=f"{ROW_SIDE}px")
                )
                button.on_click(lambda _, i=record.id: self.select(i))
                item = self._thumbs[record.id] = w.VBox([picture, button], layout=w.Layout(margin="0 4px 4px 0"))
            items.append(item)
        self.thumbnails.children = items
        listed = {r.id for r in records}
        gone = [self._thumbs.pop(i) for i in list(self._thumbs) if i not in listed]
        close_tree(*gone)

    def close(self) -> None:
        close_tree(self.widget, *self._thumbs.values())
        self._thumbs.clear()


def lineage_thumbnail(record: JobRecord) -> bytes | None:
    """A small JPEG of the job's first image: the saved thumbnail, else made from the file; None when gone."""
    return store.read_thumbnail(record.folder, record.files[0]) if record.files else None


def details_html(record: JobRecord, children: list[JobRecord]) -> str:
    esc = html.escape
    colour = STATUS_COLOUR.get(record.status, "inherit")
    created = dt.datetime.fromtimestamp(record.created).astimezone().isoformat(sep=" ", timespec="seconds")
    cost = endpoints.format_cost(record.cost) + (" · cached" if record.cached else "")
    rows: list[tuple[str, str]] = [
        ("status", f'<span style="color:{colour}">{esc(record.status)}</span>'),
        ("created", esc(created)),
        ("endpoint", esc(record.endpoint)),
        ("seed", esc("–" if record.seed is None else str(record.seed))),
        ("cost", esc(cost)),
        ("prompt", esc(record.prompt)),
    ]
    if record.output_prompt and record.output_prompt != record.prompt:
        rows.append(("prompt used", esc(record.output_prompt)))
    rows += [(k, esc(str(v))) for k, v in record.arguments.items() if k not in ("prompt", "seed")]
    if record.tags:
        rows.append(("tags", esc(" ".join("#" + t for t in record.tags))))
    if record.parents or record.parent_id is not None:
        rows.append(("edit of", esc(", ".join(f"@{p}" for p in (record.parents or (record.parent_id,))))))
    if children:
        rows.append(("edited in", esc(", ".join(c.ref for c in children))))
    rows.append(("request id", esc(record.request_id or "–")))
    for i, path in enumerate(record.paths):
        rows.append((f"file {i + 1}", f'<a href="{esc(render.file_link(path))}" target="_blank">{esc(str(path))}</a>'))
    if record.error:
        kind = f"{record.error_type}: " if record.error_type else ""
        rows.append(("error", f'<span style="color:{RED}">{esc(kind + record.error)}</span>'))
    cells = "".join(
        f'<tr><th style="text-align:left;padding:1px 8px 1px 0;vertical-align:top">{esc(k)}</th>'
        f'<td style="overflow-wrap:anywhere">{v}</td></tr>'
        for k, v in rows
    )
    return (
        f'<div style="font:12px sans-serif"><b>{esc(record.ref)}</b>'
        f'<table style="border-collapse:collapse;margin-top:4px">{cells}</table></div>'
    )
