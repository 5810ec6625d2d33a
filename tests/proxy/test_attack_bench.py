"""Issue 21: bench/attack_bench.py at its tiny size — a class keeps working through every attack in turn.

This is the benchmark's one tiny run in the suite (tests/test_bench.py leaves it to this test): ``main(["--tiny"])``,
so its command-line path, its table and "no results file written" are checked as test_bench checks every other
benchmark, and the phases it measured are checked too. Only counts are asserted (answered requests, audit rows,
memory against the 300 MB target); the latencies the bench reports are not (no timed assertions).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest
from tiny_bench import BENCH, check_tiny_run, results_files  # tests/tiny_bench.py


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the proxy's memory from /proc")
def test_students_are_answered_through_every_attack(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sys.path.insert(0, str(BENCH))
    try:
        import attack_bench
    finally:
        sys.path.remove(str(BENCH))
    measured: list[Any] = []
    measure = attack_bench.measure

    def recorded(students: int, seconds: float, scale: int) -> Any:
        assert (students, seconds, scale) == (4, 1.0, 1), "the tiny size"
        measured.extend(measure(students, seconds, scale))
        return measured

    monkeypatch.setattr(attack_bench, "measure", recorded)
    before = results_files()
    returncode = attack_bench.main(["--tiny"])
    out, err = capsys.readouterr()
    check_tiny_run("attack_bench.py", returncode, out, err, before)

    phases = measured
    assert [p.name for p in phases] == [name for name, _ in attack_bench.ATTACKS[1:]]
    for phase in phases:
        assert phase.answered > 0 and phase.share >= 0.99, (phase.name, phase.answered, dict(phase.why))
        assert phase.rss_max <= 300, (phase.name, phase.rss_max)
    flood = next(p for p in phases if "floods" in p.name)
    sent, rows = map(int, re.findall(r"\d+", flood.note))
    assert sent > 10 and rows <= 3  # counted per student, reason and minute, not a row each
