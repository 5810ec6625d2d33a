"""Judging results: star ratings, blind pairwise votes and their ranking, change scores for edits, a report.

ratings.py (stars in the journal and the files' metadata), ranking.py (Bradley–Terry from votes, which pair to
show next), duel.py (a blind duel's pairs and votes, for the widget and the classroom), changes.py (pixel change
scores for an edit, with a plug-in point for model-based ones), report.py (one self-contained HTML file).

May import: endpoints, errors, images, result, the journal and the views. Never IPython or ipywidgets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names

if TYPE_CHECKING:
    from .changes import Changes, compute, register_score
    from .duel import Contender, DuelSource, LocalDuel, Pair
    from .ranking import Fit, fit, next_pair
    from .ratings import rate
    from .report import write_report

_LAZY = {
    "Changes": "changes",
    "compute": "changes",
    "register_score": "changes",
    "Contender": "duel",
    "DuelSource": "duel",
    "LocalDuel": "duel",
    "Pair": "duel",
    "Fit": "ranking",
    "fit": "ranking",
    "next_pair": "ranking",
    "rate": "ratings",
    "write_report": "report",
}


__getattr__ = lazy_names(__name__, _LAZY)


__all__ = [
    "Changes",
    "Contender",
    "DuelSource",
    "Fit",
    "LocalDuel",
    "Pair",
    "compute",
    "fit",
    "next_pair",
    "rate",
    "register_score",
    "write_report",
]
