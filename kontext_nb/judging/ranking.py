"""Bradley–Terry ranking from blind pairwise votes, and which pair to show next.

Why Bradley–Terry and not Elo: Elo updates after each vote with a step size (K) and its result depends on the
order the votes came in; with the few dozen votes a notebook or a class gives, that order noise is as large as
the differences being measured. Bradley–Terry fits all the votes at once (the same votes in any order give the
same ranking) and its curvature gives each score an uncertainty.

The model: P(i beats j) = 1 / (1 + exp(-(s_i - s_j))). ``score`` is s (natural-log units, centred on 0); a
difference of 1 means the better one wins about 73% of the time. A tie counts as half a win for each side
(Rao–Kupper or Davidson would add a tie parameter, which a few dozen votes cannot pin down). A weak Gaussian
prior (sd 2) keeps an image that won every duel finite; the fit is its maximum a posteriori, found by Newton's
method (the log-posterior is strictly concave, so it converges in a handful of steps), and ``uncertainty`` is
the standard error of each centred score from the inverse of the negative Hessian there.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from ..errors import PandasMissing
from ..journal.db import Vote

if TYPE_CHECKING:
    import pandas

PRIOR_SD = 2.0
"""Standard deviation of the Gaussian prior on each score (natural-log units)."""


@dataclass(frozen=True)
class Fit:
    """Scores, standard errors and vote counts, in the order of ``ids``."""

    ids: tuple[int, ...]
    score: np.ndarray
    uncertainty: np.ndarray
    wins: np.ndarray
    losses: np.ndarray
    ties: np.ndarray
    pair_counts: np.ndarray
    """pair_counts[i, j]: how many votes compared ids[i] with ids[j]."""

    @property
    def comparisons(self) -> np.ndarray:
        total: np.ndarray = self.wins + self.losses + self.ties
        return total


def fit(ids: Sequence[int], votes: Sequence[Vote], *, iterations: int = 50) -> Fit:
    """The Bradley–Terry fit of ``votes`` among ``ids`` (votes naming other jobs are left out)."""
    index = {job: k for k, job in enumerate(ids)}
    n = len(ids)
    won = np.zeros((n, n))  # won[i, j]: wins of i over j, a tie counting half for each
    counts = np.zeros((n, n))
    wins, losses, ties = np.zeros(n, int), np.zeros(n, int), np.zeros(n, int)
    for v in votes:
        if v.winner_id not in index or v.loser_id not in index or v.winner_id == v.loser_id:
            continue
        i, j = index[v.winner_id], index[v.loser_id]
        counts[i, j] += 1
        counts[j, i] += 1
        if v.tie:
            won[i, j] += 0.5
            won[j, i] += 0.5
            ties[i] += 1
            ties[j] += 1
        else:
            won[i, j] += 1
            wins[i] += 1
            losses[j] += 1
    precision = 1.0 / PRIOR_SD**2
    s = np.zeros(n)
    hessian = -precision * np.eye(n)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(s[:, None] - s[None, :])))  # p[i, j] = P(i beats j)
        gradient = (won - counts * p).sum(axis=1) - precision * s
        w = counts * p * (1 - p)
        hessian = w - np.diag(w.sum(axis=1)) - precision * np.eye(n)
        step = np.linalg.solve(hessian, gradient)
        s = s - step
        if np.max(np.abs(step), initial=0.0) < 1e-9:
            break
    p = 1.0 / (1.0 + np.exp(-(s[:, None] - s[None, :])))
    w = counts * p * (1 - p)
    hessian = w - np.diag(w.sum(axis=1)) - precision * np.eye(n)
    # votes say nothing about the scores' common level (only the prior does): the uncertainty is that of the
    # centred scores, P C P with P the centring projection
    centring = np.eye(n) - 1.0 / n if n else np.zeros((0, 0))
    covariance = centring @ np.linalg.inv(-hessian) @ centring if n else np.zeros((0, 0))
    uncertainty = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
    return Fit(tuple(ids), s - (s.mean() if n else 0.0), uncertainty, wins, losses, ties, counts)


def next_pair(
    ids: Sequence[int], votes: Sequence[Vote], voter: str | None = None, rng: random.Random | None = None
) -> tuple[int, int] | None:
    """The pair whose vote teaches the most, in random left/right order; None with fewer than two ids.

    Pairs this voter has compared fewer times come first (so nobody is asked the same pair twice until every pair
    has been seen); among those, the pair with the closest current scores (p(1-p) largest: the outcome is least
    certain) that has been compared least by everyone; ties between equally good pairs are broken at random.
    """
    rng = rng or random.Random()
    ids = list(dict.fromkeys(ids))
    if len(ids) < 2:
        return None
    current = fit(ids, votes)
    mine = fit(ids, [v for v in votes if v.voter == voter]).pair_counts if voter is not None else None
    best: tuple[float, float, float] | None = None
    choice: tuple[int, int] = (ids[0], ids[1])
    for i in range(len(ids)):
        for j in range(i + 1, len(ids)):
            p = 1.0 / (1.0 + np.exp(-(current.score[i] - current.score[j])))
            key = (
                -(mine[i, j] if mine is not None else 0.0),
                float(p * (1 - p)) / (1.0 + current.pair_counts[i, j]),
                rng.random(),
            )
            if best is None or key > best:
                best, choice = key, (ids[i], ids[j])
    return choice if rng.random() < 0.5 else (choice[1], choice[0])


COLUMNS = ("ref", "score", "uncertainty", "wins", "losses", "ties", "comparisons")


def table(ids: Sequence[int], votes: Sequence[Vote]) -> pandas.DataFrame:
    """The ranking as a DataFrame, best first: ref ('@12'), score, uncertainty (standard error of the score),
    wins, losses, ties, comparisons. Equal scores keep the order of ``ids``."""
    try:
        import pandas as pd
    except ImportError:
        raise PandasMissing("kx.ranking needs pandas: pip install pandas") from None
    result = fit(ids, votes)
    frame = pd.DataFrame(
        {
            "ref": [f"@{i}" for i in ids],
            "score": result.score.round(6),
            "uncertainty": result.uncertainty.round(6),
            "wins": result.wins,
            "losses": result.losses,
            "ties": result.ties,
            "comparisons": result.comparisons,
        },
        columns=list(COLUMNS),
    )
    return frame.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)


GROUP_COLUMNS = ("score", "uncertainty", "wins", "losses", "ties", "comparisons", "results")


def by_group(
    ids: Sequence[int], votes: Sequence[Vote], group: Mapping[int, str], name: str = "model"
) -> pandas.DataFrame:
    """The ranking of groups of results (``group[job]``: its model, say), best first: a vote between results of two
    groups is a vote between the groups; a vote within one group says nothing about it and is left out. Columns:
    ``name``, then as ``table`` (score, uncertainty, wins, losses, ties, comparisons) and ``results`` (how many)."""
    try:
        import pandas as pd
    except ImportError:
        raise PandasMissing("kx.ranking needs pandas: pip install pandas") from None
    names = list(dict.fromkeys(group[i] for i in ids if i in group))
    number = {g: k for k, g in enumerate(names)}
    between = [
        replace(v, winner_id=number[group[v.winner_id]], loser_id=number[group[v.loser_id]])
        for v in votes
        if v.winner_id in group and v.loser_id in group and group[v.winner_id] != group[v.loser_id]
    ]
    result = fit(list(range(len(names))), between)
    frame = pd.DataFrame(
        {
            name: names,
            "score": result.score.round(6),
            "uncertainty": result.uncertainty.round(6),
            "wins": result.wins,
            "losses": result.losses,
            "ties": result.ties,
            "comparisons": result.comparisons,
            "results": [sum(1 for i in ids if group.get(i) == g) for g in names],
        },
        columns=[name, *GROUP_COLUMNS],
    )
    return frame.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
