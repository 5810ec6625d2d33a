"""A gallery card: one job or result as a thumbnail with its seed, prompt, model, cost and one-click actions.

A card follows its job (queued -> running -> the image) through the job's callbacks, which fire on the
engine thread, so each update only sets a few trait values. Cards hold a small JPEG, never the full-size
image: a finished Result is kept by weak reference and read back from the journal when a button needs it,
so a gallery of hundreds of results stays small in the kernel.
"""

from __future__ import annotations

import functools
import html
import io
import itertools
import random
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as w
from ipywidgets.widgets.widget_string import HTMLStyle
from PIL import Image, ImageFilter

from .. import endpoints
from ..jobs import Job, JobStatus, queue_place
from ..journal import folder as store
from ..journal.db import JobRecord
from ..result import Result
from ..views.names import readable_name
from . import files, theme
from .rating import RatingStars

if TYPE_CHECKING:
    from ..session import Session

SIDE = store.THUMB_SIDE
CARD_WIDTH = SIDE + 16
PROMPT_CHARS = 90
RED = theme.ERROR
SEED_RANGE = 2**31
BUTTONS: dict[str, tuple[str, str]] = {
    "use": ("use", "use this image as the input of an edit"),
    "seed": ("seed", "reuse this seed in Create"),
    "rerun": ("rerun", "run again with the same settings and a new seed"),
    "compare": ("compare", "add to the comparison"),
    "metadata": ("info", "show the request id, endpoint, every argument and the files"),
}
BADGE = "display:inline-block;padding:0 6px;border-radius:8px;font:11px monospace;"

ResultCallback = Callable[[Result], None]
CARD = "kontext-card"
"""The CSS class of every card; each also has one of its own, ``kx-card-<n>`` (``Card.css_class``)."""
_serials = itertools.count(1)


class Shared:
    """Layouts and styles every card uses: one widget each instead of one per card (half a card's memory).
    They are never closed; swapping ``layout`` between SHOWN and HIDDEN shows or hides a part."""

    def __init__(self) -> None:
        self.card = w.Layout(
            width=f"{CARD_WIDTH}px", padding="6px", margin="0 8px 8px 0", border=f"1px solid {theme.BORDER}"
        )
        """Narrower in a narrow grid, two a row (the Gallery's style)."""
        self.image = w.Layout(
            width="100%", max_width=f"{SIDE}px", max_height=f"{SIDE}px", object_fit="contain", margin="2px 0"
        )
        """No side margins: the image fills the card's width exactly (with them, every card scrolled sideways)."""
        self.text = w.Layout()
        self.text_style = HTMLStyle()
        self.button = w.Layout(width="auto", padding="0 5px", margin="0 2px 2px 0")
        self.button_style = w.ButtonStyle(font_size="11px")
        self.row = w.Layout(flex_flow="row wrap")
        self.shown = w.Layout()
        self.hidden = w.Layout(display="none")

    def owns(self, widget: object) -> bool:
        return any(widget is part for part in vars(self).values())


@functools.cache
def shared() -> Shared:
    return Shared()


_kept: set[int] = set()


def keep_open(*parts: w.Widget) -> None:
    """Layouts and styles shared by many widgets for the life of the kernel (History rows'): close_tree leaves
    them open."""
    _kept.update(id(part) for part in parts)


def close_tree(*widgets: w.Widget) -> None:
    """Close widgets, their children and their own layouts and styles (closing a widget alone leaves those
    registered in ipywidgets for the life of the kernel)."""
    parts = shared()
    for widget in widgets:
        if isinstance(widget, w.Box):
            close_tree(*widget.children)
        for part in (getattr(widget, "layout", None), getattr(widget, "style", None)):
            if isinstance(part, w.Widget) and not parts.owns(part) and id(part) not in _kept:
                part.close()
        widget.close()


def thumbnail_bytes(result: Result, side: int = SIDE) -> tuple[bytes, str]:
    """The first image's small JPEG: the one saved beside the file when it exists, else made now."""
    if result.files and side == SIDE:
        path = result.files[0]
        if path.parent.name == store.RESULTS:
            thumb = store.thumbnail_path(path.parent.parent, f"{store.RESULTS}/{path.name}")
            try:
                return thumb.read_bytes(), "jpeg"
            except OSError:
                pass
    shown = result.thumbnail(0, side)
    if shown is None:  # too large to decode: the card's info (and the Result) say where its file is
        return placeholder(), "jpeg"
    data, mime = shown
    return data, mime.split("/")[1]


def blurred(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        out = io.BytesIO()
        image.convert("RGB").filter(ImageFilter.GaussianBlur(max(image.size) / 18)).save(out, "JPEG", quality=70)
        return out.getvalue()


@functools.cache
def placeholder() -> bytes:
    """A grey box where the image will be, while the job runs."""
    out = io.BytesIO()
    Image.new("RGB", (SIDE, SIDE * 5 // 8), (236, 236, 236)).save(out, "JPEG", quality=60)
    return out.getvalue()


class Card:
    """One job or result in the gallery; the job's card shows its state, then its image, on its own."""

    def __init__(
        self,
        session: Session | None = None,
        *,
        job: Job | None = None,
        result: Result | None = None,
        record: JobRecord | None = None,
        on_use_as_input: ResultCallback | None = None,
        on_reuse_seed: ResultCallback | None = None,
        on_compare: ResultCallback | None = None,
        on_new_job: Callable[[Job], Any] | None = None,
    ) -> None:
        if [job, result, record].count(None) != 2:
            raise ValueError("a card shows a job, a result or a journal record: give exactly one of them")
        self.session = session
        self._callbacks = {"use": on_use_as_input, "seed": on_reuse_seed, "compare": on_compare}
        self._on_new_job = on_new_job
        self._lock = threading.Lock()
        self._finished = False
        self._settled = False
        self._job: Job | None = job
        self._job_ref: weakref.ref[Job] | None = None
        self._result_ref: weakref.ref[Result] | None = None
        self._kept: Result | None = None
        self._reloadable = False
        self._thumb, self._format = b"", "jpeg"
        self._done_html = ""
        self._metadata_html = ""
        self._unsubscribe: Callable[[], None] | None = None
        self._status_at = time.monotonic()
        self.journal_id: int | None = record.id if record is not None else (job or result).journal_id  # type: ignore[union-attr]
        self._build()
        if record is not None:
            self._finished = self._settled = True
            self._show_record(record)
            return
        if result is not None:
            self._finished = self._settled = True
            self._show_result(result)
            return
        assert job is not None
        self._show_job(job)
        self._unsubscribe = job.on_update(self._on_update)
        if job.done():  # finished before we subscribed (a cached answer, or a quick job)
            self._finish(job)

    # -- what the card holds ------------------------------------------------------------------------
    @property
    def job(self) -> Job | None:
        """The job while it runs; once it has finished, only as long as someone else keeps it."""
        return self._job if self._job is not None else (self._job_ref() if self._job_ref else None)

    @property
    def result(self) -> Result | None:
        """The Result (None until the job is done): the same object while anyone holds it, else read back
        from the journal."""
        if self._kept is not None:
            return self._kept
        found = self._result_ref() if self._result_ref is not None else None
        if found is None and self._reloadable and self.session is not None:
            found = self.session.result(self.journal_id)
            self._result_ref = weakref.ref(found)
        return found

    @property
    def thumbnail(self) -> bytes:
        """The real thumbnail (behind the blur when the image was flagged NSFW)."""
        return self._thumb

    # -- widgets ----------------------------------------------------------------------------------
    def _build(self) -> None:
        parts = shared()
        self.image = w.Image(value=placeholder(), format="jpeg", layout=parts.image)
        self.reveal = w.Button(
            description="reveal", tooltip="flagged NSFW: show the image", layout=parts.hidden, style=parts.button_style
        )
        self.reveal.on_click(self._toggle_reveal)
        self.head, self.prompt, self.status, self.links = (
            w.HTML(layout=parts.text, style=parts.text_style) for _ in range(4)
        )
        self.buttons: dict[str, w.Button] = {}
        for key, (label, tip) in BUTTONS.items():
            button = w.Button(
                description=label, tooltip=tip, disabled=True, layout=parts.button, style=parts.button_style
            )
            button.on_click(functools.partial(self._clicked, key))
            self.buttons[key] = button
        self.cancel = w.Button(
            description="cancel", tooltip="cancel the job on fal", layout=parts.hidden, style=parts.button_style
        )
        self.cancel.on_click(self._cancel)
        self.metadata = w.HTML(layout=parts.hidden, style=parts.text_style)
        self.stars = RatingStars()  # kx.rate from the card: bound when the result is in the journal
        row = w.HBox([*self.buttons.values(), self.cancel], layout=parts.row)
        self.css_class = f"kx-card-{next(_serials)}"
        """This card's own CSS class: how the browser finds it to scroll to it (widgets/reveal.py)."""
        self.widget = w.VBox(
            [self.image, self.reveal, self.head, self.stars, self.prompt, self.status, row, self.links, self.metadata],
            layout=parts.card,
            _dom_classes=(CARD, self.css_class),  # given when made: no extra message per card
        )

    def close(self) -> None:
        """Stop following the job and close the card's widgets."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        close_tree(self.widget)

    # -- following the job (engine thread) ------------------------------------------------------------
    @property
    def running(self) -> bool:
        """Whether the card still waits for its job (False once the result or the error shows)."""
        return not self._settled

    def _on_update(self, job: Job, status: JobStatus) -> None:
        if status.finished:
            self._finish(job)
        else:
            self._status_at = time.monotonic()
            self.status.value = _status_html(job, status)

    def tick(self) -> None:
        """Refresh the elapsed time of a running job (fal may send nothing for seconds)."""
        with self._lock:  # never after the job's final state is shown
            job = self._job
            if job is not None and not self._finished and job.status.state == "running":
                self.status.value = _status_html(job, job.status, time.monotonic() - self._status_at)

    def _finish(self, job: Job) -> None:
        with self._lock:
            if self._finished:
                return
            self._finished = True
        self.journal_id = job.journal_id
        if job.exception(0) is None:
            self._show_result(job.result(0))
        else:
            self._show_failure(job)
        self.cancel.layout = shared().hidden
        self._job_ref, self._job = weakref.ref(job), None
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._settled = True

    def _show_job(self, job: Job) -> None:
        seed = job.arguments.get("seed")
        self.head.value = _badge(f"seed {seed if seed is not None else '…'}") + _meta_line(job.endpoint, None, False)
        self.prompt.value = _prompt_html(str(job.arguments.get("prompt", "")))
        self.status.value = _status_html(job, job.status)
        self.cancel.layout = shared().shown

    def _show_result(self, result: Result) -> None:
        self.journal_id = result.journal_id
        reloadable = result.journal_id is not None and bool(result.files) and self._same_journal(result)
        if reloadable:
            self._result_ref = weakref.ref(result)
            self._reloadable = True
        else:
            self._kept = result
        self._thumb, self._format = thumbnail_bytes(result)
        flagged = result.has_nsfw_concepts[:1] == [True]
        self.image.format = self._format if not flagged else "jpeg"
        self.image.value = blurred(self._thumb) if flagged else self._thumb
        if flagged:
            self.reveal.layout = shared().shown
        self.head.value = _badge(f"seed {result.seed}") + _meta_line(result.endpoint, result.cost, result.cached)
        self.prompt.value = _prompt_html(result.prompt)
        ref = f"{result.ref} · " if result.ref else ""
        took = f" in {result.elapsed:.1f} s" if result.elapsed else ""
        flag = f' · <b style="color:{RED}">flagged NSFW</b>' if flagged else ""
        self._done_html = f'<span style="font:11px monospace">{html.escape(ref)}done{took}{flag}</span>'
        self.status.value = self._done_html
        self.links.value = _links_html(result)
        self._metadata_html = _metadata_html(result.request_id, result.endpoint, result.arguments, result)
        for button in self.buttons.values():
            button.disabled = False
        self.stars.bind(self.session if reloadable else None, result.journal_id)

    def _show_record(self, record: JobRecord) -> None:
        """A finished job from the journal (an earlier kernel's): its saved thumbnail; the Result is read back
        only when a button needs it."""
        self._reloadable = True
        thumb = store.read_thumbnail(record.folder, record.files[0]) if record.files else None
        self._thumb, self._format = (thumb or placeholder()), "jpeg"
        flagged = record.nsfw[:1] == (True,)
        self.image.value = blurred(self._thumb) if flagged else self._thumb
        if flagged:
            self.reveal.layout = shared().shown
        self.head.value = _badge(f"seed {record.seed}") + _meta_line(record.endpoint, record.cost, record.cached)
        self.prompt.value = _prompt_html(record.output_prompt or record.prompt)
        self._done_html = f'<span style="font:11px monospace">{html.escape(record.ref)} · from the journal</span>'
        self.status.value = self._done_html
        paths = record.paths
        self.links.value = _record_links(record, paths) if paths else ""
        self._metadata_html = _metadata_html(record.request_id, record.endpoint, record.arguments, None)
        for button in self.buttons.values():
            button.disabled = False

    def _show_failure(self, job: Job) -> None:
        status = job.status
        colour = RED if status.state == "failed" else theme.WARN
        text = f"{status.error_type}: {status.error}" if status.error_type else (status.error or status.state)
        word = "failed" if status.state == "failed" else "cancelled"
        ref = f"@{job.journal_id} · " if job.journal_id is not None else ""
        self._done_html = (
            f'<div style="color:{colour};font:11px monospace;white-space:pre-wrap">'
            f"{html.escape(ref)}{word}: {html.escape(text)}</div>"
        )
        self.status.value = self._done_html
        self._metadata_html = _metadata_html(job.request_id, job.endpoint, job.arguments, None)
        self.buttons["metadata"].disabled = False
        self.buttons["rerun"].disabled = self.journal_id is None or self.session is None

    def _same_journal(self, result: Result) -> bool:
        """Whether the session's journal can give this result back (it may come from another runs folder)."""
        if self.session is None:
            return False
        return result.files[0].parent.parent == self.session.tracker.journal.folder

    # -- buttons (kernel thread) ----------------------------------------------------------------------
    def _clicked(self, key: str, _button: w.Button) -> None:
        try:
            if key == "metadata":
                self.toggle_metadata()
            elif key == "rerun":
                self.rerun()
            elif (callback := self._callbacks[key]) is not None and (result := self.result) is not None:
                callback(result)
        except Exception as exc:  # shown on the card that failed, not lost in a log
            self.note(f"{BUTTONS[key][0]} failed: {exc}")

    def note(self, message: str) -> None:
        """A red line under the card's state (an action that failed)."""
        line = f'<div style="color:{RED};font:11px monospace">{html.escape(message)}</div>'
        self.status.value = self._done_html + line

    def toggle_metadata(self) -> None:
        showing = self.metadata.layout is shared().shown
        if not showing and not self.metadata.value:
            self.metadata.value = self._metadata_html
        self.metadata.layout = shared().hidden if showing else shared().shown
        self.buttons["metadata"].description = BUTTONS["metadata"][0] if showing else "hide"

    def rerun(self) -> Job | None:
        """The same settings with a new seed, without waiting; the new job gets a card of its own."""
        if self.session is None or self.journal_id is None:
            self.note("rerun needs a job in the journal")
            return None
        try:
            job = self.session.rerun(self.journal_id, seed=random.randrange(SEED_RANGE), wait=False)
        except Exception as exc:  # budget, confirmation, validation: say so on this card
            self.note(f"rerun failed: {exc}")
            return None
        assert isinstance(job, Job)
        if self._on_new_job is not None:
            self._on_new_job(job)
        return job

    def _toggle_reveal(self, _button: w.Button) -> None:
        if self.reveal.description == "reveal":
            self.image.format, self.image.value, self.reveal.description = self._format, self._thumb, "hide"
        else:
            self.image.format, self.image.value, self.reveal.description = "jpeg", blurred(self._thumb), "reveal"

    def _cancel(self, _button: w.Button) -> None:
        job = self.job
        if job is not None and not job.done():
            self.status.value = '<span style="font:11px monospace">cancelling…</span>'
            threading.Thread(target=job.cancel, name="kontext-cancel", daemon=True).start()  # waits for fal


# -- HTML pieces ---------------------------------------------------------------------------------------
def _badge(text: str, colour: str = theme.PILL) -> str:
    return f'<span style="{BADGE}background:{colour}">{html.escape(text)}</span> '


def _meta_line(endpoint: str, cost: float | None, cached: bool) -> str:
    from ..endpoints import get_endpoint

    ep = get_endpoint(endpoint)
    parts = [ep.model, ep.mode] + ([endpoints.format_cost(cost)] if cost is not None else [])
    text = f'<span style="font:11px sans-serif">{html.escape(" · ".join(parts))}</span>'
    return text + (" " + _badge("cached", theme.PILL_OK) if cached else "")


def _prompt_html(prompt: str) -> str:
    one_line = " ".join(prompt.split())
    short = one_line if len(one_line) <= PROMPT_CHARS else one_line[: PROMPT_CHARS - 1] + "…"
    return (
        f'<div title="{html.escape(prompt)}" style="font:12px sans-serif;line-height:1.3;'
        f'max-width:{SIDE}px;overflow-wrap:anywhere">{html.escape(short)}</div>'
    )


def _status_html(job: Job, status: JobStatus, since: float = 0.0) -> str:
    """'queued · 3 ahead in fal's queue' or 'running · 12 s · the last log line'; ``since``: seconds since this
    status came."""
    ref = f"@{job.journal_id} · " if job.journal_id is not None else ""
    if status.state == "queued":
        text = "queued · " + queue_place(status.position)
    elif status.state == "running":
        text = f"running · {status.elapsed + since:.0f} s"
        if status.logs:
            text += f" · {status.logs[-1].get('message', '')}"
    else:
        text = str(status)
    text = text if len(text) <= 120 else text[:119] + "…"
    return f'<span style="font:11px monospace">{html.escape(ref + text)}</span>'


def _links_html(result: Result) -> str:
    if not result.files:
        why = result.save_error or "not saved to the runs folder"
        return f'<span style="font:11px sans-serif;color:{theme.MUTED}">{html.escape(why)}</span>'
    return files.links_html(result)  # served by the panel's FileServer: works wherever the runs folder is


def _record_links(record: JobRecord, paths: list[Path]) -> str:
    """The same links as a new result's (served by the panel's FileServer, a readable name), from a journal row."""
    name = readable_name(
        prompt=record.output_prompt or record.prompt,
        seed=record.seed,
        journal_id=record.id,
        mime=files.mime_of(paths[0]),
        count=len(paths),
    )
    return files.file_links_html(paths[0], name)


def _metadata_html(request_id: str | None, endpoint: str, arguments: dict[str, Any], result: Result | None) -> str:
    esc = html.escape
    rows: list[tuple[str, Any]] = [("request id", request_id or "—"), ("endpoint", endpoint)]
    rows += [(f"  {k}", v) for k, v in arguments.items()]
    if result is not None:
        rows += [("seed used", result.seed), ("prompt used", result.prompt)]
        rows += [(f"file {i + 1}", str(p)) for i, p in enumerate(result.files)]
    cells = "".join(
        f'<tr><th style="text-align:left;padding-right:6px;vertical-align:top;white-space:pre">{esc(str(k))}</th>'
        f'<td style="overflow-wrap:anywhere">{esc(str(v))}</td></tr>'
        for k, v in rows
    )
    return f'<table style="font:11px monospace;max-width:{SIDE}px">{cells}</table>'


links_html = _links_html
"""'open full size · download' for a result's first file (also under the newest result in Create)."""
