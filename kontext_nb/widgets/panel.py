"""The panel: Create, Gallery, Compare and History in one Tab, wired to each other."""

from __future__ import annotations

import html
import weakref
from typing import Any

import ipywidgets as w

from ..result import Result
from ..session import Session
from ..views.grid import Grid
from .cards import close_tree
from .compare_view import CompareView
from .create import CreateTab
from .duel import DuelTab
from .files import FileServer
from .gallery import Gallery
from .history_view import HistoryView

TITLES = ("Create", "Gallery", "Compare", "History", "Duel")
CREATE, GALLERY, COMPARE, HISTORY, DUEL = range(len(TITLES))

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
        self.compare = CompareView(folder=session.runs_folder, session=session)
        self.history = HistoryView(session, on_load=self._load)
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
        self.header = w.HTML(self._header_text())
        self.files = FileServer()  # "open full size" and "download" links anywhere in the panel
        self.widget = w.VBox([self.header, self.tab, self.files])
        self._stop_header = session.on_job(self._watch_spending)
        self.create.on_sweep_done(self._show_grid)
        self.tab.observe(self._tab_changed, "selected_index")
        self.gallery.follow()
        _current = weakref.ref(self)

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

    def _header_text(self) -> str:
        """Where jobs go (never the key) and what this session has spent: teachers and students look here first."""
        from ..config import env_base_url, has_fal_credentials
        from ..endpoints import format_cost

        base = self.session.settings.base_url or env_base_url()
        keyless = self.session.settings.key is None and not has_fal_credentials()
        if self.session.backend == "sandbox" or (base is None and keyless):
            where = "<b>offline sandbox</b> · placeholder images, nothing charged · set FAL_KEY for real images"
        elif base:
            where = f"via {html.escape(base)}"
        else:
            where = "fal · key set"
        spent = self.session.budget()
        cap = spent.get("session_cap")
        money = f"spent {format_cost(spent['session'])}" + (f" of {format_cost(cap)}" if cap else "")
        return f'<div style="font:12px sans-serif;opacity:.8">kontext_nb · {where} · {money} this session</div>'

    def _watch_spending(self, job: Any) -> None:
        def refresh(j: Any, status: Any) -> None:
            if status.finished and not self.closed:
                self.header.value = self._header_text()

        job.on_update(refresh)
        if job.done():
            refresh(job, job.status)

    # -- display and lifetime ----------------------------------------------------------------------------
    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def close(self) -> None:
        """Stop following the session, stop the ticker, close every widget. Jobs in flight go on running."""
        global _current
        if self.closed:
            return
        self.closed = True
        self._stop_header()
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
