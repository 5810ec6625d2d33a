"""The panel's History tab: the journal searched by prompt words, seed, model, tag, date and rating.

People come back for "that seed from Tuesday": each row shows the job's thumbnail, reference, time, prompt,
model, seed, cost and stars (click to rate), with its actions on the row itself. "use" hands the image to Create,
"load" fills Create from the job's settings, and "compare" on one row and then on another opens those two side by
side, so an old result is compared with a new one. "details" shows the job's settings and the chain of edits that
led to it. Rows come a page at a time ("more"), so a long journal stays quick to open; the page is one anywidget
(history_rows.HistoryPage) drawn in the browser, the filters and the details pane plain ipywidgets.
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
from ..judging.ratings import rate
from ..result import Result
from ..views.names import readable_name
from . import files, theme
from .cards import close_tree
from .history_rows import HistoryPage, row_label

if TYPE_CHECKING:
    from ..session import Session

MODELS = ("any", *sorted({ep.model for ep in ENDPOINTS.values()}))
LINEAGE_SIDE = 96
RED = theme.ERROR
STATUS_COLOUR = {"done": theme.SUCCESS, "failed": RED, "cancelled": theme.WARN}
PairCallback = Callable[[Result, Result], None]

RATINGS = [("any", 0), ("★ or more", 1), ("★★ or more", 2), ("★★★ or more", 3), ("★★★★ or more", 4), ("★★★★★", 5)]
FILTER_WIDTH = "240px"
FILTER_LABEL = "52px"
"""History's filters: one column width and one label width for all, so they line up as a grid."""

__all__ = ["HistoryView", "details_html", "lineage_thumbnail", "row_label"]


class HistoryView:
    """Search the journal; act on a job from its row; see one job's details and lineage."""

    def __init__(
        self,
        session: Session,
        *,
        on_load: Callable[[JobRecord], None] | None = None,
        on_use: Callable[[Result], None] | None = None,
        on_compare: Callable[[Result], None] | None = None,
        on_compare_pair: PairCallback | None = None,
        page_size: int = 50,
    ) -> None:
        self.session = session
        self.on_load = on_load
        self.on_use, self.on_compare, self.on_compare_pair = on_use, on_compare, on_compare_pair
        self.page_size = page_size
        self.records: list[JobRecord] = []
        self.selected: JobRecord | None = None
        self._limit = page_size
        self.search = w.Text(description="search", placeholder="words in the prompt", continuous_update=False)
        self.seed = w.Text(description="seed", placeholder="any", continuous_update=False)
        self.seed_error = w.HTML()
        self.model = w.Dropdown(description="model", options=MODELS, value="any")
        self.tag = w.Text(description="tag", placeholder="any", continuous_update=False)
        self.since = w.DatePicker(description="since")
        self.min_rating = w.Dropdown(description="rating", options=RATINGS, value=0)
        self.refresh_button = w.Button(description="refresh", icon="refresh", tooltip="search the journal again")
        self.refresh_button.layout.width = "auto"
        self.error = w.HTML()
        self.page = HistoryPage(self._action)
        """The listed jobs' rows, drawn in the browser; ``page.act(...)`` does what a click in a row does."""
        self.page.alone = on_compare is not None
        self.details = w.HTML()
        self.lineage = w.HBox(layout=w.Layout(flex_flow="row wrap", align_items="center"))
        self.preview = w.Image(format="jpeg", layout=w.Layout(max_width=f"{store.THUMB_SIDE}px", display="none"))
        """The job whose details show: its first image (the saved thumbnail)."""
        fields = (self.search, self.seed, self.model, self.tag, self.since, self.min_rating)
        for field in fields:
            field.observe(self._filter_changed, "value")
        self.refresh_button.on_click(lambda _: self.refresh())
        # one column per filter, all as wide, their labels as wide: the labels' right edges line up down the rows
        for field in fields:
            field.layout = w.Layout(width=FILTER_WIDTH)
            field.style.description_width = FILTER_LABEL
        filters = w.VBox(
            [
                w.GridBox(
                    [self.search, self.model, self.tag, self.seed, self.since, self.min_rating, self.refresh_button],
                    layout=w.Layout(
                        grid_template_columns=f"repeat(auto-fill, {FILTER_WIDTH})",
                        grid_gap="4px 12px",
                        justify_items="flex-start",
                    ),
                ),
                self.seed_error,
            ]
        )
        self.picked_box = w.VBox(
            [self.preview, self.details, self.lineage],
            layout=w.Layout(flex="1 1 280px", min_width="0", display="none"),
        )
        """The job whose details show (hidden until a row's "details"): the list has the width until then."""
        listing = w.Box([self.page], layout=w.Layout(flex="3 1 520px", min_width="0"))
        self.widget = w.VBox(
            [
                filters,
                self.error,
                w.HBox([listing, self.picked_box], layout=w.Layout(flex_flow="row wrap", grid_gap="16px")),
            ]
        )
        self.refresh()

    @property
    def listed(self) -> list[int]:
        """The journal ids of the rows shown, newest first."""
        return [r.id for r in self.records]

    @property
    def picked(self) -> int | None:
        """The journal id whose "compare" was clicked first (waiting for a second row), or None."""
        return self.page.picked or None

    # -- querying ---------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Search the journal with the filters (newest first); a bad filter value is shown, not queried."""
        filters = self._filters()
        if filters is None:
            return
        try:
            records = self._query(filters)
        except Exception as exc:  # an unreadable journal: say so here
            self._say(exc)
            return
        self.error.value = ""
        self.records = records
        n = len(records)
        more = n >= self._limit
        with self.page.hold_sync():
            self.page.show(records)
            self.page.count = f"{n} job{'s' if n != 1 else ''}" + (
                " (the newest; “more” shows older ones)" if more else ""
            )
            self.page.more = more
            self.page.current = self.selected.id if self.selected is not None else 0

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
        if self.min_rating.value:
            filters["min_rating"] = int(self.min_rating.value)
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

    def show_more(self) -> None:
        """The next page of older jobs, below the rows shown."""
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
            self._say(exc)
            return
        self.error.value = ""
        self.selected = record
        self.page.current = record.id
        self.details.value = details_html(record, children)
        old = self.lineage.children
        self.lineage.children = tuple(self._lineage_items(chain, record))
        close_tree(*old)
        thumb = store.read_thumbnail(record.folder, record.files[0]) if record.files else None
        self.preview.value = thumb or b""
        self.preview.layout.display = "" if thumb else "none"
        self.picked_box.layout.display = "flex"

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
            else w.HTML(f'<div style="width:{LINEAGE_SIDE}px;font:11px sans-serif;color:{theme.MUTED}">no image</div>')
        )
        button = w.Button(
            description=record.ref,
            tooltip=record.prompt[:200],
            disabled=record.id == current.id,
            layout=w.Layout(width=f"{LINEAGE_SIDE}px"),
        )
        button.on_click(lambda _, i=record.id: self.select(i))
        return w.VBox([picture, button])

    # -- a row's actions (messages from the page) ------------------------------------------------------
    def _action(self, name: str, journal_id: int, extra: dict[str, Any]) -> None:
        try:
            if name == "more":
                self.show_more()
            elif name == "alone":
                self._compare_alone()
            elif name == "cancel":
                self.page.picked = 0
            elif name == "details":
                self.select(journal_id)
            elif name == "load":
                if self.on_load is not None:
                    self.on_load(self.session.record(journal_id))
            elif name == "use":
                if self.on_use is not None:
                    self.on_use(self.session.result(journal_id))
            elif name == "compare":
                self._compare(journal_id)
            elif name == "rate":
                self._rate(journal_id, extra.get("stars"))
        except Exception as exc:  # shown in the page, where the click was
            self.page.message = str(exc)
            return
        self.page.message = ""

    def _rate(self, journal_id: int, stars: object) -> None:
        """A row's stars: kept in the journal and the image files (kx.rate); the row shows them at once."""
        tracker = self.session.tracker
        rate(tracker.journal, tracker.journal.get(journal_id), stars)
        self.records = [tracker.journal.get(journal_id) if r.id == journal_id else r for r in self.records]
        self.page.show(self.records)

    def _compare(self, journal_id: int) -> None:
        """The first row's "compare" waits for a second; the second opens those two side by side (first on the
        left). The same row again takes the pick back."""
        if self.on_compare_pair is None:
            if self.on_compare is not None:
                self.on_compare(self.session.result(journal_id))
            return
        picked = self.page.picked
        if not picked:
            self.page.picked = journal_id
        elif picked == journal_id:
            self.page.picked = 0
        else:
            first, second = self.session.result(picked), self.session.result(journal_id)
            self.page.picked = 0
            self.on_compare_pair(first, second)

    def _compare_alone(self) -> None:
        picked = self.page.picked
        self.page.picked = 0
        if picked and self.on_compare is not None:
            self.on_compare(self.session.result(picked))

    def _say(self, exc: Exception) -> None:
        self.error.value = f'<span style="color:{RED};font:12px sans-serif">{html.escape(str(exc))}</span>'

    def close(self) -> None:
        self.page.close()
        close_tree(self.widget)


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
    paths = record.paths
    for i, path in enumerate(paths):
        name = readable_name(
            prompt=record.output_prompt or record.prompt,
            seed=record.seed,
            journal_id=record.id,
            mime=files.mime_of(path),
            index=i,
            count=len(paths),
        )
        rows.append((f"file {i + 1}", files.link(path, name, str(path), "open", "the image in a new tab")))
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
