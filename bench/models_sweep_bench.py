"""Benchmark of a sweep across models: a 4-model × 4-seed edit sweep against the same 16 jobs on one model.

    python bench/models_sweep_bench.py          # a minute or so; prints a table, writes bench/models_sweep_results.md
    python bench/models_sweep_bench.py --tiny   # 2 models × 2 seeds, one run: nothing written (CI runs it)

What differs between the two is kontext_nb's own work per model: each cell shaped by ``models.adapt`` from its
model's schema, priced by its model's rule (``models.bound``), validated, and each model's output normalised; the
sandbox (its own process) takes the same time for every model (``inference_time``), so the wall times compare the
client side. Both are sent as one sweep through the one door (one reservation), with ``cache=False``. Reported:
planning (shaping + pricing every cell, nothing sent) and the whole sweep's wall time, median of the runs.

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

from common import sandbox_process, size, write_results
from PIL import Image

from kontext_nb.config import Settings
from kontext_nb.session import Session
from kontext_nb.sweep import build_sweep
from kontext_nb.views.grid import Grid

ROOT = Path(__file__).resolve().parent
MODELS = size(["max", "flux2-flex-edit", "qwen-edit", "nano-banana-2-edit"], ["max", "flux2-flex-edit"])
SEEDS, RUNS = size(4, 2), size(5, 1)
SANDBOX = {"workers": 16, "queue_delay": 0.0, "inference_time": 0.2, "image_scale": 0.5}


def main() -> int:
    load_before = os.getloadavg()[0]
    jobs = len(MODELS) * SEEDS
    across: list[float] = []
    one: list[float] = []
    plan_across: list[float] = []
    plan_one: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, sandbox_process(**SANDBOX) as (url, _control):
        photo = Path(tmp) / "photo.png"
        Image.new("RGB", (768, 512), (90, 140, 200)).save(photo)
        settings = Settings(base_url=url, key="bench-key", runs_dir=str(Path(tmp) / "runs"), concurrency=16)
        session = Session(settings.with_(confirm_above=1000.0), notice=lambda message: None)
        try:
            for run in range(RUNS + 1):  # the first is a warm-up (imports, the registry's first parse)
                seeds = [run * 1000 + s for s in range(1, SEEDS + 1)]
                one_seeds = [run * 1000 + 500 + s for s in range(1, jobs + 1)]
                for label, models, swept, times, plans in (
                    ("across", MODELS, seeds, across, plan_across),
                    ("one", ["max"], one_seeds, one, plan_one),
                ):
                    start = time.perf_counter()
                    built = build_sweep("make it winter", {"seed": tuple(swept)}, model=models, mode="edit")
                    plan = session.plan_sweep(built, source=str(photo))
                    planned = time.perf_counter() - start
                    start = time.perf_counter()
                    grid = session.sweep("make it winter", source=str(photo), model=models, seed=swept, cache=False)
                    took = time.perf_counter() - start
                    assert isinstance(grid, Grid) and len(grid.results) == jobs == len(plan.requests), label
                    failed = [r for r in grid.results if isinstance(r, BaseException)]
                    assert not failed, failed[:1]
                    if run:
                        times.append(took)
                        plans.append(planned * 1000)
        finally:
            session.close()

    def shown(values: list[float], unit: str, digits: int) -> str:
        med = statistics.median(values)
        return f"{med:.{digits}f} {unit} (min {min(values):.{digits}f}, max {max(values):.{digits}f})"

    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = [
        (f"plan a {len(MODELS)}-model × {SEEDS}-seed sweep ({jobs} cells shaped and priced, nothing sent)",
         shown(plan_across, "ms", 1)),
        (f"plan {jobs} cells on one model (max)", shown(plan_one, "ms", 1)),
        (f"{len(MODELS)} models × {SEEDS} seeds, sent and collected (wall)", shown(across, "s", 2)),
        (f"the same {jobs} jobs on one model (max), sent and collected (wall)", shown(one, "s", 2)),
        ("across models / one model (wall)", f"{statistics.median(across) / statistics.median(one):.2f}×"),
    ]  # fmt: skip
    lines = [
        "# kontext_nb sweep across models benchmark",
        "",
        f"{now} · {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.platform()}",
        "",
        "| measure | kontext_nb |",
        "|---|---|",
        *(f"| {a} | {b} |" for a, b in rows),
        "",
        f"- models: {', '.join(MODELS)}; median of {RUNS} runs after a warm-up, cache=False, an edit of a 768x512 PNG",
        f"- sandbox in its own process ({SANDBOX['workers']} workers, {SANDBOX['inference_time']} s inference for every"
        f" model, image_scale {SANDBOX['image_scale']}); kontext_nb's concurrency 16; other work shares the machine's"
        f" CPUs (load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end)",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    write_results(ROOT / "models_sweep_results.md", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
