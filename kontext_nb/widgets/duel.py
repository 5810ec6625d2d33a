"""The duel view: a blind pairwise vote as an anywidget (``kx.duel(refs)``, ``%kontext duel``, the panel's Duel tab).

Two results at a time, side by side, in random order, with nothing but the pictures until the vote; ← → pick a
winner and = a tie, in the browser (duel.js), so a vote is one message to the kernel. The kernel records it and
answers with the next pair (the one that teaches the most, see ``judging.ranking.next_pair``) and reveals the
voted pair's references, prompts, seeds and settings. Votes go wherever the source records them: the runs
folder's journal (``LocalDuel``) or a classroom proxy.
"""

from __future__ import annotations

import html
from typing import Any

import anywidget
import traitlets

from ..errors import KontextError
from ..judging.duel import DuelSource, LocalDuel, Pair
from ..session import Session
from . import front, theme
from .frontends import in_notebook, needs_notebook

RECENT = 12
"""kx.duel() with no references duels the last this-many finished results."""


class DuelView(anywidget.AnyWidget):
    """A blind duel over a ``DuelSource``. ``choose("left" | "right" | "tie")`` votes as the keys do."""

    _esm = front.esm("duel.js")
    _css = front.css("duel.css")
    title = traitlets.Unicode("blind duel: ← left · → right · = tie").tag(sync=True)
    """Shown above the pair."""
    number = traitlets.Int(0).tag(sync=True)
    """The pair on show (1, 2, ...); 0 when there is nothing to show."""
    voted = traitlets.Int(0).tag(sync=True)
    """Votes given in this view."""
    left_image = traitlets.Bytes(b"").tag(sync=True)
    """The left image (JPEG bytes, sent as a binary buffer)."""
    right_image = traitlets.Bytes(b"").tag(sync=True)
    """The right image."""
    last = traitlets.Dict().tag(sync=True)
    """The pair voted last, revealed: {"left": {...}, "right": {...}, "choice": "left" | "right" | "tie"}."""
    message = traitlets.Unicode("").tag(sync=True)
    """An error or a note, shown inside the view."""

    def __init__(self, source: DuelSource, **kwargs: Any) -> None:
        unknown = set(kwargs) - {"title"}
        if unknown:
            raise TypeError(f"DuelView() got unexpected keyword argument(s): {', '.join(sorted(unknown))}")
        super().__init__(**kwargs)
        self.source = source
        self.pair: Pair | None = None
        self.on_msg(self._on_message)
        self.advance()

    def advance(self) -> None:
        """Show the next pair."""
        try:
            pair = self.source.next_pair()
        except KontextError as exc:
            self.message = str(exc)
            return
        self.pair = pair
        with self.hold_sync():
            self.left_image = pair.left.image if pair else b""
            self.right_image = pair.right.image if pair else b""
            self.message = "" if pair else "no pair left to judge: thank you"
            self.number = pair.number if pair else 0

    def choose(self, choice: str) -> None:
        """Vote on the pair on show and move on to the next."""
        pair = self.pair
        if pair is None:
            self.message = "nothing to vote on"
            return
        try:
            revealed = self.source.vote(pair, choice)
        except KontextError as exc:
            self.message = str(exc)
            return
        left, right = revealed or (pair.left.reveal, pair.right.reveal)
        self.voted += 1
        self.last = {"left": left, "right": right, "choice": choice}
        self.advance()

    def _on_message(self, widget: Any, content: Any, buffers: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "vote" and content.get("number") == self.number:
            self.choose(str(content.get("choice")))

    def __repr__(self) -> str:
        """What a terminal prints: one line saying where the duel can be seen, and what works here instead."""
        return needs_notebook(
            f"blind duel (pair {self.number}, {self.voted} votes here)",
            "vote with kx.vote('@3', '@5') and see kx.ranking()",
        )

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The widget, plus plain HTML for a saved notebook read with no kernel; in a terminal, one line."""
        if not in_notebook():
            return {"text/plain": repr(self)}, {}
        bundle = super()._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        if isinstance(data, dict):
            data["text/html"] = (
                '<div style="font:12px sans-serif;opacity:.75">kontext_nb blind duel '
                f"({html.escape(str(self.voted))} votes here): run the cell with a kernel to vote; "
                "kx.ranking() shows the result</div>"
            )
        return bundle


def duel(refs: Any = None, *, voter: str | None = None, session: Session | None = None) -> DuelView:
    """A blind duel over results: ``kx.duel(["@3", "@5", "@7"])``, a History, or None for the last 12 finished.

    Keys ← → pick the winner and = a tie (click the view first); votes are journal rows under ``voter``
    (default: the login name). ``kx.ranking()`` ranks what was voted on. In a classroom (the session's base URL
    is the class proxy) ``kx.duel()`` with no references joins the duel the instructor started: the pairs come
    from the class's images and the votes are recorded on the proxy, one per student per pair.
    """
    if session is None:
        from .. import api

        session = api.get_session()
    from ..judging.report import records_of

    if refs is None:
        joined = class_duel(session)
        if joined is not None:
            return joined

    tracker = session.tracker
    records = tracker.journal.search(status="done", limit=RECENT) if refs is None else records_of(tracker, refs)
    return DuelView(LocalDuel(tracker.journal, records, voter=voter, session=tracker.session_id))


def class_duel(session: Session) -> DuelView | None:
    """The class duel the instructor runs, when the session's base URL is a classroom proxy running one."""
    import os

    from ..config import env_base_url
    from ..judging.classroom import ClassDuel

    base = session.settings.base_url or env_base_url()
    key = session.settings.key or os.environ.get("FAL_KEY")
    if not base or not key:
        return None
    found = ClassDuel.running(base, key)
    return DuelView(found, title="class duel: ← left · → right · = tie") if found is not None else None


class DuelTab:
    """The panel's Duel tab: a blind duel over the last finished results (more with the count), started on
    first view or with "new duel"."""

    def __init__(self, session: Session) -> None:
        import ipywidgets as w

        self.session = session
        self.count = w.BoundedIntText(value=RECENT, min=2, max=200, description="last", layout=w.Layout(width="140px"))
        self.voter = w.Text(placeholder="your name (optional)", layout=w.Layout(width="200px"))
        self.start = w.Button(
            description="new duel",
            icon="random",
            tooltip="a blind duel over the last results",
            layout=w.Layout(width="auto", flex="0 0 auto"),
        )
        self.start.on_click(lambda _: self.new_duel())
        self.message = w.HTML()
        self.area = w.VBox()
        self.ranking = w.HTML()
        """The results of this duel ranked from the journal's votes (Bradley–Terry), refreshed after each vote."""
        self.view: DuelView | None = None
        bar = w.HBox([self.count, self.voter, self.start], layout=w.Layout(flex_flow="row wrap"))
        self.widget = w.VBox([bar, self.message, self.area, self.ranking])

    def show(self) -> None:
        """The tab came into view: start a duel if none is running."""
        if self.view is None:
            self.new_duel()

    def new_duel(self) -> DuelView | None:
        """A class duel when the session is on a classroom proxy running one, else one over the last results."""
        from ..judging.duel import LocalDuel

        joined = class_duel(self.session)
        if joined is not None:
            self.close_view()
            self.message.value = ""
            self.view = joined
            self.area.children = (joined,)
            return joined
        tracker = self.session.tracker
        records = tracker.journal.search(status="done", limit=int(self.count.value))
        try:
            source = LocalDuel(
                tracker.journal, records, voter=self.voter.value.strip() or None, session=tracker.session_id
            )
        except KontextError as exc:
            self.message.value = f'<span style="font:12px sans-serif;opacity:.8">{html.escape(str(exc))}</span>'
            return None
        self.close_view()
        self.message.value = ""
        self.view = DuelView(source)
        self.area.children = (self.view,)
        ids = [r.id for r in records if r.id in source.records]
        self.view.observe(lambda _: self._rank(ids), "voted")
        self._rank(ids)
        return self.view

    def _rank(self, ids: list[int]) -> None:
        """The ranking below the duel: best first, with each score's uncertainty and its wins, losses and ties."""
        from ..judging.ranking import fit

        votes = self.session.tracker.journal.votes(ids)
        self.ranking.value = ranking_html(ids, fit(ids, votes)) if votes else ""

    def close_view(self) -> None:
        self.ranking.value = ""
        if self.view is not None:
            self.view.close()
            self.view = None
        self.area.children = ()

    def close(self) -> None:
        self.close_view()
        self.widget.close()


def ranking_html(ids: list[int], found: Any) -> str:
    """A small table of a Bradley–Terry fit (judging.ranking.Fit), best first; what kx.ranking() returns."""
    order = sorted(range(len(ids)), key=lambda k: -float(found.score[k]))
    cell = f"padding:1px 8px;border-bottom:1px solid {theme.LINE};text-align:left"
    head = "".join(f'<th style="{cell}">{name}</th>' for name in ("", "result", "score", "wins · losses · ties"))
    rows = []
    for place, k in enumerate(order, 1):
        score = f"{float(found.score[k]):+.2f} ± {float(found.uncertainty[k]):.2f}"
        record = f"{int(found.wins[k])} · {int(found.losses[k])} · {int(found.ties[k])}"
        values = (str(place), f"@{ids[k]}", score, record)
        rows.append("<tr>" + "".join(f'<td style="{cell}">{html.escape(v)}</td>' for v in values) + "</tr>")
    return (
        f'<div class="kx-duel-ranking" style="font:12px sans-serif;color:{theme.TEXT};margin-top:8px">'
        f'<div style="color:{theme.MUTED}">ranking of this duel\'s results (kx.ranking() has it as a table)</div>'
        f'<table style="border-collapse:collapse"><tr>{head}</tr>{"".join(rows)}</table></div>'
    )
