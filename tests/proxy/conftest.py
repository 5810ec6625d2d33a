"""Fixtures for the classroom proxy: a real sandbox upstream that accepts only the class key, and real proxies
in front of it on loopback. Students are real HTTP clients (httpx, fal_client, kontext_nb sessions)."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import canary  # tests/canary.py: tests/ is on sys.path
import httpx
import pytest
from httpx_sse import EventSource

import kontext_nb.sandbox
from kontext_nb.config import RetryPolicy
from kontext_nb.proxy import Limits, ProxyConfig, ProxyServer, start

CLASS_KEY = "kxclass-" + secrets.token_hex(16)
"""The instructor's fal key: the sandbox accepts nothing else, and no student may ever see it."""
T2I = "fal-ai/flux-pro/kontext/max/text-to-image"
PRO_T2I = "fal-ai/flux-pro/kontext/text-to-image"
EDIT = "fal-ai/flux-pro/kontext/max"
UPSTREAM_FAST = {"workers": 8, "queue_delay": 0.0, "inference_time": 0.05, "image_scale": 0.1, "stream": True}
UNLIMITED = Limits(images_per_day=None, dollars_per_session=None, jobs_in_flight=None, class_in_flight=8)
PAUSED = 3600.0
"""A queue_delay that keeps upstream jobs queued until the test sets it back to 0 (no timing involved)."""


def leaks(data: str | bytes, key: str = CLASS_KEY) -> list[str]:
    """The forms of the class key found in data (see tests/canary.py)."""
    return canary.leaks(data, key)


@pytest.fixture(scope="session")
def upstream_server() -> Iterator[kontext_nb.sandbox.SandboxServer]:
    server = kontext_nb.sandbox.start(require_key=CLASS_KEY, **UPSTREAM_FAST)
    yield server
    server.stop()


@pytest.fixture
def upstream(upstream_server: kontext_nb.sandbox.SandboxServer) -> kontext_nb.sandbox.SandboxServer:
    """The class's upstream (a sandbox requiring CLASS_KEY), reset and fast."""
    upstream_server.reset()
    upstream_server.configure(**UPSTREAM_FAST)
    return upstream_server


@pytest.fixture(params=["sqlite", "postgresql"])
def proxy_state(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Both state backends for ``make_proxy``: a folder (SQLite), then a fresh PostgreSQL database's URL. A module
    opts in with ``pytestmark = pytest.mark.usefixtures("proxy_state")``; others run on a folder only."""
    if request.param == "sqlite":
        return tmp_path / "state"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def make_proxy(
    upstream: kontext_nb.sandbox.SandboxServer, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., ProxyServer]]:
    """``make_proxy(limits=Limits(...), **config)``: a proxy on a free port in front of the upstream, its state in
    ``proxy_state`` when the test uses that fixture (both backends), else in a folder of the test's own."""
    made: list[ProxyServer] = []
    state = request.getfixturevalue("proxy_state") if "proxy_state" in request.fixturenames else tmp_path / "state"

    def make(limits: Limits = UNLIMITED, **config: Any) -> ProxyServer:
        settings: dict[str, Any] = {
            "state_dir": state,
            "port": 0,
            "upstream": upstream.url,
            "fal_key": CLASS_KEY,
            "retry": RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.1),
            "poll_interval": 0.02,
        }
        server = start(ProxyConfig(limits=limits, **{**settings, **config}))
        made.append(server)
        return server

    yield make
    for server in made:
        server.stop()


def enroll(server: ProxyServer, n: int, prefix: str = "student") -> dict[str, str]:
    """n students, name -> token."""
    return {f"{prefix} {i:02d}": server.classroom.add_student(f"{prefix} {i:02d}") for i in range(n)}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Key {token}"}


class Recorder:
    """Keeps every response a student's client saw (status, headers, body) to search for secrets."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, str, bytes]] = []

    async def hook(self, response: httpx.Response) -> None:
        await response.aread()
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        self.seen.append((response.status_code, headers, response.content))

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(event_hooks={"response": [self.hook]}, timeout=30.0, trust_env=False, **kwargs)

    def leaks(self) -> list[str]:
        found = []
        for status, headers, body in self.seen:
            found += [f"{status} header {name}" for name in leaks(headers)]
            found += [f"{status} body {name}" for name in leaks(body)]
        return found


async def wait_completed(client: httpx.AsyncClient, status_url: str, token: str) -> dict[str, Any]:
    """Follow a job's status stream through the proxy until COMPLETED; the final event."""
    async with client.stream("GET", status_url + "/stream", params={"logs": "1"}, headers=auth(token)) as response:
        assert response.status_code == 200, await response.aread()
        async for event in EventSource(response).aiter_sse():
            if event.data and json.loads(event.data)["status"] == "COMPLETED":
                return dict(json.loads(event.data))
    raise AssertionError(f"the status stream of {status_url} ended before COMPLETED")


async def poll_completed(client: httpx.AsyncClient, status_url: str, token: str) -> dict[str, Any]:
    """Poll a job's status through the proxy until COMPLETED (bounded by the test timeout, not a clock)."""
    while True:
        response = await client.get(status_url, headers=auth(token))
        assert response.status_code in (200, 202), response.text
        body = response.json()
        if body["status"] == "COMPLETED":
            return dict(body)
        await asyncio.sleep(0.02)


def wait_until(predicate: Callable[[], bool], what: str, tries: int = 2000) -> None:
    """Poll a condition (no timed assertion: bounded by tries, and by the test's own timeout)."""
    import time

    for _ in range(tries):
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


@pytest.fixture(params=["sqlite", "postgresql"])
def make_pair(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """``make_pair(limits, **config)``: two proxies on two ports sharing one state (a SQLite file in one folder,
    then a fresh PostgreSQL database: tests/postgres.py), as two instances behind a load balancer."""
    state = {} if request.param == "sqlite" else {"state_dir": request.getfixturevalue("pg_url")}
    make_proxy: Callable[..., ProxyServer] = request.getfixturevalue("make_proxy")  # stopped before the db goes

    def make(limits: Limits = UNLIMITED, **config: Any) -> tuple[ProxyServer, ProxyServer]:
        return make_proxy(limits, **state, **config), make_proxy(limits, **state, **config)

    return make
