"""Benchmark of judging: change scores, a duel vote's round trip, a 100-image report.

    python bench/judge_bench.py     # about a minute; prints a table and writes bench/judge_results.md
    python bench/judge_bench.py --tiny   # 12 results, 2 edits, a 4-result browser duel: nothing written (CI runs it)

- ``kx.changes``' computation (``judging.changes.compute``) on 1 MP (1024 x 1024) and 4 MP (2048 x 2048) pairs of
  textured pictures with a local edit, median of 15 runs after a warm-up; and ``kx.changes`` end to end on a
  journal edit (reading both images back from the runs folder, keeping the numbers in the journal).
- A vote's round trip in the duel view, in the kernel: ``DuelView`` receives the browser's message, records the
  vote in the journal, fits Bradley–Terry, picks the next pair and encodes its two images (12 results, the
  sandbox's 1024 px images); and in a real browser (bench/duel_browser.py: JupyterLab, headless Chromium): from
  the key press to the next pair drawn, as a voter sees it.
- ``kx.report`` over 100 results (90 text-to-image, 10 edits with change scores, 40 votes, some ratings), images
  at 512 px: time and file size.

Measurement only: it never fails on a missed target.
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import sandbox_process, size, write_results
from duel_browser import browser_round_trip
from PIL import Image, ImageDraw

import kontext_nb as kx
from kontext_nb.config import Settings
from kontext_nb.judging.changes import compute
from kontext_nb.judging.duel import LocalDuel
from kontext_nb.result import Result
from kontext_nb.session import Session
from kontext_nb.widgets.duel import DuelView

ROOT = Path(__file__).resolve().parent
RESULTS, EDITS, RUNS, VOTES = size(90, 12), size(10, 2), size(15, 2), size(40, 3)
"""text-to-image results and edits in the report; runs of each timing; votes timed (and cast) in the kernel"""
SANDBOX = {"workers": 8, "queue_delay": 0.0, "inference_time": 0.01, "image_scale": 1.0}


def textured(side: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (side // 32, side // 32, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((side, side), Image.Resampling.BICUBIC)


def timed(fn: object, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        out.append((time.perf_counter() - start) * 1000)
    return out


def changes_pair(side: int) -> list[float]:
    before = textured(side, 1)
    after = before.copy()
    ImageDraw.Draw(after).ellipse((side // 4, side // 4, side // 2, side // 2), fill=(200, 30, 30))
    compute(before, after)  # warm-up: imports, first allocations
    return timed(lambda: compute(before, after), RUNS)


def fmt(values: list[float]) -> str:
    return f"{statistics.median(values):.0f} ms (min {min(values):.0f}, max {max(values):.0f})"


def main() -> int:
    load_before = os.getloadavg()[0]
    rows: list[tuple[str, str, str]] = []
    one, four = changes_pair(1024), changes_pair(2048)
    rows.append(("kx.changes computation, 1 MP pair (1024 x 1024)", fmt(one), "< 200 ms"))
    rows.append(("kx.changes computation, 4 MP pair (2048 x 2048)", fmt(four), "—"))
    notes: list[str] = []
    with tempfile.TemporaryDirectory() as tmp, sandbox_process(**SANDBOX) as (url, _control):
        session = Session(Settings(base_url=url, key="bench-key", runs_dir=str(Path(tmp) / "runs")), notice=print)
        kx.set_session(session)
        jobs = [kx.generate(f"a lighthouse, study {i % 9}", seed=i + 1, wait=False) for i in range(RESULTS)]
        results = [job.result() for job in jobs]  # type: ignore[union-attr]
        edits = [kx.edit(results[i], "make it winter", seed=500 + i) for i in range(EDITS)]
        assert all(isinstance(r, Result) for r in [*results, *edits])
        end_to_end = timed(lambda: kx.changes(edits[0]), size(10, 2))
        rows.append(("kx.changes on a journal edit, end to end (1024 px images read from disk)", fmt(end_to_end), "—"))

        view = DuelView(LocalDuel(session.tracker.journal, [session.record(r) for r in results[:12]], voter="bench"))
        for _ in range(size(5, 1)):  # warm-up: each result's duel image is encoded once, then kept
            view.choose("left")
        rounds = []
        for k in range(VOTES):
            start = time.perf_counter()
            view._on_message(
                view, {"type": "vote", "choice": ("left", "right", "tie")[k % 3], "number": view.number}, []
            )
            rounds.append((time.perf_counter() - start) * 1000)
        label = "a duel vote in the kernel (record, refit, the pair after each choice sent ahead), 12 results"
        rows.append((label, fmt(rounds), "—"))

        everyone = [*results, *edits]
        rng = np.random.default_rng(3)
        for _ in range(VOTES):
            a, b = rng.choice(len(results), 2, replace=False)
            kx.vote(results[a], results[b], voter=f"v{a % 5}")
        for i in range(0, len(everyone), 7):
            kx.rate(everyone[i], 1 + i % 5)
        path = Path(tmp) / "report.html"
        start = time.perf_counter()
        kx.report(everyone, path, size=512)
        took = time.perf_counter() - start
        nbytes = path.stat().st_size
        label = f"kx.report of {len(everyone)} results at 512 px ({EDITS} edits scored), time"
        rows.append((label, f"{took:.1f} s", "—"))
        rows.append(
            (
                "its size (one self-contained HTML file)",
                f"{nbytes / 1e6:.1f} MB ({nbytes / len(everyone) / 1e3:.0f} KB a result)",
                "—",
            )
        )
        start = time.perf_counter()
        kx.report(everyone, path, size=256, zip=True)
        small = path.stat().st_size
        notes.append(
            f"at 256 px the same report is {small / 1e6:.1f} MB; with zip=True the zip of full-size files and the CSV "
            f"is {path.with_suffix('.zip').stat().st_size / 1e6:.1f} MB ({time.perf_counter() - start:.1f} s for both)"
        )
        session.close()

    browser = browser_round_trip(votes=size(30, 2), warmup=size(5, 1), results=size(12, 4))
    rows.append(
        (
            "a duel vote in the browser: key press → next pair on the screen (JupyterLab, Chromium)",
            fmt(browser),
            "—",
        )
    )
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# kontext_nb judging benchmark",
        "",
        f"{stamp} · {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.platform()}",
        "",
        "| measure | kontext_nb | target |",
        "|---|---|---|",
        *(f"| {a} | {b} | {c} |" for a, b, c in rows),
        "",
        *(f"- {n}" for n in notes),
        "- sandbox in its own process (8 workers, image_scale 1.0: 1024 px JPEG results); other work on the machine"
        f" shares its CPUs (load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end), so"
        " figures vary run to run: the minimum is what an idle machine gives",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    write_results(ROOT / "judge_results.md", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
