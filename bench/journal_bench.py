"""Benchmark of the run journal at 10,000 jobs: history search, journaling cost per job, opening at load time.

    python bench/journal_bench.py     # about half a minute; prints a table and writes bench/journal_results.md
    python bench/journal_bench.py --tiny   # 200 jobs, a few runs of each: seconds, nothing written (CI runs it)

(a) ``Journal.search`` latency and rendering ``History`` for limit=50, (b) create + submitted +
finished for one job, (c) what loading the extension adds: a fresh process opening the journal
and listing ``uncollected()``. Measurement only: it never fails on a missed target.
"""

from __future__ import annotations

import datetime
import os
import platform
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import size, write_results
from PIL import Image

from kontext_nb.endpoints import ENDPOINTS
from kontext_nb.journal import folder as store
from kontext_nb.journal.db import Journal
from kontext_nb.views.history import History, _thumbnail_uri

ROOT = Path(__file__).resolve().parent.parent
JOBS = size(10_000, 200)
IMAGES = size(64, 4)  # distinct real files; job n lists images/n%64.jpg, so 50 consecutive rows read 50 different files
RUNS, WRITE_JOBS, PROCESS_RUNS = size(20, 2), size(200, 5), size(7, 1)
WORDS = (
    "a red fox sleeping in the snow under pine trees at dusk lighthouse on a rocky coast watercolour oil painting "
    "portrait of an old fisherman with a pipe cyberpunk city street neon rain reflections make it claymation turn "
    "the sky purple add a small boat remove the people cinematic lighting studio photo of a ceramic teapot wooden "
    "table soft morning light mountain lake mist golden hour"
)
VOCABULARY = WORDS.split()
TAGS = ("fox", "coast", "portrait", "client-a", "client-b", "draft", "final", "moodboard")
SEARCH_WORDS = "red fox"


def prompt(rng: random.Random) -> str:
    return " ".join(rng.choice(VOCABULARY) for _ in range(rng.randint(5, 20)))


def arguments(rng: random.Random, endpoint: str) -> dict[str, Any]:
    """What the engine journals: validated arguments, inline images replaced by a hash label."""
    args: dict[str, Any] = {
        "prompt": prompt(rng),
        "seed": rng.randrange(2**32),
        "guidance_scale": 3.5,
        "num_images": 1,
        "output_format": "jpeg",
        "safety_tolerance": "2",
        "enhance_prompt": False,
        "sync_mode": False,
        "aspect_ratio": rng.choice(("1:1", "16:9", "3:4")),
    }
    mode = ENDPOINTS[endpoint].mode
    if mode == "edit":
        args["image_url"] = f"<image sha256:{rng.getrandbits(64):016x}>"
    elif mode == "multi":
        args["image_urls"] = [f"<image sha256:{rng.getrandbits(64):016x}>" for _ in range(2)]
    return args


def one_job(journal: Journal, rng: random.Random, *, finish: bool = True) -> int:
    """One job as the engine journals it: the row before submitting, the request id, then the outcome."""
    endpoint = rng.choice(list(ENDPOINTS))
    args = arguments(rng, endpoint)
    tags = rng.sample(TAGS, rng.choice((0, 0, 1, 2)))
    job = journal.create(endpoint=endpoint, arguments=args, tags=tags, session="bench", source="generate")
    journal.submitted(job, f"{rng.getrandbits(128):032x}")
    if not finish:
        return job
    status = rng.choices(("done", "failed", "cancelled"), (90, 7, 3))[0]
    done = status == "done"
    journal.finished(
        job,
        status=status,
        seed=args["seed"],
        cost=0.08 if done else 0.0,
        num_images=1 if done else 0,
        timings={"inference": round(rng.uniform(3, 9), 3)} if done else None,
        nsfw=[False] if done else [],
        output_prompt=args["prompt"] if done else None,
        files=[f"images/{job % IMAGES}.jpg"] if done else [],
        error=None if done else "the job failed on fal: bench",
        error_type=None if done else "JobFailed",
    )
    return job


def fill(journal: Journal, rng: random.Random) -> float:
    """JOBS (10,000) jobs through the Journal API; a few (0.2 %) left submitted, as after a crashed kernel."""
    start = time.perf_counter()
    for _ in range(JOBS):
        one_job(journal, rng, finish=rng.random() > 0.002)
    return time.perf_counter() - start


def write_images(folder: Path) -> int:
    """Photo-like 1024x1024 JPEGs (smooth shapes, a little grain), about the size fal returns; the mean size."""
    (folder / "images").mkdir(exist_ok=True)
    side = (1024, 1024)
    for i in range(IMAGES):
        shapes = Image.effect_mandelbrot(side, (-2 + i / 50, -1.5, 1, 1.5), 100)
        scene = Image.merge(
            "RGB", (Image.radial_gradient("L").resize(side), shapes, Image.linear_gradient("L").resize(side))
        )
        picture = Image.blend(scene, Image.effect_noise(side, 20).convert("RGB"), 0.15)
        picture.save(folder / "images" / f"{i}.jpg", quality=90)
        # as the session does when a job finishes: the thumbnail from the file's bytes
        store.save_thumbnail(folder, f"images/{i}.jpg", (folder / "images" / f"{i}.jpg").read_bytes())
    return sum(p.stat().st_size for p in (folder / "images").iterdir()) // IMAGES


def timed(fn: Callable[[], Any], runs: int = RUNS) -> tuple[float, Any]:
    """Median milliseconds over runs (after one warm-up), and the last result."""
    result = fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result


def process_ms(code: str) -> list[float]:
    times = []
    for _ in range(PROCESS_RUNS + 1):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
        times.append((time.perf_counter() - start) * 1000)
    return times[1:]  # the first run compiles bytecode and warms the page cache


def row(measure: str, ms: float, target_ms: float, note: str = "") -> str:
    met = "yes" if ms < target_ms else "**no**"
    return f"| {measure} | {ms:.2f} ms{note} | < {target_ms:g} ms | {met} |"


def main() -> int:
    rng = random.Random(7)
    lines = ["| measure | kontext_nb | target | met? |", "|---|---|---|---|"]
    notes = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "runs"
        journal = Journal(folder)
        image_kb = write_images(folder) / 1000
        fill_s = fill(journal, rng)
        notes.append(f"filling {JOBS} jobs through the Journal API took {fill_s:.1f} s")

        # (a) history search
        some = journal.search(limit=1000)
        seed = rng.choice([r.seed for r in some if r.seed is not None])
        tag = "client-a"
        for label, filters in (
            (f'search(search="{SEARCH_WORDS}")', {"search": SEARCH_WORDS}),
            (f"search(seed={seed})", {"seed": seed}),
            (f'search(tag="{tag}")', {"tag": tag}),
            ("search(limit=50)", {"limit": 50}),
        ):
            ms, found = timed(lambda filters=filters: journal.search(**filters))
            lines.append(row(f"(a) {label}", ms, 100, f" ({len(found)} row{'s' if len(found) != 1 else ''})"))
        latest = journal.search(limit=50)

        def cold() -> dict[str, str]:
            _thumbnail_uri.cache_clear()  # every thumbnail decoded again, as on a fresh kernel
            return History(latest)._repr_mimebundle_()

        ms, bundle = timed(cold)
        thumbs = f" ({bundle['text/html'].count('<img')} thumbnails of {image_kb:.0f} KB JPEGs)"
        lines.append(row("(a) History(limit=50)._repr_mimebundle_(), cold", ms, 100, thumbs))
        ms, _ = timed(lambda: History(latest)._repr_mimebundle_())
        lines.append(row("(a) History(limit=50)._repr_mimebundle_(), shown again", ms, 100, " (thumbnails cached)"))
        (folder / "thumbs").rename(folder / "thumbs-away")
        ms, _ = timed(cold)
        notes.append(f"for reference: the cold table without thumbnail files (full-size JPEGs decoded): {ms:.0f} ms")
        (folder / "thumbs-away").rename(folder / "thumbs")
        blob = (folder / "images" / "0.jpg").read_bytes()
        meta = {"prompt": "a red fox in snow", "seed": 1, "endpoint": "fal-ai/flux-pro/kontext/max", "arguments": {}}

        def save_one() -> None:
            out = folder / "save-bench"
            name, _ = store.save_result_image(out, blob, "image/jpeg", meta)
            store.save_thumbnail(out, name, blob)
            shutil.rmtree(out)

        ms, _ = timed(save_one)
        lines.append(row("(d) one 1 MP image to disk: metadata embedded, thumbnail, in a worker thread", ms, 50))
        ms, everything = timed(lambda: journal.search(), runs=5)
        notes.append(f"for reference: search() with no filter returns all {len(everything)} records in {ms:.0f} ms")
        ms, _ = timed(lambda: History(everything)._repr_mimebundle_(), runs=5)
        notes.append(f"for reference: History of all {len(everything)}, 500 rows, thumbnails cached: {ms:.0f} ms")

        # (b) journaling cost per job, into the 10k journal
        times = []
        for _ in range(WRITE_JOBS):
            start = time.perf_counter()
            one_job(journal, rng)
            times.append((time.perf_counter() - start) * 1000)
        p95 = statistics.quantiles(times, n=20)[-1]
        label = f"(b) create + submitted + finished, one job (median of {WRITE_JOBS})"
        lines.append(row(label, statistics.median(times), 5))
        notes.append(f"(b) p95 {p95:.2f} ms per job (three write transactions, WAL, synchronous=NORMAL)")
        uncollected = len(journal.uncollected())
        journal.close()

        # (c) a fresh process opening the journal, as loading the extension does
        open_code = f"import kontext_nb.journal.db as j; j.Journal({str(folder)!r}).uncollected()"
        base, opened = process_ms("pass"), process_ms(open_code)
        added = statistics.median(opened) - statistics.median(base)
        lines.append(row(f"(c) fresh process: import + Journal(path).uncollected() ({uncollected} jobs)", added, 200))
        notes.append(
            f"(c) median python -c 'pass' {statistics.median(base):.0f} ms, "
            f"with the journal {statistics.median(opened):.0f} ms ({PROCESS_RUNS} runs each)"
        )
        # (c) the same, the way a user meets it: %load_ext kontext_nb in a fresh IPython, this journal in use
        # timed inside the fresh process: a whole interpreter's start-up varies more than the load costs
        load = (
            "import time; from IPython.core.interactiveshell import InteractiveShell as S; ip = S.instance(); "
            "t = time.perf_counter(); ip.run_line_magic('load_ext', 'kontext_nb'); "
            "print('LOAD', (time.perf_counter() - t) * 1000)"
        )
        env = {**os.environ, "KONTEXT_HOME": str(folder)}
        env.pop("FAL_KEY", None)
        outs = [subprocess.run([sys.executable, "-c", load], env=env, capture_output=True, text=True, check=True)
                for _ in range(PROCESS_RUNS + 1)][1:]  # fmt: skip
        added = statistics.median(float(o.stdout.split("LOAD")[-1]) for o in outs)
        lines.append(row(f"(c) %load_ext kontext_nb in a fresh IPython, {JOBS:,} jobs in the journal", added, 200))
        size = sum(p.stat().st_size for p in folder.glob("journal.sqlite3*")) / 1e6
        notes.append(f"journal size on disk: {size:.1f} MB for {JOBS + WRITE_JOBS} jobs")

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine = (
        f"{now} · {len(os.sched_getaffinity(0))} CPUs (nproc), Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, {platform.platform()}"
    )
    text = "\n".join(["# kontext_nb journal benchmark", "", machine, "", *lines, "", *(f"- {n}" for n in notes), ""])
    print(text)
    write_results(Path(__file__).resolve().parent / "journal_results.md", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
