"""Benchmarks: kontext_nb's engine against fal_client, both talking to the sandbox in another process.

    python bench/run.py          # about a minute; prints a table and writes bench/results.md
    python bench/run.py --tiny   # a few jobs per section: seconds, nothing written (CI runs it)

(a) completion-notice latency and HTTP requests per job, (b) throughput of 64 queued jobs,
(c) end-to-end time per job. Measurement only: it never fails on a missed target.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import platform
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fal_client

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    ENDPOINT,
    Row,
    TimedEngine,
    arguments,
    download_and_decode,
    fal_clients,
    make_engine,
    median,
    percentile,
    sandbox_process,
    size,
    table,
    write_results,
)

from kontext_nb.sandbox import SandboxControl

IMAGE_SCALE = 0.5
WARMUP = size(2, 1)
LATENCY_JOBS, LATENCY_INFERENCE = size(30, 3), size(0.3, 0.05)
BATCH_JOBS, BATCH_INFERENCE, BATCH_WORKERS, SEQUENTIAL_JOBS = size(64, 12), size(0.5, 0.05), size(8, 4), size(16, 4)
E2E_JOBS, E2E_INFERENCE = size(20, 2), size(0.3, 0.05)
JITTER = 0.1  # inference time drawn from [base, base + JITTER): one poll interval, so pollers see every phase


def jitter(control: SandboxControl, rng: random.Random, base: float) -> None:
    """Vary the next job's inference time, so a poller's phase against completion is uniform, not locked."""
    control.configure(inference_time=base + rng.uniform(0, JITTER))


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def routes(control: SandboxControl, jobs: int) -> str:
    """Server-side requests per job by route, e.g. 'submit 1, stream 1, result 1, media 1'."""
    counts = control.stats()["requests"]
    return ", ".join(f"{route} {n / jobs:.3g}" for route, n in sorted(counts.items()))


# ---- (a) completion-notice latency and requests per job ---------------------------------------
def engine_latency(engine: TimedEngine, control: SandboxControl) -> tuple[list[float], list[int], str]:
    for i in range(WARMUP):
        engine.submit(ENDPOINT, arguments(i)).result(60)
    control.reset()
    lags, counts, rng = [], [], random.Random(1)
    for i in range(LATENCY_JOBS):
        jitter(control, rng, LATENCY_INFERENCE)
        before = engine.transport.requests_sent
        job = engine.submit(ENDPOINT, arguments(100 + i))
        job.result(60)
        counts.append(engine.transport.requests_sent - before)
        assert job.request_id is not None
        lags.append(engine.noticed[job.request_id] - control.request_info(job.request_id)["completed_at"])
    return lags, counts, routes(control, LATENCY_JOBS)


async def subscribe_latency(url: str, control: SandboxControl) -> tuple[list[float], list[int], str]:
    lags, counts, rng = [], [], random.Random(1)
    async with fal_clients(url) as (client, media):
        for i in range(WARMUP + LATENCY_JOBS):
            if i == WARMUP:
                control.reset()
            if i >= WARMUP:
                jitter(control, rng, LATENCY_INFERENCE)
            seen: dict[str, Any] = {}

            def on_update(status: fal_client.Status, seen: dict[str, Any] = seen) -> None:
                if isinstance(status, fal_client.Completed):
                    seen.setdefault("noticed", time.time())

            def on_enqueue(request_id: str, seen: dict[str, Any] = seen) -> None:
                seen["id"] = request_id

            before = client.transport.requests_sent
            output = await client.subscribe(
                ENDPOINT, arguments(200 + i), on_enqueue=on_enqueue, on_queue_update=on_update
            )
            await download_and_decode(media, output)
            if i >= WARMUP:
                counts.append(client.transport.requests_sent - before)
                lags.append(seen["noticed"] - control.request_info(seen["id"])["completed_at"])
    return lags, counts, routes(control, LATENCY_JOBS)


def latency(engine: TimedEngine, url: str, control: SandboxControl, report: Report) -> None:
    control.configure(workers=1, inference_time=LATENCY_INFERENCE, queue_delay=0.0)
    e_lags, e_counts, e_routes = engine_latency(engine, control)
    s_lags, s_counts, s_routes = asyncio.run(subscribe_latency(url, control))
    e_med, e_p90 = median(e_lags) * 1000, percentile(e_lags, 90) * 1000
    s_med, s_p90 = median(s_lags) * 1000, percentile(s_lags, 90) * 1000
    e_req, s_req = sum(e_counts) / len(e_counts), sum(s_counts) / len(s_counts)
    report.rows += [
        Row(
            f"(a) completion noticed after server's COMPLETED, median / p90 ({LATENCY_JOBS} jobs)",
            f"{e_med:.1f} / {e_p90:.1f} ms",
            f"fal_client.subscribe (0.1 s polls): {s_med:.1f} / {s_p90:.1f} ms",
            "median <= 20 ms",
            e_med <= 20,
        ),
        Row(
            "(a) HTTP requests per single-image job, incl. image download",
            f"{e_req:.2f}",
            f"fal_client.subscribe + httpx download: {s_req:.2f}",
            "<= 4",
            e_req <= 4,
        ),
    ]
    report.notes += [
        f"(a) server-side requests per job, engine: {e_routes}",
        f"(a) server-side requests per job, fal_client.subscribe(on_queue_update=...) + download: {s_routes} "
        "(subscribe polls until COMPLETED, then get() asks for the status once more before the result)",
    ]


# ---- (b) 64 jobs through 8 workers ---------------------------------------------------------------
@dataclass
class Batch:
    wall: float
    run: float
    """Mean server time per job, started to COMPLETED (the sandbox's own overrun of the inference time)."""
    refill: float
    """Mean time a freed worker stood idle before its next job started (client round trip when it queues locally)."""


def engine_batch(engine: TimedEngine, control: SandboxControl) -> Batch:
    for i in range(WARMUP):
        engine.submit(ENDPOINT, arguments(i)).result(60)
    control.reset()
    start = time.perf_counter()
    jobs = [engine.submit(ENDPOINT, arguments(300 + i)) for i in range(BATCH_JOBS)]
    for job in jobs:
        job.result(120)
    wall = time.perf_counter() - start
    infos = [control.request_info(job.request_id or "") for job in jobs]
    starts = sorted(i["started_at"] for i in infos)
    ends = sorted(i["completed_at"] for i in infos)
    # the k-th completion frees the worker the (k + workers)-th job starts on
    gaps = [s - e for s, e in zip(starts[BATCH_WORKERS:], ends, strict=False)]
    runs = [i["completed_at"] - i["started_at"] for i in infos]
    return Batch(wall, sum(runs) / len(runs), sum(gaps) / len(gaps))


async def subscribe_batch(url: str, jobs: int, concurrency: int) -> float:
    async with fal_clients(url) as (client, media):
        await download_and_decode(media, await client.subscribe(ENDPOINT, arguments(0)))  # warm-up
        slots = asyncio.Semaphore(concurrency)

        async def one(seed: int) -> None:
            async with slots:
                await download_and_decode(media, await client.subscribe(ENDPOINT, arguments(seed)))

        start = time.perf_counter()
        await asyncio.gather(*(one(400 + i) for i in range(jobs)))
        return time.perf_counter() - start


def batch(engine: TimedEngine, url: str, control: SandboxControl, report: Report) -> None:
    control.configure(workers=BATCH_WORKERS, inference_time=BATCH_INFERENCE, queue_delay=0.0)
    ideal = BATCH_JOBS * BATCH_INFERENCE / BATCH_WORKERS
    ours = engine_batch(engine, control)
    deep = make_engine(url, concurrency=BATCH_JOBS)  # every job submitted at once: the queue is on the server
    try:
        server_queue = engine_batch(deep, control)
    finally:
        deep.close()
    sequential = asyncio.run(subscribe_batch(url, SEQUENTIAL_JOBS, 1)) * BATCH_JOBS / SEQUENTIAL_JOBS
    parallel = asyncio.run(subscribe_batch(url, BATCH_JOBS, BATCH_WORKERS))
    report.rows.append(
        Row(
            f"(b) wall time, {BATCH_JOBS} jobs × {BATCH_INFERENCE} s on {BATCH_WORKERS} workers, engine concurrency 8",
            f"{ours.wall:.2f} s ({ours.wall / ideal:.2f}× ideal)",
            f"ideal {ideal:.2f} s; sequential subscribe {sequential:.1f} s (×{BATCH_JOBS // SEQUENTIAL_JOBS} of "
            f"{SEQUENTIAL_JOBS} jobs); 8 concurrent subscribe tasks {parallel:.2f} s",
            "<= 1.15× ideal",
            ours.wall <= 1.15 * ideal,
        )
    )
    report.notes += [
        f"(b) where the engine's time over ideal goes: the sandbox ran each job {ours.run * 1000:.0f} ms "
        f"(inference {BATCH_INFERENCE * 1000:.0f} ms); a freed worker waited {ours.refill * 1000:.0f} ms on average "
        "for the engine's next submit (it queues jobs beyond its concurrency locally)",
        f"(b) the same engine with concurrency {BATCH_JOBS} (all jobs queued on the server): {server_queue.wall:.2f} s "
        f"({server_queue.wall / ideal:.2f}× ideal), worker idle {server_queue.refill * 1000:.0f} ms per job",
        "(b) every client downloads and decodes each image; wall time runs from the first submit to the last "
        "decoded image",
    ]


# ---- (c) end to end ------------------------------------------------------------------------------
async def end_to_end(engine: TimedEngine, url: str, control: SandboxControl) -> tuple[list[float], list[float]]:
    ours, raw, rng = [], [], random.Random(2)
    async with fal_clients(url) as (client, media):
        for i in range(WARMUP + E2E_JOBS):  # alternate the two clients so drift hits both alike
            draw = rng.getstate()
            jitter(control, rng, E2E_INFERENCE)
            start = time.perf_counter()
            result = engine.submit(ENDPOINT, arguments(500 + i)).result(60)  # blocks; the engine has its own loop
            assert result.images and result.images[0].size[0] > 0
            rng.setstate(draw)  # the same inference time for the raw client's job
            jitter(control, rng, E2E_INFERENCE)
            middle = time.perf_counter()
            handle = await client.submit(ENDPOINT, arguments(600 + i))
            images = await download_and_decode(media, await handle.get())
            assert images and images[0].size[0] > 0
            end = time.perf_counter()
            if i >= WARMUP:
                ours.append(middle - start)
                raw.append(end - middle)
    return ours, raw


def e2e(engine: TimedEngine, url: str, control: SandboxControl, report: Report) -> None:
    control.configure(workers=1, inference_time=E2E_INFERENCE, queue_delay=0.0)
    ours, raw = asyncio.run(end_to_end(engine, url, control))
    ratio = median(ours) / median(raw)
    report.rows.append(
        Row(
            f"(c) submit → decoded PIL images, median ({E2E_JOBS} sequential jobs)",
            f"{median(ours) * 1000:.0f} ms ({ratio:.2f}× raw)",
            f"raw fal_client submit + handle.get() + httpx download + PIL decode: {median(raw) * 1000:.0f} ms",
            "<= 1.10× raw",
            ratio <= 1.10,
        )
    )


# ---- main ----------------------------------------------------------------------------------------
def main() -> int:
    report = Report()
    started = time.perf_counter()
    with sandbox_process(image_scale=IMAGE_SCALE, queue_delay=0.0) as (url, control):
        engine = make_engine(url)
        try:
            latency(engine, url, control, report)
            batch(engine, url, control, report)
            e2e(engine, url, control, report)
        finally:
            engine.close()
    settings = (
        f"sandbox in its own process (python -m kontext_nb.sandbox), image_scale {IMAGE_SCALE}, queue_delay 0; "
        f"(a) {LATENCY_JOBS} jobs, inference {LATENCY_INFERENCE}-{LATENCY_INFERENCE + JITTER:g} s, 1 worker; "
        f"(b) {BATCH_JOBS} jobs, inference {BATCH_INFERENCE} s, {BATCH_WORKERS} workers; "
        f"(c) {E2E_JOBS} jobs, inference {E2E_INFERENCE}-{E2E_INFERENCE + JITTER:g} s, 1 worker; "
        f"{WARMUP} warm-up jobs per client per section, not counted; endpoint {ENDPOINT}, 1 image per job"
    )
    machine = f"{len(os.sched_getaffinity(0))} CPUs (nproc), Python {platform.python_version()}, {platform.platform()}"
    when = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    body = "\n".join(
        [
            table(report.rows),
            "",
            *[f"- {note}" for note in report.notes],
            f"- total run time {time.perf_counter() - started:.0f} s",
        ]
    )
    print(body)
    print(f"\nsettings: {settings}\nmachine: {machine}")
    text = f"# kontext_nb benchmarks\n\n{when} · {machine}\n\nSettings: {settings}\n\n{body}\n"
    write_results(Path(__file__).resolve().parent / "results.md", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
