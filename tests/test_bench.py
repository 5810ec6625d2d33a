"""Every benchmark in bench/ still runs: each at its tiny size (``--tiny``, see bench/common.py), in a subprocess.

A benchmark is any bench/*.py with a ``__main__`` block (found by glob, so a new one is covered without being
listed). The test checks that it exits 0, prints its table rows, and leaves the committed results files alone;
never a figure or a time (a tiny run's numbers mean nothing).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
SCRIPTS = sorted(p for p in BENCH.glob("*.py") if re.search(r"^if __name__ == .__main__.:", p.read_text(), re.M))
BROWSER = {"compare_bench.py", "judge_bench.py", "views_bench.py"}
"""These start JupyterLab and the system Chromium (judge_bench and views_bench through bench/duel_browser.py)."""
UNSET = ("FAL_KEY", "FAL_KEY_ID", "FAL_KEY_SECRET", "KONTEXT_FAL_URL", "KONTEXT_HOME")


def test_the_benchmarks_are_found() -> None:
    names = {p.name for p in SCRIPTS}
    assert {"run.py", "journal_bench.py", "proxy_bench.py"} <= names and "common.py" not in names, names


@pytest.mark.slow
@pytest.mark.parametrize(
    "script",
    [pytest.param(p, id=p.name, marks=[pytest.mark.browser] if p.name in BROWSER else []) for p in SCRIPTS],
)
def test_every_benchmark_runs_at_its_tiny_size(script: Path, tmp_path: Path) -> None:
    results = {p: p.read_bytes() for p in BENCH.glob("*.md")}
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env.update(KONTEXT_HOME=str(tmp_path / "runs"), PYTHONUNBUFFERED="1")
    done = subprocess.run(
        [sys.executable, str(script), "--tiny"],
        cwd=tmp_path,  # nothing it writes by accident lands in the checkout
        env=env,
        capture_output=True,
        text=True,
        timeout=240,  # a hang, not a slow machine: a tiny run takes seconds
    )
    said = f"{script.name} --tiny exited {done.returncode}\n--- stdout\n{done.stdout[-3000:]}\n--- stderr\n"
    said += done.stderr[-3000:]
    assert done.returncode == 0, said
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and not line.startswith("|---")]
    assert len(rows) >= 2, f"no table of results printed\n{said}"  # the head and at least one measure
    assert all(line.count("|") == rows[0].count("|") for line in rows), f"a ragged table\n{said}"
    assert "not written)" in done.stdout, f"a tiny run must say it wrote no results file\n{said}"
    assert {p: p.read_bytes() for p in BENCH.glob("*.md")} == results, "a tiny run changed a results file"
