"""The running status line of several jobs (a sweep, a batch) says money as the ledger has it: spent, and held for
the jobs still in flight (issue 20's gap: it summed the finished Results' costs in memory)."""

from __future__ import annotations

import time

from waiting import wait_for  # tests/waiting.py

from kontext_nb.jobs import Job
from kontext_nb.sandbox import SandboxServer
from kontext_nb.session import Session
from kontext_nb.views.status import status_text


def test_a_batch_line_reads_spent_and_held_from_the_ledger(session: Session, sb: SandboxServer) -> None:
    journal = session.tracker.journal
    sb.configure(inference_time=60)  # held in flight: they hold their reservations until cancelled
    jobs = [session.generate("a grey cat", seed=s, wait=False) for s in (2, 3)]
    assert all(isinstance(j, Job) for j in jobs)
    wait_for(lambda: all(j.state == "running" for j in jobs))
    line = status_text(jobs, time.time(), journal)
    held = sum(journal.money(j.journal_id)[1] for j in jobs)  # type: ignore[arg-type]
    assert held > 0 and line.endswith(f"$0.00 spent · ${held:.2f} held"), line
    assert "2 running" in line and "0/2 done" in line
    for job in jobs:
        job.cancel()
    wait_for(lambda: all(j.done() for j in jobs))
    line = status_text(jobs, time.time(), journal)
    assert line.endswith(" · $0.00") and "2 cancelled" in line, line  # released: nothing spent, nothing held
    sb.configure(inference_time=0.01)
    more = [session.generate("a grey cat", seed=s, wait=False) for s in (4, 5)]
    for job in more:
        job.result(30)  # type: ignore[union-attr]
    spent = sum(journal.money(j.journal_id)[0] for j in more)  # type: ignore[union-attr,arg-type]
    line = status_text(more, time.time(), journal)  # type: ignore[arg-type]
    assert spent > 0 and line.endswith(f" · ${spent:.2f}") and "2/2 done" in line, line
    assert "$" not in status_text(more, time.time()), "no ledger, no money said"  # type: ignore[arg-type]
