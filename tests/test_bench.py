"""Every benchmark in bench/ still runs: each at its tiny size (``--tiny``, see bench/common.py), in a subprocess.

A benchmark is any bench/*.py with a ``__main__`` block (found by glob, so a new one is covered without being
listed). The test checks that it exits 0, prints its table rows, and leaves the committed results files alone;
never a figure or a time (a tiny run's numbers mean nothing). A benchmark listed in ELSEWHERE runs its tiny size
in the test named there instead (which makes the same checks and more), never twice.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_bench import BENCH, check_tiny_run, results_files  # tests/tiny_bench.py

SCRIPTS = sorted(p for p in BENCH.glob("*.py") if re.search(r"^if __name__ == .__main__.:", p.read_text(), re.M))
ELSEWHERE = {"attack_bench.py": "tests/proxy/test_attack_bench.py"}
"""Benchmarks whose tiny run is a test of its own (it checks their counts too): run there, not here as well."""
BROWSER = {"compare_bench.py", "judge_bench.py", "views_bench.py"}
"""These start JupyterLab and the system Chromium (judge_bench and views_bench through bench/duel_browser.py)."""
UNSET = ("FAL_KEY", "FAL_KEY_ID", "FAL_KEY_SECRET", "KONTEXT_FAL_URL", "KONTEXT_HOME", "KONTEXT_JOURNAL_URL")


def test_the_benchmarks_are_found() -> None:
    names = {p.name for p in SCRIPTS}
    assert {"run.py", "journal_bench.py", "proxy_bench.py"} <= names and "common.py" not in names, names
    for script, test in ELSEWHERE.items():  # each one left out here is run, at its tiny size, by its own test
        assert script in names, f"{script} is no benchmark any more: take it out of ELSEWHERE"
        source = (BENCH.parent / test).read_text()
        assert 'main(["--tiny"])' in source and "check_tiny_run" in source, f"{test} no longer runs {script} --tiny"


@pytest.mark.slow
@pytest.mark.parametrize(
    "script",
    [
        pytest.param(p, id=p.name, marks=[pytest.mark.browser] if p.name in BROWSER else [])
        for p in SCRIPTS
        if p.name not in ELSEWHERE
    ],
)
def test_every_benchmark_runs_at_its_tiny_size(script: Path, tmp_path: Path) -> None:
    before = results_files()
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
    check_tiny_run(script.name, done.returncode, done.stdout, done.stderr, before)
