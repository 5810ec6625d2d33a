"""``%load_ext kontext_nb`` in a fresh IPython: how long the load takes, with and without jobs a stopped kernel
left on fal, and (with them) how long until the background collecting has saved their images.

    python bench/load_ext_bench.py                     # ~1 min; prints a table, writes bench/load_ext_results.md
    python bench/load_ext_bench.py --before ../main    # also another checkout's kontext_nb, in turn with this one
    python bench/load_ext_bench.py --tiny              # 5 jobs, 1 left behind, one process each: seconds

Each measure is taken inside a fresh process (an interpreter's start-up varies more than the load costs): the
time of ``ip.run_line_magic('load_ext', 'kontext_nb')``, and from its start until the collecting thread ends. The
sandbox runs in this process; the runs folder holds 200 finished jobs, plus 4 left behind (submitted to the
sandbox, their owner gone) for the second row, put back to that state before every run. Measurement only.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import size, write_results

from kontext_nb import sandbox
from kontext_nb.config import Settings
from kontext_nb.journal.db import Journal
from kontext_nb.session import Session

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "load_ext_results.md"
RUNS, FINISHED, LEFT = size(11, 1), size(200, 5), size(4, 1)
LOAD = """
import threading, time
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
t = time.perf_counter()
ip.run_line_magic('load_ext', 'kontext_nb')
loaded = (time.perf_counter() - t) * 1000
for thread in threading.enumerate():
    if thread.name == 'kontext-collect-on-load':
        thread.join(120)
import kontext_nb
print('LOAD', kontext_nb.__file__, loaded, (time.perf_counter() - t) * 1000)
"""


def fill(runs: Path, url: str) -> list[int]:
    """200 finished jobs and 4 more whose rows are put back to 'submitted' by a gone owner (see leave_behind)."""
    session = Session(Settings(base_url=url, key="bench", runs_dir=str(runs)), notice=lambda message: None)
    try:
        for i in range(FINISHED):
            session.generate(f"finished {i}", seed=i)
        return [session.generate(f"left behind {i}", seed=1000 + i).journal_id or 0 for i in range(LEFT)]
    finally:
        session.close()


def leave_behind(runs: Path, ids: list[int]) -> None:
    journal = Journal(runs)
    for job_id in ids:
        journal._update(job_id, status="submitted", session="gone:1:bench", files="[]", cost=0.0, reserved=0.08)
    journal.close()


def once(runs: Path, url: str, code: Path | None, ids: list[int]) -> tuple[float, float]:
    """One fresh IPython: (ms the load took, ms from its start until the collecting thread ended)."""
    env = {k: v for k, v in os.environ.items() if k not in ("FAL_KEY", "FAL_KEY_ID", "FAL_KEY_SECRET")}
    env.update(KONTEXT_HOME=str(runs), KONTEXT_FAL_URL=url)
    if code is not None:
        env["PYTHONPATH"] = str(code)
    leave_behind(runs, ids)
    out = subprocess.run(  # cwd: the runs folder's parent, so '' on sys.path finds no checkout
        [sys.executable, "-c", LOAD], env=env, cwd=runs.parent, capture_output=True, text=True, check=True
    )
    where, load_ms, until_ms = out.stdout.split("LOAD")[-1].split()
    assert code is None or where.startswith(str(code)), where
    return float(load_ms), float(until_ms)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, help="also load kontext_nb from this checkout, turn about with ours")
    parser.add_argument("--no-write", action="store_true", help=f"do not write {RESULTS.name}")
    args = parser.parse_args(argv)
    codes: list[Path | None] = [None, args.before] if args.before else [None]
    times: dict[tuple[Path | None, bool], list[tuple[float, float]]] = {}
    server = sandbox.start(workers=4, inference_time=0.05)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            runs = Path(tmp) / "runs"
            ids = fill(runs, server.url)
            for n in range(RUNS + 1):  # the first round compiles bytecode and warms the page cache
                for code in codes:
                    for left in (False, True):
                        measured = once(runs, server.url, code, ids if left else [])
                        if n:
                            times.setdefault((code, left), []).append(measured)
    finally:
        server.stop()
    rows = [
        "| code | journal | `%load_ext` (median, range) | load start → collecting ended (median) |",
        "|---|---|---|---|",
    ]
    for code in codes:
        name = "this checkout" if code is None else f"`{code}` (before)"
        without, with_jobs = times[(code, False)], times[(code, True)]
        rows.append(f"| {name} | {FINISHED} finished jobs | {_ms([a for a, _ in without])} | – |")
        until = statistics.median(b for _, b in with_jobs)
        rows.append(
            f"| {name} | {FINISHED} finished + {LEFT} left by a stopped kernel | {_ms([a for a, _ in with_jobs])} | "
            f"{until:.0f} ms |"
        )
    text = "\n".join(
        [
            "# `%load_ext kontext_nb` in a fresh IPython",
            "",
            f"Measured with `python bench/load_ext_bench.py{f' --before {args.before}' if args.before else ''}` on "
            f"{datetime.date.today().isoformat()}: {len(os.sched_getaffinity(0))} CPUs, Python "
            f"{platform.python_version()}, {platform.system()}, load average {os.getloadavg()[0]:.1f} at the end "
            f"(the machine is shared); median of {RUNS} fresh processes each, taken in turn; KONTEXT_FAL_URL at a "
            "sandbox in the bench's process.",
            "",
            *rows,
            "",
        ]
    )
    print(text)
    if not args.no_write:
        write_results(RESULTS, text)
    return 0


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values):.0f} ms ({min(values):.0f}–{max(values):.0f})"


if __name__ == "__main__":
    sys.exit(main())
