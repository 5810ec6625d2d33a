"""The model registry's cost: loading it cold and warm, and ``%load_ext kontext_nb`` against the code before it.

    python bench/models_bench.py                  # ~30 s; writes bench/models_results.md
    python bench/models_bench.py --before /tmp/old # the old code from a checkout of your own
    python bench/models_bench.py --tiny           # a few runs, no old checkout: seconds

Every measure runs in a fresh interpreter (start-up varies more than these costs) and is that process's CPU time
(``time.process_time``: on a shared machine wall times swing by more than the differences). Cold is the first
``models.registry().all()`` of a process (reading every snapshot file and parsing every model); warm is a lookup
(``get('max')``) and a whole new parse over the documents already read; the Kontext family's Endpoints are built
from the registry on first use (``endpoint_for('edit', 'max')``). ``%load_ext`` is timed in IPython for this
checkout and for the code before the registry (commit c624526, a detached git worktree at /tmp/old, made if absent).
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

from common import TINY, size, write_results

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "models_results.md"
OLD_COMMIT = "c624526"
OLD_TREE = Path("/tmp/old")
RUNS = size(15, 2)

REGISTRY = """
import time
t0 = time.process_time()
from kontext_nb import models
t1 = time.process_time()
reg = models.registry(); n = len(reg.all())
t2 = time.process_time()
for _ in range(1000): reg.get('max')
t3 = time.process_time()
fresh = models.Registry(); fresh.all()
t4 = time.process_time()
from kontext_nb import endpoints
t5 = time.process_time()
endpoints.endpoint_for('edit', 'max')
t6 = time.process_time()
print('REG', n, (t1-t0)*1e3, (t2-t1)*1e3, (t3-t2)*1e3, (t4-t3)*1e3, (t6-t5)*1e3)
"""
LOAD_EXT = """
import time
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
t = time.process_time()
ip.run_line_magic('load_ext', 'kontext_nb')
loaded = (time.process_time() - t) * 1000
t = time.process_time()
from kontext_nb import endpoints
endpoints.endpoint_for('edit', 'max').estimate({})
first = (time.process_time() - t) * 1000
import kontext_nb
print('LOAD', kontext_nb.__file__, loaded, first)
"""


def run(code: str, tag: str, tree: Path | None, home: Path) -> list[float]:
    env = {k: v for k, v in os.environ.items() if k not in ("FAL_KEY", "FAL_KEY_ID", "FAL_KEY_SECRET")}
    env.update(KONTEXT_HOME=str(home), PYTHONPATH=str(tree or ROOT))
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=home, capture_output=True, text=True, check=True)
    fields = out.stdout.split(tag)[-1].split()
    if tag == "LOAD":
        assert fields[0].startswith(str(tree or ROOT)), fields[0]
        return [float(x) for x in fields[1:]]
    return [float(x) for x in fields]


def old_tree(given: Path | None) -> Path | None:
    """The code before the registry: ``--before``, or a detached worktree of c624526 at /tmp/old (made if absent)."""
    if given is not None:
        return given
    if TINY:
        return None
    if not (OLD_TREE / "kontext_nb" / "__init__.py").exists():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(OLD_TREE), OLD_COMMIT], check=True)
    return OLD_TREE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, help=f"the old code's checkout (default: {OLD_TREE} at {OLD_COMMIT})")
    args = parser.parse_args(argv)
    before = old_tree(args.before)
    reg: list[list[float]] = []
    loads: dict[str, list[list[float]]] = {"this checkout": []}
    if before is not None:
        loads[f"before the registry ({before})"] = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        for n in range(RUNS + 1):  # the first round compiles bytecode and warms the page cache
            r = run(REGISTRY, "REG", None, home)
            got = {"this checkout": run(LOAD_EXT, "LOAD", None, home)}
            if before is not None:
                got[f"before the registry ({before})"] = run(LOAD_EXT, "LOAD", before, home)
            if n:
                reg.append(r)
                for name, value in got.items():
                    loads[name].append(value)

    def med(values: list[float], unit: str = "ms") -> str:
        return f"{statistics.median(values):.2f} {unit} (range {min(values):.2f}–{max(values):.2f})"

    count = int(reg[0][0])
    names = list(loads)
    rows = ["| measure | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]

    def row(what: str, ours: list[float], unit: str = "ms") -> str:
        return f"| {what} | {med(ours, unit)} |" + " – |" * (len(names) - 1)

    rows += [
        row("`import kontext_nb.models` (the package first)", [r[1] for r in reg]),
        row(f"cold: first `registry().all()` ({count} models: read, parse each)", [r[2] for r in reg]),
        row("warm: `registry().get('max')`", [r[3] for r in reg], "µs"),  # 1000 lookups took r[3] ms
        row("warm: a new `Registry().all()` over the documents read", [r[4] for r in reg]),
        row("the Kontext Endpoints from the registry (first `endpoint_for`)", [r[5] for r in reg]),
        "| `%load_ext kontext_nb` | " + " | ".join(med([v[0] for v in loads[n]]) for n in names) + " |",
        "| then the first `endpoint_for('edit', 'max').estimate({})` | "
        + " | ".join(med([v[1] for v in loads[n]]) for n in names)
        + " |",
    ]
    for row in rows:
        print(row)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = "\n".join(
        [
            "# The model registry: load times",
            "",
            f"{stamp}, {platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs; "
            f"{RUNS} fresh processes per measure, each its CPU time (`python bench/models_bench.py`). Target: warm "
            "< 50 ms, and `%load_ext` no slower than before the registry (the snapshot is read on first use, not on "
            "load).",
            "",
            *rows,
            "",
        ]
    )
    write_results(RESULTS, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
