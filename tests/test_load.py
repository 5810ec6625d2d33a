"""200 jobs at once through one session, against a sandbox answering 429 to a fifth of submits and status reads.

What must hold under load: every job completes (or fails with a clear message: counted), nothing is lost (each
request the sandbox accepted is in the journal, done), nothing is sent twice (sandbox submits == 200 == journal
rows), the journal agrees with the disk (each done row's files exist and read back), and the kernel's memory stays
bounded. ``python bench/load_bench.py`` runs the same load with the sandbox in a process of its own and reports
the figures.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable

import pytest

import kontext_nb as kx
import kontext_nb.sandbox as sandbox
from kontext_nb.config import RetryPolicy
from kontext_nb.errors import KontextError
from kontext_nb.jobs import Job
from kontext_nb.session import Session

JOBS = 200
CONCURRENCY = WORKERS = 8
FAULT_RATE = 0.2
FAULTS = [{"route": route, "kind": "429", "rate": FAULT_RATE} for route in ("submit", "status", "stream")]
RETRY = RetryPolicy(attempts=15, base_delay=0.001, max_delay=0.01)
"""429 at rate 0.2 on 15 attempts in a row: 3e-11 per request, so a failure here is a bug, not bad luck."""
RSS_LIMIT_MB = 500


def rss_mb() -> float:
    """This process's resident memory now (not its peak), from /proc."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads RSS from /proc")
def test_200_jobs_at_once_with_random_429s(sb: sandbox.SandboxServer, make_session: Callable[..., Session]) -> None:
    sb.configure(workers=WORKERS, inference_time=0.02, image_scale=0.1, retry_after=0)
    session = make_session(concurrency=CONCURRENCY, retry=RETRY)
    session.generate("warm up: engine, journal, encoders", seed=0)  # so the RSS baseline has them loaded
    sb.reset()
    sb.set_faults(FAULTS, seed=20240611)
    gc.collect()
    rss_before = rss_mb()
    started = time.perf_counter()
    jobs: list[Job] = []
    for i in range(JOBS):
        job = session.generate(f"load test job {i}: a lighthouse at dusk", seed=1000 + i, wait=False)
        assert isinstance(job, Job)
        jobs.append(job)
    outcomes: dict[str, int] = {"done": 0, "failed": 0}
    errors: list[str] = []
    for job in jobs:
        try:
            job.result(timeout=60)
            outcomes["done"] += 1
        except KontextError as exc:
            outcomes["failed"] += 1
            errors.append(str(exc))
    took = time.perf_counter() - started
    del jobs
    gc.collect()
    rss_after = rss_mb()
    stats = sb.stats()
    injected = stats["faults_injected"].get("429", 0)
    retries = session.engine.transport.retries
    print(
        f"\n{JOBS} jobs in {took:.1f} s ({JOBS / took:.0f} jobs/s): {outcomes}; 429s injected {injected}, "
        f"retries {retries}; RSS {rss_before:.0f} -> {rss_after:.0f} MB ({rss_after - rss_before:+.0f} MB)"
    )

    # all complete or fail clearly
    assert outcomes["done"] + outcomes["failed"] == JOBS
    assert all(e and "\n" not in e and len(e) < 500 for e in errors), errors[:3]
    assert outcomes["failed"] == 0, f"{outcomes['failed']} failed, e.g. {errors[:3]}"
    assert injected >= JOBS * FAULT_RATE and retries >= injected, "the 429s fired and each was retried"

    # none duplicated: one submission per job, one row per job
    journal = session.tracker.journal
    records = [r for r in journal.search() if r.prompt.startswith("load test job")]
    assert stats["submits"] == JOBS == len(records)
    assert len({r.request_id for r in records}) == JOBS
    assert sorted(r.seed for r in records) == list(range(1000, 1000 + JOBS))

    # none lost: every request the sandbox accepted is in the journal, done (and done on the sandbox)
    accepted = set(sb.app.state.sandbox.queue.jobs)
    assert len(accepted) == JOBS and {r.request_id for r in records} == accepted
    assert {r.status for r in records} == {"done"} and stats["completed"] == JOBS
    assert session.tracker.resumable() == []

    # the journal agrees with the disk
    for record in records:
        assert record.files and record.num_images == 1, record
        for path in record.paths:
            assert path.is_file() and path.stat().st_size > 0, path
    assert kx.read_metadata(records[0].paths[0])["request_id"] == records[0].request_id
    assert session.result(records[-1].id).images[0].size[0] > 0

    # memory stays bounded
    assert rss_after - rss_before < RSS_LIMIT_MB
