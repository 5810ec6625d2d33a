"""Load: 200 jobs at once through one session, the sandbox in a process of its own answering 429 to a share of
submits and status reads. The same load as tests/test_load.py, measured.

    python bench/load_bench.py            # ~40 s; prints a table and writes bench/load_results.md
    python bench/load_bench.py --jobs 500 --rate 0.3
    python bench/load_bench.py --tiny     # 20 jobs, one run per rate: seconds, nothing written

For each fault rate: wall time, jobs/s, retries the client made and 429s the sandbox injected, what became of
every job (done / failed, lost, sent twice, rows whose files are missing), and the resident memory of the client
process before and after. Measurement only: it exits 0 even when a check fails, and says so in the table.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from common import TINY, size, write_results

from kontext_nb import sandbox
from kontext_nb.config import RetryPolicy, Settings
from kontext_nb.errors import KontextError
from kontext_nb.jobs import Job
from kontext_nb.session import Session

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "load_results.md"
WORKERS = CONCURRENCY = 8
INFERENCE = 0.02
IMAGE_SCALE = 0.1
RETRY = RetryPolicy(attempts=15, base_delay=0.001, max_delay=0.01)
ROUTES = ("submit", "status", "stream")


def rss_mb(pid: int | str = "self") -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SandboxProcess:
    """``python -m kontext_nb.sandbox --port N --workers 8 ...``; faults and counters through its control API."""

    def __init__(self, fault_seed: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [
            sys.executable, "-m", "kontext_nb.sandbox", "--host", "127.0.0.1", "--port", str(self.port),
            "--workers", str(WORKERS), "--inference-time", str(INFERENCE), "--image-scale", str(IMAGE_SCALE),
            "--retry-after", "0", "--fault-seed", str(fault_seed),
        ]  # fmt: skip
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - the server's output, closed in close()
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.control = sandbox.control(self.url)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.control.stats()
                return
            except httpx.HTTPError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.log.seek(0)
                    raise RuntimeError(
                        f"the sandbox did not start: {self.log.read().decode(errors='replace')}"
                    ) from None
                time.sleep(0.05)

    def faults(self, rate: float, seed: int) -> None:
        """POST /_sandbox/faults: 429 at this rate on submit, status and the status stream."""
        rules = [{"route": route, "kind": "429", "rate": rate} for route in ROUTES] if rate else []
        self.control.set_faults(rules, seed=seed)

    def close(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@dataclass
class Run:
    rate: float
    jobs: int
    seconds: float
    done: int
    failed: int
    errors: list[str]
    retries: int
    injected: int
    submits: int
    rows: int
    lost: int
    duplicated: int
    missing_files: int
    rss_before: float
    rss_held: float
    rss_after: float
    sandbox_rss: float

    @property
    def ok(self) -> bool:
        return (
            self.done + self.failed == self.jobs
            and self.failed == 0
            and self.submits == self.jobs == self.rows
            and self.lost == self.duplicated == self.missing_files == 0
        )


def run_load(jobs: int, rate: float, seed: int) -> Run:
    server = SandboxProcess(fault_seed=seed)
    runs_dir = tempfile.mkdtemp(prefix="kontext-load-")
    settings = Settings(base_url=server.url, key="bench-key", concurrency=CONCURRENCY, retry=RETRY, runs_dir=runs_dir)
    session = Session(settings, notice=lambda message: None)
    try:
        session.generate("warm up: engine, journal, encoders", seed=0)
        server.control.reset()
        server.faults(rate, seed)
        gc.collect()
        rss_before = rss_mb()
        started = time.perf_counter()
        sent: list[Job] = []
        for i in range(jobs):
            job = session.generate(f"load job {i}: a lighthouse at dusk", seed=1000 + i, wait=False)
            assert isinstance(job, Job)
            sent.append(job)
        done, errors = 0, []
        for job in sent:
            try:
                job.result(timeout=120)
                done += 1
            except KontextError as exc:
                errors.append(str(exc))
        seconds = time.perf_counter() - started
        rss_held = rss_mb()
        request_ids = {job.request_id for job in sent}
        del sent
        gc.collect()
        rss_after = rss_mb()
        stats = server.control.stats()
        records = [r for r in session.tracker.journal.search() if r.prompt.startswith("load job")]
        journal_ids = [r.request_id for r in records]
        missing = sum(1 for r in records if r.status == "done" and not all(p.is_file() for p in r.paths))
        return Run(
            rate=rate,
            jobs=jobs,
            seconds=seconds,
            done=done,
            failed=len(errors),
            errors=errors[:3],
            retries=session.engine.transport.retries,
            injected=stats["faults_injected"].get("429", 0),
            submits=stats["submits"],
            rows=len(records),
            lost=len(request_ids - {r.request_id for r in records if r.status == "done"}),
            duplicated=len(journal_ids) - len(set(journal_ids)),
            missing_files=missing,
            rss_before=rss_before,
            rss_held=rss_held,
            rss_after=rss_after,
            sandbox_rss=rss_mb(server.proc.pid),
        )
    finally:
        session.close()
        server.close()


def table(runs: list[Run]) -> str:
    head = [
        "429 rate", "jobs", "wall time", "jobs/s", "done / failed", "client retries", "429s injected",
        "sandbox submits", "journal rows", "lost / twice / files missing", "client RSS before → all held → released",
        "sandbox RSS", "all checks",
    ]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in runs:
        cells = [
            f"{r.rate:.0%}", str(r.jobs), f"{r.seconds:.2f} s", f"{r.jobs / r.seconds:.0f}", f"{r.done} / {r.failed}",
            str(r.retries), str(r.injected), str(r.submits), str(r.rows),
            f"{r.lost} / {r.duplicated} / {r.missing_files}",
            f"{r.rss_before:.0f} → {r.rss_held:.0f} → {r.rss_after:.0f} MB",
            f"{r.sandbox_rss:.0f} MB", "yes" if r.ok else "**no**",
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=size(200, 20))
    parser.add_argument("--rate", type=float, action="append", help="429 rate (repeatable; default 0 and 0.2)")
    parser.add_argument("--repeat", type=int, default=size(3, 1), help="runs per rate (a shared machine: medians help)")
    parser.add_argument("--seed", type=int, default=20240611, help="seed of the sandbox's fault RNG")
    parser.add_argument("--no-write", action="store_true", help=f"do not write {RESULTS.name}")
    args = parser.parse_args(argv)
    runs = []
    rates = args.rate or [0.0, 0.2]
    for n in range(args.repeat):
        for rate in rates:
            print(f"{args.jobs} jobs, 429 rate {rate:.0%}, run {n + 1} of {args.repeat} ...", flush=True)
            runs.append(run_load(args.jobs, rate, args.seed + n))
    runs.sort(key=lambda r: r.rate)
    medians = []
    for rate in rates:
        times = [r.seconds for r in runs if r.rate == rate]
        wall = statistics.median(times)
        medians.append(
            f"- 429 rate {rate:.0%}: median {wall:.2f} s ({args.jobs / wall:.0f} jobs/s) over {len(times)} runs, "
            f"range {min(times):.2f}–{max(times):.2f} s"
        )
    lines = [
        "# Load: jobs at once through one session",
        "",
        f"Measured with `python bench/load_bench.py` on {datetime.date.today().isoformat()}: "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.system()}.",
        "",
        f"All jobs submitted at once (`wait=False`) through one session with concurrency {CONCURRENCY}; the sandbox "
        f"in a separate process (`python -m kontext_nb.sandbox --workers {WORKERS} --inference-time {INFERENCE} "
        f"--image-scale {IMAGE_SCALE} --retry-after 0`), its 429s set through `/_sandbox/faults` on "
        f"{', '.join(ROUTES)}; retry policy: {RETRY.attempts} attempts. *Lost*: a request id the client got back "
        "that is not a done row of the journal; *twice*: a request id on two rows; *files missing*: a done row "
        "whose image file is not on disk. Client RSS: resident memory of the benchmark's process before the first "
        "submit, when every job's Result is held, and after they are released.",
        "",
        table(runs),
        "",
        *medians,
    ]
    for r in runs:
        if r.errors:
            lines += ["", f"Errors at rate {r.rate:.0%} (first three): " + "; ".join(r.errors)]
    text = "\n".join(lines) + "\n"
    print()
    print(text)
    if not args.no_write:
        write_results(RESULTS, text)
        if not TINY:
            print(f"written to {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
