"""A class on two proxy instances (issue 24): the classroom proxy's load, with every request alternating instances.

    python bench/proxy_pair_bench.py          # ~1 min; prints a table and writes bench/proxy_pair_results.md
    python bench/proxy_pair_bench.py --tiny   # 3 students, 2 images each; nothing written

Processes as in a lecture hall behind a round-robin load balancer: the sandbox standing in for fal, one or two
proxies (``python -m kontext_nb.proxy --state STATE``) and this one, the students. Each student runs two workers
that submit, poll the status and read the result, every request to the next instance in turn, until the images
quota stops them. Three setups: one instance (SQLite, the baseline), two instances on one SQLite folder, two
instances on one PostgreSQL database (a throwaway cluster from the system's binaries, tests/postgres.py, or
``--pg-url``). Measured: requests answered per second, p95 of submits and status reads, and whether every
student got exactly the quota's images, no more, however the requests raced across instances (read back from
the instructor's API on the other instance). Measurement only: it exits 0 even when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import secrets
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, Row, _free_port, percentile, size, table, write_results
from proxy_bench import server

from kontext_nb.proxy.classroom import Classroom

RESULTS = Path(__file__).resolve().parent / "proxy_pair_results.md"
ENDPOINT = "fal-ai/flux-pro/kontext/text-to-image"
STUDENTS = size(30, 3)
QUOTA = size(10, 2)
WORKERS = 2  # per student: two submits of one student race across the instances


@dataclass
class Run:
    name: str
    answered: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    refused: int = 0
    accepted: Counter[str] = field(default_factory=Counter)
    submit_ms: list[float] = field(default_factory=list)
    status_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0
    counted: dict[str, int] = field(default_factory=dict)
    note: str = ""


async def student(urls: list[str], name: str, token: str, run: Run, turn: list[int]) -> None:
    """Submit, poll, read the result, each request to the next instance, until the quota refuses a submit."""
    headers = {"Authorization": f"Key {token}"}
    async with httpx.AsyncClient(headers=headers, timeout=60.0, trust_env=False) as client:

        def pick() -> str:
            turn[0] += 1
            return urls[turn[0] % len(urls)]

        while True:
            started = time.perf_counter()
            answer = await client.post(f"{pick()}/{ENDPOINT}", json={"prompt": f"{name} #{turn[0]}", "seed": turn[0]})
            if answer.status_code == 429 and answer.headers.get("x-kontext-limit") == "images-per-day":
                run.refused += 1
                return
            if not answer.is_success:
                run.failed[f"submit HTTP {answer.status_code}"] += 1
                return
            run.submit_ms.append((time.perf_counter() - started) * 1000)
            run.answered += 1
            run.accepted[name] += 1
            path = answer.json()["status_url"].split("/", 3)[3]
            while True:
                started = time.perf_counter()
                status = await client.get(f"{pick()}/{path}")
                run.status_ms.append((time.perf_counter() - started) * 1000)
                if status.status_code not in (200, 202):
                    run.failed[f"status HTTP {status.status_code}"] += 1
                    return
                run.answered += 1
                if status.json()["status"] == "COMPLETED":
                    break
                await asyncio.sleep(0.02)
            result = await client.get(f"{pick()}/{path.removesuffix('/status')}")
            if result.is_success:
                run.answered += 1
            else:
                run.failed[f"result HTTP {result.status_code}"] += 1


@contextmanager
def proxies(state: str, sandbox: str, key: str, count: int) -> Iterator[list[str]]:
    urls = []
    with ExitStack() as stack:
        for _ in range(count):
            port = _free_port()
            url = f"http://127.0.0.1:{port}"
            cmd = [
                sys.executable, "-m", "kontext_nb.proxy", "--host", "127.0.0.1", "--port", str(port), "--state", state,
                "--upstream", sandbox, "--images-per-day", str(QUOTA), "--dollars-per-session", "none",
                "--jobs-in-flight", "none", "--class-in-flight", "64", "--requests-per-token", "64", "-q",
            ]  # fmt: skip
            stack.enter_context(server(cmd, url, "/instructor", {**os.environ, "FAL_KEY": key}))
            urls.append(url)
        yield urls


def measure(name: str, state: str, sandbox: str, key: str, instances: int) -> Run:
    room = Classroom(state)
    tokens = {f"student {i:02d}": room.add_student(f"student {i:02d}") for i in range(STUDENTS)}
    instructor = room.new_instructor_token()
    room.close()
    run = Run(name)
    with proxies(state, sandbox, key, instances) as urls:

        async def everyone() -> None:
            workers = [
                student(urls, n, t, run, [k * WORKERS + w])
                for k, (n, t) in enumerate(tokens.items())
                for w in range(WORKERS)
            ]
            await asyncio.gather(*workers)

        started = time.perf_counter()
        asyncio.run(everyone())
        run.seconds = time.perf_counter() - started
        usage = httpx.get(
            f"{urls[-1]}/instructor/api/usage", headers={"Authorization": f"Bearer {instructor}"}, trust_env=False
        ).json()
        run.counted = {s["name"]: int(s["images_today"]) for s in usage["students"]}
    return run


@contextmanager
def postgres(given: str | None) -> Iterator[tuple[str | None, str]]:
    """A PostgreSQL database URL (``--pg-url``, else a throwaway cluster), or None and why not."""
    if given:
        yield given, ""
        return
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        from postgres import start_server

        cluster = start_server()
    except Exception as exc:  # no server binaries here: the row says so
        yield None, f"not run: {str(exc).splitlines()[0]}"
        return
    try:
        with cluster.database() as url:
            yield url, ""
    finally:
        cluster.close()


def rows_of(run: Run, baseline: Run | None) -> list[Row]:
    if run.note:
        return [Row(f"{run.name}", run.note, "–", "–", None)]
    rate = run.answered / max(run.seconds, 1e-9)
    exact = all(n == QUOTA for n in run.accepted.values()) and all(n == QUOTA for n in run.counted.values())
    exact = exact and len(run.accepted) == STUDENTS and not run.failed
    against = f"one instance: {baseline.answered / max(baseline.seconds, 1e-9):.0f} req/s" if baseline else "–"
    failed = ", ".join(f"{k} ×{v}" for k, v in run.failed.items()) or "none"
    return [
        Row(
            f"{run.name}: requests answered per second (failed: {failed})",
            f"{rate:.0f} req/s",
            against,
            "no request fails",
            not run.failed,
        ),
        Row(
            f"{run.name}: p95 submit / status read",
            f"{percentile(run.submit_ms, 95):.1f} / {percentile(run.status_ms, 95):.1f} ms",
            "–",
            "–",
            None,
        ),
        Row(
            f"{run.name}: images per student (quota {QUOTA}, {WORKERS} racing workers each)",
            f"accepted {min(run.accepted.values())}–{max(run.accepted.values())}, counted "
            f"{min(run.counted.values())}–{max(run.counted.values())}",
            "–",
            f"exactly {QUOTA} each",
            exact,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-url", help="a PostgreSQL database to use (default: a throwaway cluster)")
    args = parser.parse_args()
    began = time.monotonic()
    load = os.getloadavg()[0]
    key = "class-" + secrets.token_hex(16)
    port = _free_port()
    sandbox = f"http://127.0.0.1:{port}"
    sandbox_cmd = [
        sys.executable, "-m", "kontext_nb.sandbox", "--host", "127.0.0.1", "--port", str(port),
        "--require-key", key, "--workers", "64", "--inference-time", "0.05", "--image-scale", "0.1",
    ]  # fmt: skip
    runs: list[Run] = []
    with server(sandbox_cmd, sandbox, "/_sandbox/stats"), tempfile.TemporaryDirectory() as folder:
        runs.append(measure("one instance, SQLite", str(Path(folder) / "one"), sandbox, key, 1))
        runs.append(measure("two instances, one SQLite folder", str(Path(folder) / "two"), sandbox, key, 2))
        with postgres(args.pg_url) as (url, why):
            if url is None:
                runs.append(Run("two instances, PostgreSQL", note=why))
            else:
                runs.append(measure("two instances, PostgreSQL", url, sandbox, key, 2))
    rows = [row for run in runs for row in rows_of(run, runs[0] if run is not runs[0] else None)]
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    header = (
        f"# A class on two proxy instances\n\n{stamp} · {os.cpu_count()} CPUs (nproc), Python "
        f"{platform.python_version()}, {platform.platform()}\n\nSettings: sandbox, proxies and students in separate "
        f"processes on this machine; {STUDENTS} students × {WORKERS} workers, each request to the next instance in "
        f"turn; images quota {QUOTA} per student; sandbox inference 0.05 s; endpoint {ENDPOINT}. Load average "
        f"{load:.1f} at the start (a machine shared with other work: the rates compare setups only roughly; the "
        "exact quota is the point).\n"
    )
    text = f"{header}\n{table(rows)}\n\n- total run time {time.monotonic() - began:.0f} s\n"
    print(text)
    write_results(RESULTS, text)


if __name__ == "__main__":
    main()
