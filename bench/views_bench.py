"""Benchmark of the views beside the code at this wave's start: History's page, the panel's first render, the duel's
key press → next pair, and the memory of a 500-card gallery.

    python bench/views_bench.py          # about ten minutes; prints a table and writes bench/views_results.md
    python bench/views_bench.py --tiny   # 8 jobs, a few votes: seconds to a minute, nothing written (CI runs it)

"The code at the wave's start" is commit WAVE_START (main just before issue 22's views were merged), taken out of
git with ``git archive`` into a temporary folder and put first on the Python path of the processes that measure it
(each child prints the kontext_nb it imported, and the bench checks it). The code now is this checkout. Both
versions run in the same run, one after the other, against one sandbox in a process of its own, each with a runs
folder of its own holding the same N jobs; where the checkout has no such commit (a shallow clone) the table says
so and measures the code now alone.

- History page: ``HistoryView(session)`` on a journal of N jobs, its first page of 50 rows; the widgets' comm
  messages are JSON-encoded as a kernel encodes them (a serializing comm in place of ipywidgets' dummy one), and
  their bytes counted. Median of several builds.
- Panel first render, in the kernel: ``Panel(session)`` until its Gallery holds the journal's first page of cards
  (what the cell's output shows first), with the same comm. Median of several.
- Duel: key press → next pair on the screen in JupyterLab and headless Chromium (bench/duel_browser.py; measured
  from outside the view, so the same measure runs on both versions), 12 results, a 0.4 s look at each pair.
- Gallery memory: N full-size results read back from the journal into a Gallery, RSS over an empty one
  (bench/panel_bench.py's add_result measure, run under each version).

Measurement only: it never fails on a missed target.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from common import ROOT, percentile, size, write_results

WAVE_START = "9b0b12d"
"""main before issue 22's views merge (5975102): History as ipywidgets rows, the duel answering each vote."""
N = size(500, 8)
BUILDS = size(7, 2)
VOTES, WARMUP, RESULTS = size(30, 2), size(5, 1), size(12, 4)
OUT = Path(__file__).resolve().parent / "views_results.md"
BENCH = Path(__file__).resolve().parent


# ---- in a child process: one version of kontext_nb ----------------------------------------------------------------
def serializing_comms() -> dict[str, int]:
    """Widgets' comm messages JSON-encoded as a kernel sends them (ipywidgets' default comm drops them unread);
    returns the running totals {messages, bytes}."""
    import comm
    from comm.base_comm import BaseComm

    sent = {"messages": 0, "bytes": 0}

    class Serializing(BaseComm):  # type: ignore[misc]
        def publish_msg(
            self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None, **keys: Any
        ) -> None:
            sent["messages"] += 1
            sent["bytes"] += len(json.dumps(data, default=str)) + sum(
                len(memoryview(b).cast("B")) for b in buffers or ()
            )

    comm.create_comm = Serializing
    return sent


def session_on(url: str, runs: str) -> Any:
    from kontext_nb.config import RetryPolicy, Settings
    from kontext_nb.session import Session

    settings = Settings(base_url=url, key="bench-key", runs_dir=runs, concurrency=8, retry=RetryPolicy(attempts=5))
    return Session(settings, notice=lambda message: None)


def make(url: str, runs: str) -> dict[str, Any]:
    session = session_on(url, runs)
    for start in range(0, N, 16):
        jobs = [
            session.generate(f"a lighthouse at dusk, study {i}", seed=i, wait=False)
            for i in range(start, min(N, start + 16))
        ]
        for job in jobs:
            job.result(120)
    session.close()
    return {}


def kernel(url: str, runs: str) -> dict[str, Any]:
    """History's first page and the panel's first render, each built BUILDS times."""
    import kontext_nb as kx
    from kontext_nb.widgets.history_view import HistoryView
    from kontext_nb.widgets.panel import Panel

    sent = serializing_comms()
    session = session_on(url, runs)
    kx.set_session(session)
    HistoryView(session).close()  # warm-up: imports, the first thumbnails read from disk
    history, history_bytes = [], []
    for _ in range(BUILDS):
        before = sent["bytes"]
        started = time.perf_counter()
        view = HistoryView(session)
        history.append((time.perf_counter() - started) * 1000)
        history_bytes.append(sent["bytes"] - before)
        view.close()
    first_page = min(N, 48)
    panel, panel_bytes = [], []
    for _ in range(BUILDS + 1):
        before = sent["bytes"]
        started = time.perf_counter()
        made = Panel(session)
        deadline = time.monotonic() + 60
        while len(made.gallery.cards) < first_page and time.monotonic() < deadline:
            time.sleep(0.002)
        panel.append((time.perf_counter() - started) * 1000)
        panel_bytes.append(sent["bytes"] - before)
        made.close()
    session.close()
    return {
        "history_ms": history,
        "history_kb": statistics.median(history_bytes) / 1024,
        "panel_ms": panel[1:],  # the first one also imports the panel's modules
        "panel_kb": statistics.median(panel_bytes[1:]) / 1024,
    }


def measure(mode: str, url: str, runs: str) -> dict[str, Any]:
    import kontext_nb

    if mode == "make":
        out = make(url, runs)
    elif mode == "kernel":
        out = kernel(url, runs)
    else:  # "memory": panel_bench's measure, under this process's kontext_nb
        sys.path.insert(0, str(BENCH))
        import panel_bench

        out = panel_bench.measure("add_result", url, runs)
    return {**out, "kontext_nb": kontext_nb.__file__}


# ---- the run -----------------------------------------------------------------------------------------------------
def old_tree(tmp: Path) -> Path | None:
    """kontext_nb at WAVE_START in a folder of its own, or None when this checkout does not have that commit."""
    archive = tmp / "old.tar"
    with archive.open("wb") as out:
        done = subprocess.run(["git", "-C", str(ROOT), "archive", WAVE_START, "kontext_nb"], stdout=out, check=False)
    if done.returncode != 0:
        return None
    folder = tmp / "old"
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")
    return folder


def child(version: Path | None, mode: str, url: str, runs: Path) -> dict[str, Any]:
    env = dict(os.environ)
    if version is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(version), env.get("PYTHONPATH")) if p)
    cmd = [sys.executable, __file__, "--measure", mode, url, str(runs)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env, cwd=BENCH)
    if done.returncode != 0:
        raise RuntimeError(
            f"{mode} under {version or 'this checkout'} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    expected = str(version) if version is not None else str(ROOT)
    if not out["kontext_nb"].startswith(expected):
        raise RuntimeError(f"{mode} imported {out['kontext_nb']}, not the kontext_nb under {expected}")
    return out


def fmt(values: list[float]) -> str:
    return f"{statistics.median(values):.0f} ms (p90 {percentile(values, 90):.0f})"


def main() -> None:
    from common import sandbox_process
    from duel_browser import browser_round_trip

    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        old = old_tree(tmp)
        versions: dict[str, Path | None] = {"now": None}
        if old is not None:
            versions = {"wave start": old, "now": None}
        found: dict[str, dict[str, Any]] = {name: {} for name in versions}
        with sandbox_process(workers=8, inference_time=0.01, image_scale=1.0) as (url, _control):
            for name, version in versions.items():
                runs = tmp / f"runs-{name.replace(' ', '-')}"
                child(version, "make", url, runs)
                found[name].update(child(version, "kernel", url, runs))
                found[name]["memory"] = child(version, "memory", url, runs)
        for name, version in versions.items():
            found[name]["duel"] = browser_round_trip(
                votes=VOTES, warmup=WARMUP, results=RESULTS, pythonpath=str(version) if version else None
            )

    def cells(measure: str, show: Any, target: str = "—") -> str:
        now = show(found["now"])
        then = show(found["wave start"]) if "wave start" in found else f"not measured ({WAVE_START} not in this clone)"
        return f"| {measure} | {now} | {then} | {target} |"

    def grown(m: dict[str, Any]) -> str:
        memory = m["memory"]
        return f"+{memory['after_mb'] - memory['before_mb']:.0f} MB"

    rows = [
        cells(
            f"History tab: its first page of 50 rows built in the kernel ({N}-job journal), and what it sends",
            lambda m: f"{fmt(m['history_ms'])}, {m['history_kb']:.0f} KB",
        ),
        cells(
            f"panel first render in the kernel: kx.Panel() until its Gallery shows the first {min(N, 48)} cards",
            lambda m: f"{fmt(m['panel_ms'])}, {m['panel_kb']:.0f} KB",
        ),
        cells(
            f"duel: key press → next pair on the screen (JupyterLab, Chromium, {RESULTS} results, median of {VOTES})",
            lambda m: fmt(m["duel"]),
            "< 100 ms",
        ),
        cells(
            f"Gallery of {N} full-size results read back from the journal: RSS over an empty gallery",
            grown,
            "< +300 MB",
        ),
    ]
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# kontext_nb views benchmark: now and at the wave's start",
        "",
        f"{stamp} · {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.platform()}, "
        f"load average {load:.1f} at the start",
        "",
        f"| measure | now | at the wave's start ({WAVE_START}) | target |",
        "|---|---|---|---|",
        *rows,
        "",
        "- the same sandbox process (8 workers, inference_time 0.01 s, 1024 px images) for both versions; each "
        "measure in a fresh process; comm messages JSON-encoded as a kernel sends them",
        "- the duel: time from the key going down (a capturing listener on the window) to the first frame in "
        "which the next pair's pictures are loaded, read after that frame; each pair looked at 0.4 s first",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    write_results(OUT, text)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--measure":
        print(json.dumps(measure(sys.argv[2], sys.argv[3], sys.argv[4])))
    else:
        main()
