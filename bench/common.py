"""Shared pieces of the benchmarks: the tiny size, the sandbox process, the two clients, statistics, the table."""

from __future__ import annotations

import io
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import fal_client
import httpx
from asyncstdlib import cached_property as async_cached_property
from PIL import Image

from kontext_nb import endpoints, sandbox
from kontext_nb.config import RetryPolicy, Settings
from kontext_nb.fal.engine import Engine
from kontext_nb.fal.transport import FalTransport

# ---- the tiny size: every benchmark runs end to end in seconds, so a benchmark that no longer runs fails CI ------
TINY_ENV = "KONTEXT_BENCH_TINY"
T = TypeVar("T")


def _tiny() -> bool:
    """``--tiny`` on the command line (taken off it, and passed on to child processes) or KONTEXT_BENCH_TINY=1."""
    if "--tiny" in sys.argv[1:]:
        sys.argv.remove("--tiny")
        os.environ[TINY_ENV] = "1"
    return os.environ.get(TINY_ENV, "") not in ("", "0")


TINY = _tiny()
"""A smoke run (tests/test_bench.py): a few of everything, the same code paths and printed rows, no results
file written. Its figures mean nothing; only that every measure still runs."""


def size(full: T, tiny: T) -> T:
    """``full`` for a real run, ``tiny`` for a smoke run."""
    return tiny if TINY else full


def write_results(path: Path, text: str) -> None:
    """A real run keeps its table in bench/*.md; a tiny run says so and leaves the file alone."""
    if TINY:
        print(f"(tiny run: {path.name} not written)")
    else:
        path.write_text(text, encoding="utf-8")


ENDPOINT = "fal-ai/flux-pro/kontext/max/text-to-image"
KEY = "bench-key"
ROOT = Path(__file__).resolve().parent.parent


def arguments(seed: int) -> dict[str, Any]:
    """Validated text-to-image arguments, one image, a fixed seed per job."""
    return endpoints.validate(ENDPOINT, {"prompt": "a lighthouse at dusk, watercolour", "seed": seed})


# ---- the sandbox, in a process of its own -----------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def sandbox_process(**settings: Any) -> Iterator[tuple[str, sandbox.SandboxControl]]:
    """``python -m kontext_nb.sandbox --port N`` as a subprocess; runtime settings go through /_sandbox/config."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "kontext_nb.sandbox", "--host", "127.0.0.1", "--port", str(port)]
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            control = sandbox.control(url)
            deadline = time.monotonic() + 30
            while True:
                try:
                    control.stats()
                    break
                except httpx.HTTPError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        log.seek(0)
                        raise RuntimeError(f"sandbox did not start: {log.read().decode(errors='replace')}") from None
                    time.sleep(0.1)
            control.configure(**settings)
            yield url, control
        finally:
            proc.send_signal(signal.SIGINT)  # the CLI stops its server cleanly on Ctrl-C
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# ---- the two clients ---------------------------------------------------------------------------
class TimedEngine(Engine):
    """kontext_nb's engine, noting when each job's COMPLETED status event arrives."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.noticed: dict[str, float] = {}

    def _apply(self, run: Any, data: dict[str, Any]) -> None:
        if data.get("status") == "COMPLETED" and run.job.request_id not in self.noticed:
            self.noticed[run.job.request_id] = time.time()
        super()._apply(run, data)


def make_engine(url: str, concurrency: int = 8) -> TimedEngine:
    return TimedEngine(Settings(base_url=url, key=KEY, concurrency=concurrency))


class RoutedFalClient(fal_client.AsyncClient):
    """Unmodified fal_client.AsyncClient; only its httpx client is ours (routes fal hosts, counts requests)."""

    def __init__(self, transport: FalTransport) -> None:
        super().__init__(key=KEY)
        self.transport = transport

    @async_cached_property
    async def _client(self) -> httpx.AsyncClient:
        auth = await self._auth
        headers = {"Authorization": auth.header_value, "User-Agent": fal_client.client.USER_AGENT}
        return httpx.AsyncClient(transport=self.transport, headers=headers, timeout=self.default_timeout)


@asynccontextmanager
async def fal_clients(url: str) -> AsyncIterator[tuple[RoutedFalClient, httpx.AsyncClient]]:
    """A routed fal_client and a media client sharing one counting transport, closed after the block."""
    transport = FalTransport(url, RetryPolicy())
    media = httpx.AsyncClient(transport=transport, timeout=60.0)
    try:
        yield RoutedFalClient(transport), media
    finally:
        await media.aclose()


async def download_and_decode(media: httpx.AsyncClient, output: dict[str, Any]) -> list[Image.Image]:
    """What a fal_client user does after ``get()``: fetch each image and decode it."""
    images = []
    for meta in output["images"]:
        response = await media.get(meta["url"])
        response.raise_for_status()
        image = Image.open(io.BytesIO(response.content))
        image.load()
        images.append(image)
    return images


# ---- statistics and output --------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100)."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def median(values: list[float]) -> float:
    return statistics.median(values)


@dataclass
class Row:
    measure: str
    ours: str
    against: str
    target: str
    met: bool | None  # None: no target, information only

    def cells(self) -> list[str]:
        return [self.measure, self.ours, self.against, self.target, {True: "yes", False: "**no**", None: "–"}[self.met]]


def table(rows: list[Row]) -> str:
    head = ["measure", "kontext_nb", "compared against", "target", "met?"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)
