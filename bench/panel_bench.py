"""Benchmark of the panel's gallery: kernel memory with 500 full-size results in it.

    python bench/panel_bench.py     # a few minutes; prints a table and writes bench/panel_results.md
    python bench/panel_bench.py --tiny   # 8 results instead of 500: seconds, nothing written

Each measurement runs in a fresh Python process (the "kernel") against a sandbox in a process of its
own, with images at full size (image_scale 1.0: 1024x1024). RSS (VmRSS) is read after gc, first with
an empty gallery, then with 500 results in it:

- add_result: 500 results read back from the journal (``session.result``) and added, then dropped;
- follow: a gallery following the session while 500 jobs are made in the same process;
- engine: the same 500 jobs with no gallery, to tell the gallery's share from the engine's;
- history: the History tab opened on that 500-job journal (its first page of rows), then paged to all 500.

Measurement only: it never fails on a missed target.
"""

from __future__ import annotations

import datetime
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import size, write_results

N = size(500, 8)
BATCH = size(16, 4)
TARGET_MB = 300.0
OUT = Path(__file__).resolve().parent / "panel_results.md"


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def settled_rss() -> float:
    gc.collect()
    time.sleep(0.2)
    gc.collect()
    return rss_mb()


# ---- one measurement, in its own process ---------------------------------------------------------
def measure(mode: str, url: str, runs: str) -> dict[str, Any]:
    from kontext_nb.config import RetryPolicy, Settings
    from kontext_nb.session import Session
    from kontext_nb.widgets.cards import placeholder, shared
    from kontext_nb.widgets.gallery import Gallery

    settings = Settings(base_url=url, key="bench-key", runs_dir=runs, concurrency=8, retry=RetryPolicy(attempts=5))
    session = Session(settings, notice=lambda message: None)
    warm = session.generate("a warm-up picture", seed=10_000_000)  # engine, journal, first decode: all baseline
    shared(), placeholder()
    del warm
    if mode == "history":
        return measure_history(session)
    gallery = Gallery(session, max_cards=N) if mode != "engine" else None
    before = settled_rss()
    started = time.perf_counter()
    if mode == "add_result":
        ids = [r.id for r in session.history(limit=N + 1) if r.seed != 10_000_000][:N]
        assert gallery is not None and len(ids) == N, f"{len(ids)} results in {runs}: run the engine mode first"
        for journal_id in ids:
            gallery.add_result(session.result(journal_id))  # a full-size Result, dropped right after
    else:
        if gallery is not None:
            gallery.follow()
        for start in range(0, N, BATCH):
            jobs = [
                session.generate(f"a lighthouse at dusk, study {i}", seed=i, wait=False)
                for i in range(start, min(N, start + BATCH))
            ]
            for job in jobs:
                job.result(120)  # type: ignore[union-attr]
            del jobs
    if gallery is not None:
        deadline = time.monotonic() + 60
        while any(card.running for card in gallery.cards) and time.monotonic() < deadline:
            time.sleep(0.05)
    seconds = time.perf_counter() - started
    after = settled_rss()
    out: dict[str, Any] = {"mode": mode, "before_mb": before, "after_mb": after, "seconds": seconds}
    if gallery is not None:
        cards = gallery.cards
        out["cards"] = len(cards)
        out["thumb_kb"] = sum(len(c.thumbnail) for c in cards) / len(cards) / 1024
        out["max_thumb_kb"] = max(len(c.thumbnail) for c in cards) / 1024
        out["results_alive"] = sum(1 for c in cards if c._result_ref is not None and c._result_ref() is not None)
        gallery.close()
    session.close()
    return out


def measure_history(session: Any) -> dict[str, Any]:
    """The History tab on a journal of N jobs: opening it (one page of rows) and paging through all of them."""
    from kontext_nb.widgets.history_view import HistoryView

    before = settled_rss()
    started = time.perf_counter()
    view = HistoryView(session)
    opened = time.perf_counter() - started
    first_page = settled_rss()
    started = time.perf_counter()
    while view.page.more:
        view.show_more()
    paged = time.perf_counter() - started
    out = {
        "mode": "history",
        "before_mb": before,
        "first_page_mb": first_page,
        "after_mb": settled_rss(),
        "open_s": opened,
        "page_s": paged,
        "shown": len(view.records),
    }
    view.close()
    session.close()
    return out


def run_child(mode: str, url: str, runs: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--measure", mode, url, runs]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{mode} measurement failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---- the table ---------------------------------------------------------------------------------------
def main() -> None:
    from common import sandbox_process  # the measuring children need none of it

    with (
        tempfile.TemporaryDirectory() as tmp,
        sandbox_process(workers=8, inference_time=0.01, image_scale=1.0) as (
            url,
            _control,
        ),
    ):
        engine = run_child("engine", url, str(Path(tmp) / "engine"))
        follow = run_child("follow", url, str(Path(tmp) / "follow"))
        added = run_child("add_result", url, str(Path(tmp) / "engine"))
        history = run_child("history", url, str(Path(tmp) / "engine"))
    grow = {m["mode"]: m["after_mb"] - m["before_mb"] for m in (engine, follow, added)}
    share = grow["follow"] - grow["engine"]

    def met(value: float) -> str:
        return "yes" if value < TARGET_MB else "no"

    rows = [
        (
            f"Gallery of {N} full-size results (1024x1024, read back from the journal), RSS over an empty gallery",
            f"+{grow['add_result']:.0f} MB ({added['thumb_kb']:.1f} KB thumbnail per card, "
            f"{added['results_alive']} full Results kept)",
            f"< +{TARGET_MB:.0f} MB",
            met(grow["add_result"]),
        ),
        (
            f"Gallery following the session while {N} jobs are made in the same kernel, RSS over an empty gallery",
            f"+{grow['follow']:.0f} MB ({follow['cards']} cards, {follow['results_alive']} full Results alive)",
            f"< +{TARGET_MB:.0f} MB",
            met(grow["follow"]),
        ),
        (f"the same {N} jobs with no gallery (the engine alone)", f"+{grow['engine']:.0f} MB", "—", "—"),
        (
            "the gallery's share on the follow path (row 2 − row 3)",
            f"+{share:.0f} MB",
            f"< +{TARGET_MB:.0f} MB",
            met(share),
        ),
        (
            f"History tab opened on a {N}-job journal (its first page of rows), RSS over none",
            f"+{history['first_page_mb'] - history['before_mb']:.0f} MB in {history['open_s'] * 1000:.0f} ms",
            "—",
            "—",
        ),
        (
            f"the History tab paged to all {N} jobs (“more”), RSS over none",
            f"+{history['after_mb'] - history['before_mb']:.0f} MB, {history['page_s']:.1f} s of paging",
            "—",
            "—",
        ),
    ]
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# kontext_nb panel benchmark: gallery memory",
        "",
        f"{now} · {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.platform()}",
        "",
        "| measure | kontext_nb | target | met? |",
        "|---|---|---|---|",
        *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows],
        "",
        f"- sandbox in its own process: 8 workers, inference_time 0.01 s, image_scale 1.0; each measurement in a fresh "
        f"process; RSS = VmRSS after gc (empty gallery: {added['before_mb']:.0f} MB)",
        f"- adding {N} results from the journal took {added['seconds']:.1f} s "
        f"({added['seconds'] / N * 1000:.1f} ms per card, including reading each full image back); "
        f"making {N} jobs while following: {follow['seconds']:.1f} s",
        f"- largest thumbnail held by a card: {added['max_thumb_kb']:.1f} KB",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    write_results(OUT, text)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--measure":
        print(json.dumps(measure(sys.argv[2], sys.argv[3], sys.argv[4])))
    else:
        main()
