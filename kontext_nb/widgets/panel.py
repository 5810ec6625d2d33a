"""The panel: Create, Gallery, Compare and History in one Tab, wired to each other."""

from __future__ import annotations

import html
import logging
import threading
import weakref
from typing import Any

import ipywidgets as w

from ..result import Result
from ..session import Session
from ..views.grid import Grid
from . import theme
from .cards import close_tree
from .compare_view import CompareView
from .create import CreateTab
from .duel import DuelTab
from .files import FileServer
from .gallery import Gallery
from .history_view import HistoryView

TITLES = ("Create", "Gallery", "Compare", "History", "Duel")
CREATE, GALLERY, COMPARE, HISTORY, DUEL = range(len(TITLES))

log = logging.getLogger(__name__)

TERMINAL = (
    "kontext_nb: the panel needs a notebook front end (JupyterLab, Notebook 7, VS Code or Colab); "
    "here, use the %kontext lines or kx.generate"
)

SAVED = "kontext_nb panel (it needs a running kernel; what it made is kept below)"

_current: weakref.ref[Panel] | None = None
"""The panel shown last: re-running its cell closes it, so handlers and threads never pile up."""


class Panel:
    """Make, browse, compare and look back at images without leaving one output.

    ``kx.Panel()`` as a cell's last line shows it. Jobs started anywhere in the session (magics, ``kx.generate``)
    appear in its Gallery too. Creating a new panel closes the previous one.
    """

    def __init__(self, session: Session | None = None, **kwargs: Any) -> None:
        if kwargs:
            names = ", ".join(sorted(kwargs))
            raise TypeError(f"Panel() got unexpected keyword argument(s): {names}; it takes only session=")
        global _current
        previous = _current() if _current is not None else None
        if previous is not None:
            previous.close()
        if session is None:
            from .. import api

            session = api.get_session()
        self.session = session
        self.closed = False
        self.create = CreateTab(session)
        self.gallery = Gallery(
            session, on_use_as_input=self._use_as_input, on_reuse_seed=self._reuse_seed, on_compare=self._compare
        )
        self.create.result_view.callbacks.update(use=self._use_as_input, seed=self._reuse_seed, compare=self._compare)
        self.compare = CompareView(folder=session.runs_folder, session=session)
        self.history = HistoryView(
            session,
            on_load=self._load,
            on_use=self._use_as_input,
            on_compare=self._compare,
            on_compare_pair=self._compare_pair,
        )
        self.duel = DuelTab(session)
        self.tab = w.Tab(
            children=[
                self.create.widget,
                self.gallery.widget,
                self.compare.widget,
                self.history.widget,
                self.duel.widget,
            ],
            titles=TITLES,
        )
        self._proxy = session.proxy_view()
        """A classroom proxy's view (what it allows, quota left) when jobs go through one."""
        if self._proxy:
            self.create.inputs.restrict("safety_tolerance", list(self._proxy.get("safety_tolerances") or []))
        self.header = w.HTML(self._header_text())
        self.files = FileServer()  # "open full size" and "download" links anywhere in the panel
        self.widget = w.VBox([self.header, self.tab, self.files])
        self.widget.add_class("kx-themed")  # theme.STYLE: ipywidgets' own button colours made readable in any theme
        self._stop_header = session.on_job(self._watch_spending)
        self._stop_newest = session.on_job(self.create.follow_elsewhere)
        """Create's newest result follows magics, sweeps and kx.generate too."""
        self.create.on_sweep_done(self._show_grid)
        self._record_lock = threading.Lock()
        self.made: list[Result] = []
        self._made_total = 0
        """What was made in this panel (Create, a card's rerun), newest first (kept in the saved notebook as HTML)."""
        self._record: Any = None
        self.create.on_submitted(self._follow_for_record)
        self.gallery.on_made(self._follow_for_record)
        self.tab.observe(self._tab_changed, "selected_index")
        self.gallery.follow()
        self.gallery.on_new(self._new_cards)
        # the journal's recent results, read while the panel draws: a new kernel's Gallery is not empty
        threading.Thread(target=self._load_gallery, name="kontext-gallery-load", daemon=True).start()
        _current = weakref.ref(self)

    def _load_gallery(self) -> None:
        try:
            if not self.closed:
                self.gallery.load_recent()
        except Exception:  # an unreadable journal: the Gallery still shows this session's jobs
            log.exception("reading the journal's recent results failed")

    def _new_cards(self, count: int) -> None:
        """'Gallery · 2 new' until the tab is looked at."""
        if self.closed:
            return
        titles = list(self.tab.titles)
        looking = self.tab.selected_index == GALLERY
        titles[GALLERY] = TITLES[GALLERY] + (f" · {count} new" if count and not looking else "")
        self.tab.titles = tuple(titles)

    # -- wiring ------------------------------------------------------------------------------------------
    def _use_as_input(self, result: Result) -> None:
        self.create.use_as_input(result)
        self.tab.selected_index = CREATE

    def _reuse_seed(self, result: Result) -> None:
        self.create.set_seed(result.seed)
        self.tab.selected_index = CREATE

    def _compare(self, result: Result) -> None:
        self.compare.add(result)
        self.tab.selected_index = COMPARE

    def _compare_pair(self, first: Result, second: Result) -> None:
        """Two History rows' "compare": those two, side by side, in place of what Compare showed."""
        self.compare.replace([first, second])
        self.tab.selected_index = COMPARE

    def _load(self, record: Any) -> None:
        self.create.load_record(record)
        self.tab.selected_index = CREATE

    def _show_grid(self, grid: Grid) -> None:
        if not self.closed:
            self.compare.show_grid(grid)
            self.tab.selected_index = COMPARE

    def _tab_changed(self, change: Any) -> None:
        if change.new == HISTORY:
            self.history.refresh()
        elif change.new == DUEL:
            self.duel.show()
        if change.new == GALLERY:
            self._new_cards(0)  # new cards stay outlined while the tab is looked at
        elif change.old == GALLERY:
            self.gallery.seen()

    def _header_text(self) -> str:
        """Where jobs go (never the key) and what this session has spent: teachers and students look here first."""
        from ..config import env_base_url, has_fal_credentials
        from ..endpoints import format_cost

        base = self.session.settings.base_url or env_base_url()
        keyless = self.session.settings.key is None and not has_fal_credentials()
        if self._proxy:
            return _proxy_header(self._proxy)
        if self.session.backend == "sandbox" or (base is None and keyless):
            where = "<b>offline sandbox</b> · placeholder images, nothing charged · set FAL_KEY for real images"
        elif base:
            where = f"via {html.escape(base)}"
        else:
            where = "fal · key set"
        spent = self.session.budget()
        cap = spent.get("session_cap")
        money = f"spent {format_cost(spent['session'])}" + (f" of {format_cost(cap)}" if cap else "")
        style = f"font:12px sans-serif;color:{theme.MUTED}"
        return f'{theme.STYLE}<div style="{style}">kontext_nb · {where} · {money} this session</div>'

    def _watch_spending(self, job: Any) -> None:
        def refresh(j: Any, status: Any) -> None:
            if status.finished and not self.closed:
                if self._proxy:
                    self._proxy = self.session.proxy_view() or self._proxy  # the quota left, as the proxy counts
                self.header.value = self._header_text()

        job.on_update(refresh)
        if job.done():
            refresh(job, job.status)

    # -- the static record ------------------------------------------------------------------------------
    def _follow_for_record(self, job: Any) -> None:
        def done(j: Any, status: Any) -> None:
            if status.finished and j.state == "done" and not self.closed:
                self._add_to_record(j.result(0))

        job.on_update(done)
        if job.done():
            done(job, job.status)

    def _add_to_record(self, result: Result) -> None:
        from ..views.record import KEEP, record_html

        with self._record_lock:
            if any(r is result for r in self.made):
                return
            self.made.insert(0, result)
            del self.made[KEEP:]
            self._made_total += 1
            if self._record is not None:
                from IPython.display import HTML

                self._record.update(HTML(record_html(self.made, total=self._made_total)))

    # -- display and lifetime ----------------------------------------------------------------------------
    def _ipython_display_(self) -> None:
        """The panel, and below it a plain-HTML record of what it makes (updated through a display id), so a
        saved notebook opened with no kernel and no widget state still shows the images."""
        from IPython.display import HTML, display

        from ..views.record import record_html

        if not _in_notebook():
            print(TERMINAL)
            return
        # without a kernel or widget state a front end shows text/plain: a sentence, not "VBox(children=..."
        display({**self.widget._repr_mimebundle_(), "text/plain": SAVED}, raw=True)
        # a job that ends now adds to the record on the engine's thread: it waits until the record shows, then
        # updates it (unlocked, a result added between drawing and keeping the handle was never shown)
        with self._record_lock:
            self._record = display(HTML(record_html(self.made, total=self._made_total)), display_id=True)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = dict(self.widget._repr_mimebundle_(**kwargs))
        bundle["text/plain"] = TERMINAL
        return bundle

    def close(self) -> None:
        """Stop following the session, stop the ticker, close every widget. Jobs in flight go on running."""
        global _current
        if self.closed:
            return
        self.closed = True
        self._stop_header()
        self._stop_newest()
        self.create.close()
        self.gallery.close()
        for view in (self.compare, self.history, self.duel):
            close = getattr(view, "close", None)
            if close is not None:
                close()
        close_tree(self.widget)
        if _current is not None and _current() is self:
            _current = None

    def __repr__(self) -> str:
        state = (
            "closed" if self.closed else f"{len(self.create.jobs)} jobs from Create, {len(self.gallery.cards)} cards"
        )
        return f"<kontext_nb Panel: {state}>"


def _in_notebook() -> bool:
    """A kernel with a front end that draws widgets (terminal IPython has no kernel)."""
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def _proxy_header(view: dict[str, Any]) -> str:
    """The panel's header behind a classroom proxy: where, and what of the student's quota is left."""
    from ..fal.proxy_view import describe

    where, left = describe(view)[:2]
    return f'<div style="font:12px sans-serif;opacity:.8">kontext_nb · {html.escape(where)} · {html.escape(left)}</div>'
