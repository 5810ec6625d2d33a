"""``kx.budget(reconcile=True)``: the journal's spend beside what fal says it billed, per UTC day and endpoint.

fal's usage API (``GET /v1/models/usage``, fal/platform.py) reports billed quantity and cost per time bucket and
endpoint; the journal knows what each job cost. A difference means a job fal billed that the journal does not hold
(sent from elsewhere with the same key, a journal replaced), or one the journal counts that fal did not bill (an
unconfirmed submit that never arrived). Jobs still in flight are shown apart: fal may have billed them already.

Which journal rows count is ``journal_spend``: the one place to read the spend from (the ledger, once it keeps each
entry's endpoint). Days are UTC, as fal's buckets are asked for.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import endpoints
from ..endpoints import format_cost
from ..fal.platform import UsageLine
from .db import JobRecord, Journal
from .ledger import JobMoney

if TYPE_CHECKING:
    from ..fal.engine import Engine

TOLERANCE = 0.005
"""Dollars two figures may differ by and still agree (half a cent: fal rounds to cents and below)."""


@dataclass(frozen=True)
class Line:
    """One day and endpoint: what the journal counts, what fal billed."""

    day: str
    endpoint_id: str
    journal: float
    """Dollars the journal counts as spent (done jobs' costs, unconfirmed submits' prices)."""
    fal: float
    """Dollars fal's usage API reports."""
    held: float = 0.0
    """Dollars the journal holds for jobs still in flight (fal may have billed them already)."""
    jobs: int = 0
    fal_quantity: float = 0.0

    @property
    def difference(self) -> float:
        """fal minus the journal: above zero, fal billed more than the journal counts."""
        return round(self.fal - self.journal, 6)

    @property
    def agrees(self) -> bool:
        return abs(self.difference) <= TOLERANCE


@dataclass(frozen=True)
class Reconciliation:
    """The comparison, with a readable table (``repr``) that names every difference."""

    lines: tuple[Line, ...]
    start: str
    end: str
    """The days compared: ``start`` to ``end``, end exclusive (YYYY-MM-DD, UTC)."""

    @property
    def differences(self) -> list[Line]:
        return [line for line in self.lines if not line.agrees]

    @property
    def ok(self) -> bool:
        return not self.differences

    def as_dicts(self) -> list[dict[str, Any]]:
        return [
            {"day": x.day, "endpoint": x.endpoint_id, "journal": x.journal, "fal": x.fal, "difference": x.difference,
             "held": x.held, "jobs": x.jobs}
            for x in self.lines
        ]  # fmt: skip

    def __repr__(self) -> str:
        head = f"fal's usage vs the journal, {self.start} to {self.end} (UTC, end exclusive): "
        if not self.lines:
            return head + "nothing spent or billed"
        head += "they agree" if self.ok else f"{len(self.differences)} difference{'s' * (len(self.differences) != 1)}"
        rows = [head]
        for x in self.lines:
            sign = "+" if x.difference > 0 else "-"
            mark = "ok" if x.agrees else f"DIFFERENCE {sign}{format_cost(abs(x.difference))}"
            held = f", {format_cost(x.held)} held for jobs in flight" if x.held > 0 else ""
            rows.append(
                f"  {x.day}  {x.endpoint_id:<44} journal {format_cost(x.journal):>7}  fal {format_cost(x.fal):>7}  "
                f"{mark}{held}"
            )
        return "\n".join(rows)


def day_of(when: float) -> str:
    return dt.datetime.fromtimestamp(when, dt.timezone.utc).date().isoformat()


def journal_spend(records: Iterable[JobRecord | JobMoney]) -> dict[tuple[str, str], tuple[float, float, int]]:
    """(spent, held, jobs) per (UTC day of the job's creation, endpoint): fal's usage counts UTC days."""
    found: dict[tuple[str, str], tuple[float, float, int]] = {}
    for r in records:
        if r.cached or (r.cost <= 0 and r.reserved <= 0):
            continue
        spent, held, jobs = found.get((day_of(r.created), r.endpoint), (0.0, 0.0, 0))
        found[day_of(r.created), r.endpoint] = (spent + r.cost, held + r.reserved, jobs + 1)
    return found


def compare(spend: dict[tuple[str, str], tuple[float, float, int]], usage: Iterable[UsageLine]) -> list[Line]:
    """One Line per (day, endpoint) either side has, sorted: the journal's spend beside fal's billed cost."""
    billed: dict[tuple[str, str], tuple[float, float]] = {}
    for u in usage:
        cost, quantity = billed.get((u.day, u.endpoint_id), (0.0, 0.0))
        billed[u.day, u.endpoint_id] = (cost + u.cost, quantity + u.quantity)
    lines = []
    for key in sorted(set(spend) | set(billed)):
        spent, held, jobs = spend.get(key, (0.0, 0.0, 0))
        cost, quantity = billed.get(key, (0.0, 0.0))
        lines.append(Line(key[0], key[1], round(spent, 6), round(cost, 6), round(held, 6), jobs, quantity))
    return lines


def reconcile(journal: Journal, engine: Engine, *, days: int = 7, now: float | None = None) -> Reconciliation:
    """The last ``days`` UTC days (today included) for every endpoint kontext_nb sends to."""
    now = time.time() if now is None else now
    today = dt.datetime.fromtimestamp(now, dt.timezone.utc).date()
    first = today - dt.timedelta(days=max(1, days) - 1)
    start, end = first.isoformat(), (today + dt.timedelta(days=1)).isoformat()
    since = dt.datetime.combine(first, dt.time(), dt.timezone.utc).timestamp()
    spend = journal_spend(journal.money_per_job(since=since))  # the ledger: deleted jobs' money included
    usage = engine.call(engine.platform.usage(endpoints.ENDPOINTS, start, end))
    return Reconciliation(tuple(compare(spend, usage)), start, end)
