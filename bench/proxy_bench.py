"""The classroom proxy's cost: time it adds to each request, and requests per second it sustains.

    python bench/proxy_bench.py          # ~40 s; prints a table and writes bench/proxy_results.md
    python bench/proxy_bench.py --tiny   # 5 requests per route, 0.3 s runs, 4 connections; nothing written

Three processes, as in a classroom: the sandbox (standing in for fal, requiring the class key), the proxy
(``python -m kontext_nb.proxy --upstream URL``, holding that key) and this one, the students. Compared side by
side: the same requests sent straight to the sandbox with the class key, which is what a student would do with
the key in hand.

(a) added time: sequential requests on one kept-alive connection — submit, status, result — through the proxy
    and direct; the proxy's share is the difference of the medians.
(b) throughput: students polling their jobs' status through the proxy as fast as it answers (64 connections),
    and a mixed class (submits, status polls and result reads) for a few seconds each.
Measurement only: it exits 0 even when a target is missed, and says so in the table.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, Row, _free_port, median, percentile, size, table, write_results

from kontext_nb.proxy.classroom import Classroom

RESULTS = Path(__file__).resolve().parent / "proxy_results.md"
ENDPOINT = "fal-ai/flux-pro/kontext/text-to-image"
STATUS_BASE = "fal-ai/flux-pro"
STUDENTS = size(30, 4)
ADDED_TARGET_MS = 5.0
RATE_TARGET = 200.0


@contextmanager
def server(cmd: list[str], url: str, probe: str, env: dict[str, str] | None = None) -> Iterator[None]:
    """A server subprocess, up once ``probe`` answers; stopped with Ctrl-C (SIGINT) as a user would."""
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    httpx.get(url + probe, timeout=2, trust_env=False)
                    break
                except httpx.HTTPError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        log.seek(0)
                        raise RuntimeError(f"{cmd[2]} did not start: {log.read().decode(errors='replace')}") from None
                    time.sleep(0.1)
            yield
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def body(i: int) -> dict[str, Any]:
    return {"prompt": f"a lighthouse at dusk, watercolour #{i}", "seed": i}


def wait_done(client: httpx.Client, status_url: str) -> None:
    while client.get(status_url).json().get("status") != "COMPLETED":
        time.sleep(0.01)


def sequential(base: str, key: str, n: int) -> dict[str, list[float]]:
    """Milliseconds per request: n submits, then n status reads and n result reads of finished jobs."""
    times: dict[str, list[float]] = {"submit": [], "status": [], "result": []}
    headers = {"Authorization": f"Key {key}"}
    with httpx.Client(base_url=base, headers=headers, timeout=30, trust_env=False) as client:
        urls = []
        for i in range(n + 3):  # the first three warm the connection up, not counted
            t = time.perf_counter()
            answer = client.post(f"/{ENDPOINT}", json=body(i))
            elapsed = (time.perf_counter() - t) * 1000
            answer.raise_for_status()
            rid = answer.json()["request_id"]
            urls.append(f"/{STATUS_BASE}/requests/{rid}")
            if i >= 3:
                times["submit"].append(elapsed)
            wait_done(client, urls[-1] + "/status")  # one job at a time: no queue inside the sandbox
        for route, suffix in (("status", "/status"), ("result", "")):
            for i, url in enumerate(urls):
                t = time.perf_counter()
                client.get(url + suffix).raise_for_status()
                if i >= 3:
                    times[route].append((time.perf_counter() - t) * 1000)
    return times


async def hammer(base: str, tokens: list[str], seconds: float, connections: int, mix: bool) -> tuple[int, int]:
    """Requests answered (2xx) and failed in ``seconds``, students taking turns over ``connections`` connections."""
    clients = [
        httpx.AsyncClient(base_url=base, headers={"Authorization": f"Key {t}"}, timeout=30, trust_env=False)
        for t in tokens
    ]
    jobs: list[str] = []
    for i, client in enumerate(clients):  # one finished job per student to poll
        rid = (await client.post(f"/{ENDPOINT}", json=body(i))).json()["request_id"]
        jobs.append(f"/{STATUS_BASE}/requests/{rid}")
    for client, url in zip(clients, jobs, strict=True):
        while (await client.get(url + "/status")).json().get("status") != "COMPLETED":
            await asyncio.sleep(0.02)
    ok = failed = 0
    stop = time.perf_counter() + seconds

    async def student_loop(worker: int) -> None:
        nonlocal ok, failed
        turn = 0
        while time.perf_counter() < stop:
            k = (worker + turn) % len(clients)
            client, url = clients[k], jobs[k]
            if mix and turn % 10 == 0:
                answer = await client.post(f"/{ENDPOINT}", json=body(turn))
            elif mix and turn % 10 == 5:
                answer = await client.get(url)
            else:
                answer = await client.get(url + "/status")
            turn += 1
            if answer.is_success:
                ok += 1
            else:
                failed += 1

    started = time.perf_counter()
    await asyncio.gather(*(student_loop(w) for w in range(connections)))
    elapsed = time.perf_counter() - started
    for client in clients:
        await client.aclose()
    return round(ok / elapsed), failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=size(200, 5), help="sequential requests per route (%(default)s)")
    parser.add_argument("--seconds", type=float, default=size(5.0, 0.3), help="length of each throughput run")
    parser.add_argument("--connections", type=int, default=size(64, 4))
    args = parser.parse_args()
    began = time.monotonic()
    key = "class-" + secrets.token_hex(16)
    sb_port, px_port = _free_port(), _free_port()
    sb_url, px_url = f"http://127.0.0.1:{sb_port}", f"http://127.0.0.1:{px_port}"
    sandbox_cmd = [
        sys.executable, "-m", "kontext_nb.sandbox", "--host", "127.0.0.1", "--port", str(sb_port),
        "--require-key", key, "--workers", "64", "--inference-time", "0", "--image-scale", "0.1",
    ]  # fmt: skip
    with tempfile.TemporaryDirectory() as state:
        room = Classroom(Path(state))
        tokens = [room.add_student(f"student {i:02d}") for i in range(STUDENTS)]
        room.close()
        proxy_cmd = [
            sys.executable, "-m", "kontext_nb.proxy", "--host", "127.0.0.1", "--port", str(px_port),
            "--state", state, "--upstream", sb_url, "--images-per-day", "1000000", "--dollars-per-session", "1000000",
            "--jobs-in-flight", "1000", "--class-in-flight", "64",
        ]  # fmt: skip
        env = {**os.environ, "FAL_KEY": key}
        with server(sandbox_cmd, sb_url, "/_sandbox/stats"), server(proxy_cmd, px_url, "/instructor", env):
            direct = sequential(sb_url, key, args.n)
            proxied = sequential(px_url, tokens[0], args.n)
            rates = {
                "status polls, through the proxy": asyncio.run(
                    hammer(px_url, tokens, args.seconds, args.connections, mix=False)
                ),
                "status polls, straight to the sandbox": asyncio.run(
                    hammer(sb_url, [key] * STUDENTS, args.seconds, args.connections, mix=False)
                ),
                "a class's mix (1 submit : 1 result : 8 status), through the proxy": asyncio.run(
                    hammer(px_url, tokens, args.seconds, args.connections, mix=True)
                ),
            }
    rows = []
    for route in ("submit", "status", "result"):
        d, p = direct[route], proxied[route]
        added = median(p) - median(d)
        rows.append(
            Row(
                f"(a) {route}: median / p95 through the proxy ({len(p)} sequential)",
                f"{median(p):.2f} / {percentile(p, 95):.2f} ms (adds {added:+.2f} ms)",
                f"straight to the sandbox: {median(d):.2f} / {percentile(d, 95):.2f} ms",
                f"adds < {ADDED_TARGET_MS:.0f} ms",
                added < ADDED_TARGET_MS,
            )
        )
    proxy_status_rate, proxy_status_failed = rates["status polls, through the proxy"]
    direct_rate, _ = rates["status polls, straight to the sandbox"]
    mix_rate, mix_failed = rates["a class's mix (1 submit : 1 result : 8 status), through the proxy"]
    rows.append(
        Row(
            f"(b) status polls per second, {STUDENTS} students over {args.connections} connections",
            f"{proxy_status_rate} req/s ({proxy_status_failed} failed)",
            f"straight to the sandbox: {direct_rate} req/s",
            f">= {RATE_TARGET:.0f} req/s",
            proxy_status_rate >= RATE_TARGET and proxy_status_failed == 0,
        )
    )
    rows.append(
        Row(
            "(b) a class's mix per second (1 submit : 1 result : 8 status reads)",
            f"{mix_rate} req/s ({mix_failed} failed)",
            "–",
            f">= {RATE_TARGET:.0f} req/s",
            mix_rate >= RATE_TARGET and mix_failed == 0,
        )
    )
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    header = (
        f"# Classroom proxy benchmark\n\n{stamp} · {os.cpu_count()} CPUs (nproc), Python {platform.python_version()}, "
        f"{platform.platform()}\n\nSettings: sandbox, proxy and clients in three processes on this machine; sandbox "
        f"with 64 workers and no inference time (so the server's own time is what is left); {args.n} sequential "
        f"requests per route; throughput runs of {args.seconds:g} s each with {args.connections} connections; "
        f"{STUDENTS} students; endpoint {ENDPOINT}.\n"
    )
    text = f"{header}\n{table(rows)}\n\n- total run time {time.monotonic() - began:.0f} s\n"
    print(text)
    write_results(RESULTS, text)


if __name__ == "__main__":
    main()
