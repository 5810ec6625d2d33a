"""History's page of rows as one anywidget (``HistoryPage``): a job's thumbnail, reference and time, prompt, model,
seed, cost and stars, and its actions, drawn in the browser (front/history.js).

The kernel sends plain values per row and one thumbnail buffer per job (front.ImageBuffer, the saved small JPEG),
kept while the job stays listed: "more" or a refresh sends only the rows that are new. A row's buttons, its stars,
"more" and the compare pick's bar come back as messages (``{"type": "action", "action": ..., "id": ...}``), which
``on_action`` hears. Before this, every row was eight ipywidgets (an image, the text, four buttons and two boxes):
a page of 50 took about 0.2 s to build in the kernel (bench/views_bench.py measures both).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import anywidget
import ipywidgets as w
import traitlets as t

from .. import endpoints
from ..endpoints import ENDPOINTS
from ..journal import folder as store
from ..journal.db import JobRecord
from . import front

ACTIONS = ("use", "compare", "load", "details", "rate", "cancel")
"""What a row's message may ask (besides "more" and "alone", which name no row)."""
PROMPT_CHARS = 400
"""A row shows two lines of the prompt; its tooltip the whole prompt up to this many characters."""
Action = Callable[[str, int, dict[str, Any]], None]


class HistoryPage(anywidget.AnyWidget):
    """The rows History lists, drawn in the browser; ``act(...)`` is what a click or a key in a row sends."""

    _esm = front.esm("images.js", "history.js")
    _css = front.css("history.css")
    rows = t.List(t.Dict()).tag(sync=True, **w.widget_serialization)
    """Per job, newest first: id, ref, when, status, prompt, model, mode, seed, cost, rating, usable and thumb (an
    ImageBuffer of the saved thumbnail, or None when the job has no image)."""
    picked = t.Int(0).tag(sync=True)
    """The journal id picked as the first of a comparison (its "compare" waits for a second row); 0: none."""
    current = t.Int(0).tag(sync=True)
    """The journal id whose details show beside the list; 0: none."""
    alone = t.Bool(False).tag(sync=True)
    """True when the pick bar's "add it alone" can add one job to Compare."""
    count = t.Unicode("").tag(sync=True)
    """'3 jobs', below the rows."""
    more = t.Bool(False).tag(sync=True)
    """True when older jobs match too ("more" shows the next page)."""
    message = t.Unicode("").tag(sync=True)
    """An error from the last action, shown above the rows."""

    def __init__(self, on_action: Action) -> None:
        super().__init__()
        self.on_action = on_action
        self._thumbs: dict[int, front.ImageBuffer | None] = {}
        """Journal id -> its thumbnail's buffer (None: no image yet), for the jobs listed."""
        self.on_msg(front.Serial(self._on_message))  # one action at a time, in order

    def show(self, records: list[JobRecord]) -> None:
        """List these jobs (newest first). Thumbnails of jobs still listed are kept; the others' are closed."""
        rows = [self._row(record) for record in records]
        listed = {r.id for r in records}
        gone = [self._thumbs.pop(i) for i in list(self._thumbs) if i not in listed]
        self.rows = rows
        for buffer in gone:
            if buffer is not None:
                buffer.close()

    def row(self, journal_id: int) -> dict[str, Any]:
        """The values a listed job's row shows (KeyError when it is not listed)."""
        for row in self.rows:
            if row["id"] == journal_id:
                return dict(row)
        raise KeyError(journal_id)

    def thumb(self, journal_id: int) -> front.ImageBuffer | None:
        return self._thumbs.get(journal_id)

    def act(self, action: str, journal_id: int = 0, **extra: Any) -> None:
        """Do what a row's button (or key) asks, exactly as the browser's message does."""
        if action in ("more", "alone"):  # the page's own buttons, which name no row
            self._on_message(self, {"type": action}, [])
        else:
            self._on_message(self, {"type": "action", "action": action, "id": journal_id, **extra}, [])

    def _on_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, dict):
            return
        kind = content.get("type")
        if kind in ("more", "alone"):
            self.on_action(str(kind), 0, {})
        elif kind == "action" and content.get("action") in ACTIONS and isinstance(content.get("id"), int):
            extra = {k: v for k, v in content.items() if k not in ("type", "action", "id")}
            self.on_action(str(content["action"]), int(content["id"]), extra)

    def _row(self, record: JobRecord) -> dict[str, Any]:
        if self._thumbs.get(record.id) is None:
            data = store.read_thumbnail(record.folder, record.files[0]) if record.files else None
            side = store.THUMB_SIDE
            self._thumbs[record.id] = (
                front.ImageBuffer(value=data, width=side, height=side, name=f"{record.id:04d}-thumb.jpg")
                if data
                else None
            )
        return row_values(record, self._thumbs[record.id])

    def close(self) -> None:
        for buffer in self._thumbs.values():
            if buffer is not None:
                buffer.close()
        self._thumbs.clear()
        super().close()


def row_values(record: JobRecord, thumb: front.ImageBuffer | None) -> dict[str, Any]:
    """What one row shows, as plain values (the browser makes text of them, never markup)."""
    one_line = " ".join(record.prompt.split())
    return {
        "id": record.id,
        "ref": record.ref,
        "when": dt.datetime.fromtimestamp(record.created).strftime("%Y-%m-%d %H:%M"),
        "status": record.status,
        "prompt": one_line if len(one_line) <= PROMPT_CHARS else one_line[: PROMPT_CHARS - 1] + "…",
        "model": model_of(record),
        "mode": ENDPOINTS[record.endpoint].mode if record.endpoint in ENDPOINTS else "",
        "seed": record.seed,
        "cost": endpoints.format_cost(record.cost) + (" · cached" if record.cached else ""),
        "rating": record.rating or 0,
        "usable": record.status == "done" and bool(record.files),
        "thumb": thumb,
    }


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


__all__ = ["ACTIONS", "HistoryPage", "model_of", "row_label", "row_values"]
