"""What a benchmark's tiny run must show (tests/test_bench.py, tests/proxy/test_attack_bench.py): its table and
that it wrote no results file; never a figure or a time (a tiny run's numbers mean nothing)."""

from __future__ import annotations

from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"


def results_files() -> dict[Path, bytes]:
    """The committed results tables, to compare before and after a tiny run."""
    return {p: p.read_bytes() for p in BENCH.glob("*.md")}


def check_tiny_run(name: str, returncode: int, stdout: str, stderr: str, before: dict[Path, bytes]) -> None:
    """It exited 0, printed a table of results (a head and at least one row, none ragged), said it wrote no
    results file, and left every committed one as it was."""
    said = f"{name} --tiny exited {returncode}\n--- stdout\n{stdout[-3000:]}\n--- stderr\n{stderr[-3000:]}"
    assert returncode == 0, said
    rows = [line for line in stdout.splitlines() if line.startswith("| ") and not line.startswith("|---")]
    assert len(rows) >= 2, f"no table of results printed\n{said}"  # the head and at least one measure
    assert all(line.count("|") == rows[0].count("|") for line in rows), f"a ragged table\n{said}"
    assert "not written)" in stdout, f"a tiny run must say it wrote no results file\n{said}"
    assert results_files() == before, "a tiny run changed a results file"
