"""The one status line for running jobs, shared by the magics' live output and the panel."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Protocol

from ..endpoints import format_cost
from ..jobs import Job, queue_place

EPSILON = 1e-9


class Ledger(Protocol):
    """Where a status line reads money: the journal's spend ledger (``Journal.money``), as every money display does
    (the cap, kx.budget, the panel's header), so a line never says other than the ledger."""

    def money(self, job_id: int) -> tuple[float, float]: ...


def status_text(jobs: Sequence[Job], started: float, ledger: Ledger | None = None) -> str:
    """One line: where the jobs are, how long it has taken, what it has cost so far and what is still held for the
    jobs in flight (both from ``ledger``; no money is said without one)."""
    elapsed = time.time() - started
    if len(jobs) == 1:
        job = jobs[0]
        s = job.status
        ref = f"@{job.journal_id} " if job.journal_id else ""
        if s.state == "queued":
            return f"{ref}queued · {queue_place(s.position)} · {elapsed:.1f} s"
        if s.state == "running":
            return f"{ref}running · {elapsed:.1f} s"
        if s.state == "done":
            r = job.result(0)
            n = len(r.image_bytes)
            cached = " · from the journal" if r.cached else ""
            cost = f" · {money_text(jobs, ledger)}" if ledger is not None else ""
            return f"{ref}done in {elapsed:.1f} s · {n} image{'s' if n != 1 else ''}{cost}{cached}"
        return f"{ref}{s}"
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job.state] = counts.get(job.state, 0) + 1
    parts = [f"{counts.get('done', 0)}/{len(jobs)} done"] + [
        f"{counts[k]} {k}" for k in ("running", "queued", "failed", "cancelled") if counts.get(k)
    ]
    parts.append(f"{elapsed:.1f} s")
    if ledger is not None:
        parts.append(money_text(jobs, ledger))
    return " · ".join(parts)


def money_text(jobs: Sequence[Job], ledger: Ledger) -> str:
    """'$0.16', or '$0.16 spent · $0.08 held' while jobs still hold their reservations: the ledger's sums over the
    jobs' journal rows (a job without one has nothing in the ledger)."""
    spent = held = 0.0
    for job in jobs:
        if job.journal_id:
            s, h = ledger.money(job.journal_id)
            spent, held = spent + s, held + h
    if held > EPSILON:
        return f"{format_cost(spent)} spent · {format_cost(held)} held"
    return format_cost(spent)


def usual_time(seconds: Sequence[float]) -> str:
    """'usually 6–9 s': the middle half of earlier runs' times (fal's inference time, from the journal), or ''
    with fewer than three."""
    times = sorted(t for t in seconds if t >= 0)
    if len(times) < 3:
        return ""
    low, _, high = statistics.quantiles(times, n=4, method="inclusive")
    low_s, high_s = max(1, round(low)), max(1, round(high))
    return f"usually about {low_s} s" if low_s == high_s else f"usually {low_s}–{high_s} s"


def logs_text(jobs: Sequence[Job], last: int = 3) -> list[str]:
    if len(jobs) != 1 or jobs[0].done():
        return []
    return [str(line.get("message", "")) for line in jobs[0].status.logs[-last:]]
