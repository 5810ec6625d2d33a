"""The panel's gallery: every job of the session as a card, newest first, each updating itself.

Jobs reach it from the panel (``add_job``) and, once it follows the session, from magics and
``kx.generate`` calls in the same kernel too. A job announced both ways gets one card. A new card is outlined
until the gallery is left, and the grid scrolls to it and flashes it (``Reveal``, in the browser): at once when
the gallery is shown, else when the user comes back to it, so nothing moves while they type in Create.
"""

from __future__ import annotations

import html
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

import ipywidgets as w

from ..jobs import Job
from ..result import Result
from . import theme
from .cards import CARD, CARD_WIDTH, Card, ResultCallback, close_tree
from .reveal import Reveal

TICK = 1.0
"""Seconds between refreshes of the elapsed time on running cards."""
PAGE = 48
"""Results read from the journal at a time: the newest when the gallery opens, older ones on request."""
NEW = "kontext-new"
HIDDEN = "kx-filtered-out"
"""A card the Gallery's search or rating filter leaves out."""
RATINGS = [
    ("any rating", 0),
    ("★ or more", 1),
    ("★★ or more", 2),
    ("★★★ or more", 3),
    ("★★★★ or more", 4),
    ("★★★★★", 5),
]
GRID_HEIGHT = "max(920px, calc(100vh - 140px))"
"""The grid's scroll box: two rows of cards at least, the window's height less the tab bar where that is more."""
TWO_CARDS = 2 * (CARD_WIDTH + 8)
ONE_CARD = 400
"""The grid's widths below which two full-width cards no longer share a row, and two narrowed ones would be cramped."""
STYLE = (
    f"<style>.{NEW}{{outline:3px solid {theme.ACCENT};outline-offset:1px}}.{HIDDEN}{{display:none!important}}"
    ".kontext-gallery-grid{overflow-anchor:none;container-type:inline-size}"
    f"@container (max-width:{TWO_CARDS - 1}px){{.{CARD}{{width:calc(50% - 9px)!important}}}}"
    f"@container (max-width:{ONE_CARD - 1}px){{.{CARD}{{width:min(calc(100% - 8px),{CARD_WIDTH}px)!important}}}}"
    "</style>"
)
"""New cards stand out; the grid does not hold its scroll position when cards arrive above (Reveal scrolls); a
narrow grid (a 900 px notebook beside JupyterLab's file browser) narrows its cards to two a row, not one."""

if TYPE_CHECKING:
    from ..session import Session


class Gallery:
    """A scrollable grid of result cards (newest first) with per-card actions the panel wires up."""

    def __init__(
        self,
        session: Session,
        *,
        on_use_as_input: ResultCallback | None = None,
        on_reuse_seed: ResultCallback | None = None,
        on_compare: ResultCallback | None = None,
        max_cards: int = 500,
        page_size: int = PAGE,
    ) -> None:
        if max_cards < 1:
            raise ValueError(f"max_cards={max_cards} must be at least 1")
        self.session = session
        self.max_cards = max_cards
        self.page_size = page_size
        self._loaded = 0
        """Journal rows read so far (load_recent / older)."""
        self._new: list[Card] = []
        self._new_listeners: list[Callable[[int], None]] = []
        self._made_listeners: list[Callable[[Job], None]] = []
        self.cards: list[Card] = []
        """Newest first."""
        self._on_use_as_input, self._on_reuse_seed, self._on_compare = on_use_as_input, on_reuse_seed, on_compare
        self._by_job: weakref.WeakKeyDictionary[Job, Card] = weakref.WeakKeyDictionary()
        self._by_journal: dict[int, Card] = {}
        self._lock = threading.RLock()
        self._unfollow: Callable[[], None] | None = None
        self._closed = False
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()
        self.header = w.HTML()
        self.grid = w.Box(
            layout=w.Layout(
                display="flex",
                flex_flow="row wrap",
                align_items="flex-start",
                max_height=GRID_HEIGHT,
                overflow="auto",
                padding="6px 0 0 6px",  # room for a new card's outline and flash at the grid's edges
            )
        )
        self.grid.add_class("kontext-gallery-grid")
        self.reveal = Reveal()
        """Scrolls the grid to a new card and flashes it, in the browser."""
        self.older = w.Button(description="older results", icon="history", layout=w.Layout(display="none"))
        self.older.on_click(lambda _: self.load_recent())
        self.search = w.Text(
            placeholder="search prompts (or a seed)",
            continuous_update=False,
            layout=w.Layout(width="240px", flex="0 1 auto"),
        )
        self.min_rating = w.Dropdown(options=RATINGS, value=0, layout=w.Layout(width="120px", flex="0 0 auto"))
        """Gallery search and rating filter (History has the same in its filters): cards that do not match hide."""
        self.search.observe(lambda _: self.filter(), "value")
        self.min_rating.observe(lambda _: self.filter(), "value")
        self._shown: set[int] | None = None
        """Journal ids matching the filter (None: no filter)."""
        filters = w.HBox([self.search, self.min_rating], layout=w.Layout(flex_flow="row wrap", grid_gap="6px"))
        self.widget = w.VBox([self.header, filters, self.reveal, self.grid, self.older])
        self.widget.add_class("kontext-gallery")
        self._update_header()

    def _new_card(self, *, job: Job | None = None, result: Result | None = None) -> Card:
        return Card(
            self.session,
            job=job,
            result=result,
            on_use_as_input=self._on_use_as_input,
            on_reuse_seed=self._on_reuse_seed,
            on_compare=self._on_compare,
            on_new_job=self._made,
        )

    def add_job(self, job: Job) -> Card:
        """A card that shows the job queued, then running, then its result or its error, on its own."""
        with self._lock:
            card = self._existing(job.journal_id, job)
            if card is not None and card.job is not job and card.job is not None and card.job.state == "failed":
                # the same journal job collected again (kx.resume): the new job takes the old card's place
                fresh = self._new_card(job=job)
                self._by_job[job] = fresh
                self._swap(card, fresh)
                card = fresh
            elif card is None:
                card = self._new_card(job=job)
                self._by_job[job] = card
                self._insert(card)
            if card.running:
                self._ensure_ticker()
            return card

    def add_result(self, result: Result) -> Card:
        """A card for a finished result (one already in the gallery keeps its card)."""
        with self._lock:
            card = self._existing(result.journal_id, None)
            if card is None:
                card = self._new_card(result=result)
                self._insert(card)
            return card

    def load_recent(self) -> int:
        """The journal's next page of finished results (newest first) as cards below those shown: a new kernel's
        gallery is not an empty page. Thumbnails are the small JPEGs saved beside the images. Returns how many."""
        records = [r for r in self.session.history(status="done", limit=self._loaded + self.page_size)[self._loaded :]]
        self._loaded += len(records)
        added = 0
        for record in records:
            with self._lock:
                if self._closed or len(self.cards) >= self.max_cards:
                    break
                if record.id in self._by_journal or not record.files:
                    continue
                card = Card(
                    self.session,
                    record=record,
                    on_use_as_input=self._on_use_as_input,
                    on_reuse_seed=self._on_reuse_seed,
                    on_compare=self._on_compare,
                    on_new_job=self._made,
                )
                self.cards.append(card)
                self._by_journal[record.id] = card
                added += 1
        with self._lock:
            if not self._closed:
                self._lay_out()
                full = len(records) == self.page_size and len(self.cards) < self.max_cards
                self.older.layout.display = "" if full else "none"
                self._update_header()
        return added

    def _made(self, job: Job) -> Card:
        card = self.add_job(job)
        for listener in list(self._made_listeners):
            listener(job)
        return card

    def on_made(self, listener: Callable[[Job], None]) -> None:
        """Call ``listener(job)`` for each job a card's own button starts (rerun): made in the panel."""
        self._made_listeners.append(listener)

    def on_new(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(count)`` when new cards arrive or are seen (count: new cards not yet seen)."""
        self._new_listeners.append(listener)

    def seen(self) -> None:
        """The new cards were looked at: they stop standing out."""
        with self._lock:
            new, self._new = self._new, []
        for card in new:
            card.widget.remove_class(NEW)
        for listener in list(self._new_listeners):
            listener(0)

    def follow(self) -> None:
        """Show every job the session starts from now on, from any cell, magic or the panel."""
        with self._lock:
            if self._unfollow is None and not self._closed:
                self._unfollow = self.session.on_job(self._announced)

    def unfollow(self) -> None:
        with self._lock:
            if self._unfollow is not None:
                self._unfollow()
                self._unfollow = None

    @property
    def following(self) -> bool:
        return self._unfollow is not None

    def close(self) -> None:
        """Stop following the session and close every widget (a re-created panel leaks no handlers)."""
        with self._lock:
            self.unfollow()
            self._closed = True
            self._stop.set()
            for card in self.cards:
                card.close()
            self.cards.clear()
            self._by_journal.clear()
            self._new.clear()
            self._new_listeners.clear()
            self._made_listeners.clear()
            close_tree(self.widget)

    # -- inside ---------------------------------------------------------------------------------------
    def _announced(self, job: Job) -> None:
        if not self._closed:
            self.add_job(job)

    def _ensure_ticker(self) -> None:
        if self._ticker is None:
            self._ticker = threading.Thread(target=self._tick, name="kontext-gallery-ticker", daemon=True)
            self._ticker.start()

    def _tick(self) -> None:
        """One thread for all running cards; it ends when none is left and starts again with the next job."""
        while not self._stop.wait(TICK):
            with self._lock:
                running = [card for card in self.cards if card.running]
                if not running:
                    self._ticker = None
                    return
            for card in running:
                card.tick()

    def _existing(self, journal_id: int | None, job: Job | None) -> Card | None:
        card = self._by_job.get(job) if job is not None else None
        if card is None and journal_id is not None:
            card = self._by_journal.get(journal_id)
        return card

    def _swap(self, old: Card, new: Card) -> None:
        self.cards[self.cards.index(old)] = new
        if new.journal_id is not None:
            self._by_journal[new.journal_id] = new
        self._lay_out()
        old.close()

    def _insert(self, card: Card) -> None:
        if self._closed:
            raise RuntimeError("this gallery is closed")
        self.cards.insert(0, card)
        if card.journal_id is not None:
            self._by_journal[card.journal_id] = card
        card.widget.add_class(NEW)
        self._new.append(card)
        dropped = self.cards[self.max_cards :]
        del self.cards[self.max_cards :]
        self._lay_out()
        for old in dropped:
            if self._by_journal.get(old.journal_id) is old:  # type: ignore[arg-type]
                del self._by_journal[old.journal_id]  # type: ignore[arg-type]
            old.close()
        self._new = [c for c in self._new if c not in dropped]
        self._update_header()
        self.reveal.show(card.css_class)
        for listener in list(self._new_listeners):
            listener(len(self._new))

    def _lay_out(self) -> None:
        """Every card in the one scrolling grid, newest first; those the filter leaves out hidden."""
        for card in self.cards:
            self._show_if_matching(card)
        self.grid.children = tuple(c.widget for c in self.cards)

    def filter(self) -> None:
        """Apply the search text and the rating filter (the journal answers: prompt words, or a seed)."""
        text, stars = self.search.value.strip(), int(self.min_rating.value)
        if not text and not stars:
            self._shown = None
        else:
            journal = self.session.tracker.journal
            found = journal.search(search=text or None, min_rating=stars or None)
            if text.isdigit():
                found += journal.search(seed=int(text), min_rating=stars or None)
            self._shown = {r.id for r in found}
        with self._lock:
            for card in self.cards:
                self._show_if_matching(card)
        self._update_header()

    def _show_if_matching(self, card: Card) -> None:
        hidden = self._shown is not None and card.journal_id is not None and card.journal_id not in self._shown
        if hidden:  # a class, not layout.display: the cards share one Layout
            card.widget.add_class(HIDDEN)
        else:
            card.widget.remove_class(HIDDEN)

    def _update_header(self) -> None:
        n = len(self.cards)
        text = f"{n} result{'s' if n != 1 else ''}, newest first" if n else "no results yet: jobs appear here"
        if self._shown is not None:
            matching = sum(c.journal_id is None or c.journal_id in self._shown for c in self.cards)
            text = f"{matching} of {n} shown (filtered), newest first"
        if n == self.max_cards:
            text += f" (the newest {self.max_cards} are kept)"
        self.header.value = f'{STYLE}<div style="font:12px sans-serif;color:{theme.MUTED}">{html.escape(text)}</div>'
