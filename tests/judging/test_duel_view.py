"""Point 2 (the view, without a browser): DuelView's pairs, votes, reveals and errors; the panel's Duel tab;
the magics; stars on cards and in the compare view."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from shell import Shell

import kontext_nb as kx
from kontext_nb.result import Result
from kontext_nb.session import Session
from kontext_nb.widgets.compare_view import CompareView
from kontext_nb.widgets.duel import DuelView
from kontext_nb.widgets.panel import DUEL, Panel
from kontext_nb.widgets.rating import RatingStars


def test_a_duel_shows_two_hidden_results_and_records_votes(made: Callable[..., list[Result]], judged: Session) -> None:
    results = made(4)
    view = kx.duel([r.ref for r in results], voter="ada")
    assert isinstance(view, DuelView)
    assert view.number == 1 and view.left_image[:3] == b"\xff\xd8\xff" and view.right_image[:3] == b"\xff\xd8\xff"
    state = view.get_state()
    # nothing but the pictures until the vote: no reference, prompt or seed in what the browser gets
    shown = repr({k: v for k, v in state.items() if k not in ("left_image", "right_image")})
    assert "lighthouse" not in shown and "@" not in shown and view.last == {}
    left_key, right_key = view.pair.left.key, view.pair.right.key  # type: ignore[union-attr]
    view._on_message(view, {"type": "vote", "choice": "right", "number": 1}, [])  # what the browser sends
    votes = judged.tracker.journal.votes()
    assert [(f"@{v.winner_id}", f"@{v.loser_id}", v.tie, v.voter) for v in votes] == [
        (right_key, left_key, False, "ada")
    ]
    assert view.number == 2 and view.voted == 1
    assert view.last["choice"] == "right" and view.last["right"]["ref"] == right_key
    assert view.last["left"]["prompt"] == "a lighthouse" and "seed" in view.last["left"]
    view._on_message(view, {"type": "vote", "choice": "left", "number": 1}, [])  # a stale pair: ignored
    assert len(judged.tracker.journal.votes()) == 1
    view.choose("tie")
    assert judged.tracker.journal.votes()[-1].tie and view.number == 3
    view.choose("sideways")
    assert "sideways" in view.message and len(judged.tracker.journal.votes()) == 2
    # the first six pairs are the six different pairs of four results
    pairs = set()
    fresh = kx.duel([r.ref for r in results], voter="grace")
    for _ in range(6):
        pairs.add(frozenset((fresh.pair.left.key, fresh.pair.right.key)))  # type: ignore[union-attr]
        fresh.choose("left")
    assert len(pairs) == 6
    assert "needs a notebook front end" in fresh._repr_mimebundle_()[0]["text/plain"]  # no kernel here: one line


def test_a_duel_needs_two_results(made: Callable[..., list[Result]]) -> None:
    (r,) = made(1)
    with pytest.raises(kx.ValidationError, match="at least two"):
        kx.duel([r.ref])
    with pytest.raises(TypeError, match="colour"):
        DuelView(None, colour="red")  # type: ignore[arg-type]


def test_the_panel_has_a_duel_tab(made: Callable[..., list[Result]], judged: Session) -> None:
    panel = Panel(judged)
    try:
        assert panel.tab.titles[DUEL] == "Duel"
        panel.tab.selected_index = DUEL
        assert panel.duel.view is None and "at least two" in panel.duel.message.value
        made(3)
        view = panel.duel.new_duel()
        assert view is not None and view.number == 1
        view.choose("left")
        assert len(judged.tracker.journal.votes()) == 1
    finally:
        panel.close()
    assert panel.duel.view is None


def test_magics_duel_rate_ranking_changes_report(shell: Shell, tmp_path: object) -> None:
    shell.line("a lighthouse --seed 1 -o a")
    shell.line("a lighthouse --seed 2 -o b")
    shell.line("edit @1 make it night --seed 3")
    view = shell.line("duel @1 @2 --voter ada")
    assert isinstance(view, DuelView)
    view.choose("left")
    shell.line("rate @1 5")
    assert [r.id for r in kx.history(min_rating=5)] == [1]
    assert [r.id for r in shell.line("history --min-rating 4")] == [1]
    assert "min_rating=9 is not allowed: give a whole number from 1 to 5" in shell.usage_error("history --min-rating 9")
    table = shell.line("ranking")
    assert table["ref"].iloc[0] == view.last["left"]["ref"]
    found = shell.line("changes @3")
    assert 0 <= found.changed_fraction <= 1
    shell.line("report @1 @2 @3 -o out.html --size 128")
    assert "<!doctype html>" in (tmp_path / "out.html").read_text(encoding="utf-8")  # type: ignore[operator]
    assert "0 to 5" in shell.usage_error("rate @1 seven")
    assert "--zap" in shell.usage_error("report --zap")
    assert "@999" in shell.usage_error("duel @1 @999")


def test_stars_on_cards_and_in_the_compare_view(made: Callable[..., list[Result]], judged: Session) -> None:
    panel = Panel(judged)
    a, b = made(2)  # the gallery shows the session's new jobs
    try:
        card = next(c for c in panel.gallery.cards if c.journal_id == a.journal_id)
        assert isinstance(card.stars, RatingStars) and not card.stars.disabled
        card.stars.value = 4  # what a click in the browser does
        assert judged.tracker.journal.get(a.journal_id).rating == 4  # type: ignore[arg-type]
        assert kx.read_metadata(a.files[0])["rating"] == 4
    finally:
        panel.close()
    compare = CompareView(session=judged)
    compare.add(a)
    compare.add(b)
    stars = [row.children[1] for row in compare.stars.children]
    assert [s.value for s in stars] == [4, 0]
    stars[1].value = 2
    assert judged.tracker.journal.get(b.journal_id).rating == 2  # type: ignore[arg-type]
    assert "what changed" not in compare.before_after.value
    compare.changes.value = True
    assert compare.view.overlay is not None and "pHash" in compare.before_after.value  # the heat map, overlaid
    compare.close()


def test_the_duel_tab_ranks_its_results_after_each_vote(made: Callable[..., list[Result]], judged: Session) -> None:
    """Issue 22 point 5: the Duel tab shows the ranking (kx.ranking's numbers), best first, as votes come in."""
    panel = Panel(judged)
    try:
        made(3)
        view = panel.duel.new_duel()
        assert view is not None and panel.duel.ranking.value == ""
        assert view.pair is not None
        winner = view.pair.left.reveal["ref"]
        view.choose("left")
        shown = panel.duel.ranking.value
        assert "ranking" in shown and shown.index(winner) < min(
            shown.index(f"@{r.id}") for r in judged.tracker.journal.search(status="done") if f"@{r.id}" != winner
        ), "the winner of the only vote ranks first"
        assert "1 · 0 · 0" in shown
        view.choose("tie")
        assert "0 · 0 · 1" in panel.duel.ranking.value or "1 · 0 · 1" in panel.duel.ranking.value
    finally:
        panel.close()


def test_the_next_pair_is_sent_ahead_for_each_choice(made: Callable[..., list[Result]], judged: Session) -> None:
    """Issue 22 point 5: with each pair the browser already has the pair that follows each choice, so a key shows
    it at once; the kernel then records the vote and puts exactly that pair on show (nothing recorded ahead)."""
    results = made(5)
    view = kx.duel([r.ref for r in results], voter="ada")
    assert isinstance(view, DuelView)
    for round_ in range(6):
        up = view.upcoming
        assert up["after"] == view.number and set(up) == {"after", "left", "right", "tie"}
        assert len(judged.tracker.journal.votes()) == round_  # what was sent ahead recorded nothing
        choice = ("left", "right", "tie")[round_ % 3]
        promised = up[choice]
        ahead = view.next_pairs[choice]
        view._on_message(view, {"type": "vote", "choice": choice, "number": view.number}, [])
        assert view.number == round_ + 2 and view.pair == ahead
        assert view.shown["left"] is promised["left"] and view.shown["right"] is promised["right"]
        assert view.shown["left"].value == ahead.left.image  # the same bytes: nothing sent again
    state = repr(view.get_state())
    assert "@" not in state.replace(repr(view.last), "") and "lighthouse" not in state.replace(repr(view.last), "")
    live = {id(b) for b in view._buffers.values()}
    assert len(live) <= 2 + 6 + 2, "only the pair on show, those sent ahead and the one just voted are kept"
    view.close()
    assert all(b.comm is None for b in view._buffers.values())
