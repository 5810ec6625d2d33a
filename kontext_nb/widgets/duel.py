"""The duel view: a blind pairwise vote as an anywidget (``kx.duel(refs)``, ``%kontext duel``, the panel's Duel tab).

Two results at a time, side by side, in random order, with nothing but the pictures until the vote; ← → pick a
winner and = a tie, in the browser (duel.js), so a vote is one message to the kernel. The kernel records it and
reveals the voted pair's references, prompts, seeds and settings. The next pair (the one that teaches the most, see
``judging.ranking.next_pair``) does not wait for that: with each pair the kernel sends ahead the pair that would
follow each of the three choices (``upcoming``; their images as buffers, most of them already in the browser), so
the browser shows the next pair the moment a key is pressed and the vote travels behind it. A source that cannot
say its next pairs ahead (a classroom proxy's duel) answers each vote with the next pair instead. Votes go wherever
the source records them: the runs folder's journal (``LocalDuel``) or a classroom proxy.
"""

from __future__ import annotations

import html
import logging
from typing import Any

import anywidget
import ipywidgets as w
import traitlets

from ..errors import KontextError
from ..judging.duel import DuelSource, LocalDuel, Pair
from ..session import Session
from . import front, theme
from .frontends import in_notebook, needs_notebook

log = logging.getLogger(__name__)
RECENT = 12
"""kx.duel() with no references duels the last this-many finished results."""


class DuelView(anywidget.AnyWidget):
    """A blind duel over a ``DuelSource``. ``choose("left" | "right" | "tie")`` votes as the keys do."""

    _esm = front.esm("images.js", "duel.js")
    _css = front.css("duel.css")
    title = traitlets.Unicode("blind duel: ← left · → right · = tie").tag(sync=True)
    """Shown above the pair."""
    number = traitlets.Int(0).tag(sync=True)
    """The pair on show (1, 2, ...); 0 when there is nothing to show."""
    voted = traitlets.Int(0).tag(sync=True)
    """Votes given in this view."""
    shown = traitlets.Dict().tag(sync=True, **w.widget_serialization)
    """The pair on show: {"left": ImageBuffer, "right": ImageBuffer} ({} when there is none). Buffers carry no
    name, reference or prompt: nothing but the pictures until the vote."""
    upcoming = traitlets.Dict().tag(sync=True, **w.widget_serialization)
    """The pair that follows each choice on pair ``after``: {"after": n, "left": {"left": ..., "right": ...},
    "right": {...}, "tie": {...}}; {} when the source cannot say it ahead."""
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
        self.next_pairs: dict[str, Pair] = {}
        """The pairs sent ahead, by the choice that leads to each (see ``upcoming``)."""
        self._buffers: dict[tuple[str, int], front.ImageBuffer] = {}
        """(contender key, hash of its image bytes) -> the buffer the browser has: each image is sent once."""
        self._revealed: list[front.ImageBuffer] = []
        """The voted pair's buffers, which its reveal shows."""
        self.on_msg(front.Serial(self._on_message))  # one vote at a time, in order
        self.advance()

    @property
    def left_image(self) -> bytes:
        """The left image on show (JPEG bytes)."""
        return self.pair.left.image if self.pair else b""

    @property
    def right_image(self) -> bytes:
        return self.pair.right.image if self.pair else b""

    def advance(self) -> None:
        """Show the next pair the source gives."""
        try:
            pair = self.source.next_pair()
        except KontextError as exc:
            self.message = str(exc)
            return
        self._show(pair, "" if pair else "no pair left to judge: thank you")

    def _show(self, pair: Pair | None, message: str = "") -> None:
        """Put ``pair`` on show, with the pairs that follow it sent ahead (when the source can say them)."""
        self.pair = pair
        ahead = getattr(self.source, "upcoming", None)
        try:
            self.next_pairs = ahead(pair) if pair is not None and ahead is not None else {}
        except Exception:  # nothing sent ahead: the next vote still works, with the round trip
            log.exception("the duel's next pairs could not be prepared")
            self.next_pairs = {}
        with self.hold_sync():
            self.shown = self._images(pair) if pair else {}
            self.upcoming = (
                {"after": pair.number, **{c: self._images(p) for c, p in self.next_pairs.items()}}
                if pair and self.next_pairs
                else {}
            )
            self.message = message
            self.number = pair.number if pair else 0
        self._let_go()

    def _images(self, pair: Pair) -> dict[str, front.ImageBuffer]:
        return {
            "left": self._buffer(pair.left.key, pair.left.image),
            "right": self._buffer(pair.right.key, pair.right.image),
        }

    def _buffer(self, key: str, image: bytes) -> front.ImageBuffer:
        found = self._buffers.get((key, hash(image)))
        if found is None:
            found = self._buffers[(key, hash(image))] = front.ImageBuffer(value=image, name="duel.jpg")
        return found

    def _let_go(self) -> None:
        """Buffers no longer needed (not on show, not sent ahead, not in the reveal of the last vote) are closed."""
        keep = {id(b) for b in self.shown.values()}
        keep |= {id(b) for v in self.upcoming.values() if isinstance(v, dict) for b in v.values()}
        keep |= {id(b) for b in self._revealed}
        for key, buffer in list(self._buffers.items()):
            if id(buffer) not in keep:
                del self._buffers[key]
                buffer.close()

    def choose(self, choice: str) -> None:
        """Vote on the pair on show and move on to the next: the one sent ahead for this choice, if any."""
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
        self._revealed = list(self._images(pair).values())
        self.voted += 1
        self.last = {"left": left, "right": right, "choice": choice}
        promised = self.next_pairs.get(choice)
        if promised is not None:
            getattr(self.source, "accept", lambda _: None)(promised)
            self._show(promised)
        else:
            self.advance()

    def _on_message(self, widget: Any, content: Any, buffers: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "vote" and content.get("number") == self.number:
            try:
                self.choose(str(content.get("choice")))
            except Exception as exc:  # shown in the view, which goes back to the kernel's pair
                log.exception("a duel vote failed")
                self.message = f"the vote was not recorded: {exc}"

    def close(self) -> None:
        buffers = getattr(self, "_buffers", {})  # a view whose __init__ failed is closed by ipywidgets' __del__
        for buffer in buffers.values():
            buffer.close()
        buffers.clear()
        super().close()

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
