"""Benchmark of the journal on SQLite vs PostgreSQL (issue 24): journal operations per second, a 30-job run, and
8 processes × 30 jobs on one PostgreSQL journal under one daily cap.

    python bench/journal_pg_bench.py          # about a minute; prints a table, writes bench/journal_pg_results.md
    python bench/journal_pg_bench.py --tiny   # a few of each: seconds, nothing written (CI runs it)

PostgreSQL is a throwaway cluster from the system's binaries (tests/postgres.py), on this machine: a loopback
round trip per statement, no network. (a) one job's journaling (create + submitted + finished: three write
transactions, each under the journal's one lock) and a history search, per second; (b) 30 jobs through a Session
on the offline sandbox, wall time; (c) 8 kernel processes, 30 jobs each, one PostgreSQL journal: every job
recorded once, the ledger's total exactly what was sent. Measurement only: it never fails on a missed target.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, sandbox_process, size, write_results

from kontext_nb.config import RetryPolicy, Settings
from kontext_nb.jobs import Job
from kontext_nb.journal.db import Journal
from kontext_nb.session import Session

sys.path.insert(0, str(ROOT / "tests"))
from postgres import start_server  # tests/postgres.py: the throwaway cluster

OPS = size(500, 20)
RUN_JOBS = size(30, 3)
PROCESSES, PROCESS_JOBS = size(8, 2), size(30, 3)
PRICE = 0.08
SANDBOX = {"workers": 8, "queue_delay": 0.0, "inference_time": 0.05, "image_scale": 0.25}

KERNEL = """
import sys, time
from kontext_nb.config import RetryPolicy, Settings
from kontext_nb.session import Session

url, runs, journal_url, n, me = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
s = Session(Settings(base_url=url, key="bench-key", runs_dir=runs, journal_url=journal_url, budget_daily=1000.0,
                     retry=RetryPolicy(attempts=3, base_delay=0.01)), notice=lambda m: None)
start = time.perf_counter()
jobs = [s.generate(f"kernel {me} job {i}", wait=False) for i in range(n)]
for job in jobs:
    job.result(120)
print("TOOK", time.perf_counter() - start)
s.close()
"""


def journal_ops(journal: Journal) -> tuple[float, float]:
    """(jobs journaled per second, searches per second)."""
    start = time.perf_counter()
    for i in range(OPS):
        job = journal.create(endpoint="fal-ai/flux-pro/kontext", arguments={"prompt": f"a red fox {i}", "seed": i})
        journal.submitted(job, f"req-{i}")
        journal.finished(job, status="done", cost=0.04, num_images=1, files=[f"images/{i}.png"])
    jobs = OPS / (time.perf_counter() - start)
    start = time.perf_counter()
    for _ in range(OPS // 5 or 1):
        journal.search(search="fox", limit=50)
    return jobs, (OPS // 5 or 1) / (time.perf_counter() - start)


def a_run(url: str, runs: Path, journal_url: str | None) -> float:
    """Seconds for RUN_JOBS jobs sent at once through one Session and collected."""
    settings = Settings(
        base_url=url, key="bench-key", runs_dir=str(runs), journal_url=journal_url, retry=RetryPolicy(attempts=3)
    )
    session = Session(settings, notice=lambda m: None)
    try:
        assert session.tracker.journal  # the journal is open before the clock starts
        start = time.perf_counter()
        jobs = [session.generate(f"a lighthouse {i}", wait=False) for i in range(RUN_JOBS)]
        for job in jobs:
            assert isinstance(job, Job)
            job.result(120)
        return time.perf_counter() - start
    finally:
        session.close()


def many_kernels(url: str, tmp: Path, journal_url: str) -> tuple[float, float, int, float]:
    """(wall seconds, slowest kernel's seconds, jobs recorded, dollars in the ledger) for PROCESSES kernels."""
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", KERNEL, url, str(tmp / f"host-{n}"), journal_url, str(PROCESS_JOBS), str(n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(PROCESSES)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    wall = time.perf_counter() - start
    bad = [err[-2000:] for p, (_, err) in zip(procs, outs, strict=True) if p.returncode != 0]
    if bad:
        raise RuntimeError(f"a kernel failed: {bad[0]}")
    slowest = max(float(out.split("TOOK")[-1]) for out, _ in outs)
    journal = Journal(tmp / "reader", journal_url)
    try:
        done = len(journal.search(status="done"))
        spent = journal.held()[0]
    finally:
        journal.close()
    return wall, slowest, done, spent


def main() -> int:
    server = start_server()
    lines = ["| measure | SQLite | PostgreSQL |", "|---|---:|---:|"]
    notes: list[str] = []
    try:
        with tempfile.TemporaryDirectory() as tmp_name, server.database() as ops_url, server.database() as run_url:
            tmp = Path(tmp_name)
            sqlite_journal, pg_journal = Journal(tmp / "ops"), Journal(tmp / "ops-pg", ops_url)
            (s_jobs, s_search), (p_jobs, p_search) = journal_ops(sqlite_journal), journal_ops(pg_journal)
            sqlite_journal.close()
            pg_journal.close()
            lines.append(
                f"| (a) jobs journaled per second (3 write transactions each) | {s_jobs:,.0f} | {p_jobs:,.0f} |"
            )
            lines.append(
                f"| (a) history searches per second ({OPS} jobs, limit 50) | {s_search:,.0f} | {p_search:,.0f} |"
            )
            with sandbox_process(**SANDBOX) as (url, _control):
                s_run = a_run(url, tmp / "run-sqlite", None)
                p_run = a_run(url, tmp / "run-pg", run_url)
                lines.append(f"| (b) a {RUN_JOBS}-job run through one Session, seconds | {s_run:.2f} | {p_run:.2f} |")
                with server.database() as many_url:
                    wall, slowest, done, spent = many_kernels(url, tmp / "many", many_url)
                total = PROCESSES * PROCESS_JOBS
                lines.append(
                    f"| (c) {PROCESSES} processes × {PROCESS_JOBS} jobs on one journal, seconds (wall) | - | "
                    f"{wall:.2f} |"
                )
                notes.append(
                    f"(c) {done} of {total} jobs recorded done, ${spent:.2f} in the ledger (sent: "
                    f"${total * PRICE:.2f}); the slowest kernel took {slowest:.2f} s from its first job"
                )
    finally:
        server.close()
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{now} · {len(os.sched_getaffinity(0))} CPUs, Python {platform.python_version()}, {platform.platform()}"
    text = "\n".join(
        ["# kontext_nb journal: SQLite vs PostgreSQL", "", machine, "", *lines, "", *(f"- {n}" for n in notes), ""]
    )
    print(text)
    write_results(Path(__file__).resolve().parent / "journal_pg_results.md", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
