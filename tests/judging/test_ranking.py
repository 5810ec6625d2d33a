"""Point 2 (without the view): kx.vote, kx.ranking (Bradley–Terry), which pair comes next, several voters."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import numpy as np
import pytest

import kontext_nb as kx
from kontext_nb.errors import ValidationError
from kontext_nb.journal.db import Vote
from kontext_nb.judging import ranking
from kontext_nb.result import Result

COLUMNS = ["ref", "score", "uncertainty", "wins", "losses", "ties", "comparisons", "model"]


def simulate(strengths: list[float], n: int, seed: int) -> list[tuple[int, int]]:
    """(winner index, loser index) for n votes between random pairs, drawn from the Bradley–Terry model."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        i, j = rng.sample(range(len(strengths)), 2)
        p = 1 / (1 + math.exp(-(strengths[i] - strengths[j])))
        out.append((i, j) if rng.random() < p else (j, i))
    return out


def test_the_ranking_recovers_a_known_order_from_simulated_votes(made: Callable[..., list[Result]]) -> None:
    results = made(6)
    strengths = [0.2, 2.0, -1.0, 1.1, -2.2, 0.6]  # the true order: 1, 3, 5, 0, 2, 4
    for i, j in simulate(strengths, 600, seed=7):
        kx.vote(results[i], results[j], voter=f"student{(i + j) % 4}")
    table = kx.ranking()
    assert list(table.columns) == COLUMNS
    truth = [results[k].ref for k in sorted(range(6), key=lambda k: -strengths[k])]
    assert list(table["ref"]) == truth
    assert list(table["score"]) == sorted(table["score"], reverse=True)
    assert (table["wins"] + table["losses"] + table["ties"] == table["comparisons"]).all()
    assert table["comparisons"].sum() == 2 * 600
    # the fitted differences are close to the true ones (natural-log units)
    fitted = dict(zip(table["ref"], table["score"], strict=True))
    spread = [fitted[results[k].ref] - fitted[results[0].ref] for k in range(6)]
    assert np.allclose(spread, [s - strengths[0] for s in strengths], atol=0.45)
    assert (table["uncertainty"] > 0).all() and (table["uncertainty"] < 0.5).all()


def test_ranking_of_some_refs_and_ties(made: Callable[..., list[Result]]) -> None:
    a, b, c = made(3)
    kx.vote(a, b)
    kx.vote(a, b)
    kx.vote(b, c, tie=True)
    kx.vote(c, a)
    table = kx.ranking([a.ref, b.ref])  # only votes between the two count
    assert list(table["ref"]) == [a.ref, b.ref]
    assert table.iloc[0][["wins", "losses", "ties", "comparisons"]].tolist() == [2, 0, 0, 2]
    whole = kx.ranking().set_index("ref")
    assert whole.loc[b.ref, "ties"] == 1 and whole.loc[c.ref, "ties"] == 1
    assert whole.loc[c.ref, "wins"] == 1


def test_more_votes_mean_less_uncertainty() -> None:
    ids = [1, 2, 3]
    few = [Vote(k, 0, 1 + k % 3, 1 + (k + 1) % 3, False, "v", None) for k in range(6)]
    many = few * 10
    assert (ranking.fit(ids, many).uncertainty < ranking.fit(ids, few).uncertainty).all()


def test_an_unbeaten_result_has_a_finite_score() -> None:
    votes = [Vote(k, 0, 1, 2, False, "v", None) for k in range(20)]
    result = ranking.fit([1, 2], votes)
    assert np.isfinite(result.score).all() and result.score[0] > result.score[1]


def test_the_next_pair_is_the_closest_in_score_and_never_repeats_for_a_voter() -> None:
    ids = [1, 2, 3, 4]
    # 1 beat 2 and 3 beat 4 five times each: 1 and 3 score alike, as do 2 and 4, and neither pair has met
    votes = [Vote(k, 0, 1, 2, False, "a", None) for k in range(5)] + [
        Vote(10 + k, 0, 3, 4, False, "a", None) for k in range(5)
    ]
    rng = random.Random(3)
    chosen = {frozenset(ranking.next_pair(ids, votes, "b", rng) or ()) for _ in range(10)}
    assert chosen <= {frozenset({1, 3}), frozenset({2, 4})}, chosen
    # a voter is not asked the same pair again until every pair has been seen
    seen: list[frozenset[int]] = []
    mine: list[Vote] = []
    for k in range(6):
        pair = ranking.next_pair(ids, mine, "c", rng)
        assert pair is not None
        seen.append(frozenset(pair))
        mine.append(Vote(k, 0, pair[0], pair[1], False, "c", None))
    assert len(set(seen)) == 6


def test_votes_record_who_and_when(made: Callable[..., list[Result]], judged: kx.Session) -> None:
    a, b = made(2)
    kx.vote(a, b, voter="ada")
    kx.vote(b, a, voter="grace")
    votes = judged.tracker.journal.votes()
    assert [v.voter for v in votes] == ["ada", "grace"]
    assert all(v.created > 0 and v.session == judged.tracker.session_id for v in votes)


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda a, b: kx.vote(a, a), "two different"),
        (lambda a, b: kx.vote(a, b, tie="yes"), "tie='yes'"),  # type: ignore[arg-type]
        (lambda a, b: kx.vote(a, b, voter=""), "voter=''"),
        (lambda a, b: kx.vote(a, "@999"), "@999"),
    ],
)
def test_bad_votes_are_refused_in_one_line(made: Callable[..., list[Result]], call: object, words: str) -> None:
    a, b = made(2)
    with pytest.raises(kx.KontextError) as info:
        call(a, b)  # type: ignore[operator]
    assert words in str(info.value) and "\n" not in str(info.value)
    assert isinstance(info.value, (ValidationError, kx.JournalError))
