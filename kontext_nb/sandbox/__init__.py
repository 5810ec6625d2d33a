"""A local server that speaks fal's queue protocol, for offline use, demos and tests.

``start()`` runs a real ASGI app under uvicorn on loopback, in a daemon thread with its own
event loop, so a notebook, a test or a benchmark can point an unmodified fal client at it.
Images are deterministic placeholders marked SANDBOX; faults (429s, ingress 502s, dropped
connections, lost requests) can be switched on to prove a client survives them.

    with kontext_nb.sandbox.running(inference_time=0.05) as url:
        ...  # talk to url as to https://queue.fal.run

It behaves as fal's servers do where fal documents them (queue, storage, errors, webhooks,
``x-fal-target-url``, pydantic-style validation in schema.py) and says so where it had to choose.
It reads input images only from data URIs and its own storage, so it is safe to run behind a
classroom proxy, and stores uploads only when their bytes are an image.

Layer: a server beside the engine. It may import endpoints.py, errors.py, serving.py and the models snapshot, never
the engine (fal/), the journal, views or presentation. Modules: state.py (shared server state
and answers), app.py (assembles routes), queue_routes.py, storage.py, control_routes.py,
queue.py, schema.py (one validator over any endpoint's JSON schema), models.py (the snapshot's endpoints as it serves
them), render.py, faults.py, wire.py (fal's HTTP surface, shared with the proxy), platform_routes.py (fal's Platform
APIs: pricing, usage, request history), catalog_routes.py (OpenAPI documents and Model Search, offline) and
billing.py (what it would bill; result expiry). It serves every endpoint of the vendored snapshot
(kontext_nb/models/snapshot), not only the Kontext family.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import Any

import httpx

from ..serving import ConnectionLimits, ServerThread, listen

__all__ = ["SandboxConfig", "SandboxControl", "SandboxServer", "control", "running", "start"]


@dataclass
class SandboxConfig:
    """Every sandbox setting. Those in app.RUNTIME_SETTINGS can also change while it runs."""

    host: str = "127.0.0.1"
    port: int = 0  # 0: any free port
    public_url: str | None = None  # base of returned URLs; default http://host:port
    workers: int = 2  # inference slots
    queue_delay: float = 0.0  # seconds a request waits before it may start
    inference_time: float = 1.0  # seconds per request (rendering happens inside it)
    keepalive_seconds: float = 15.0  # comment line interval on status streams
    image_scale: float = 1.0  # output size factor (0.25 makes tests fast)
    retry_after: int = 1  # Retry-After seconds on injected 429s
    slow_seconds: float = 2.0  # delay of the 'slow' fault
    max_upload_bytes: int = 50 * 1024 * 1024  # larger uploads and inputs get 413
    stream: bool = True  # False: no status stream route (405), as on servers that only offer polling
    clock_offset: float = 0.0  # seconds the sandbox's clock runs ahead: expires queue results as fal does (billing.py)
    require_key: str | None = field(default=None, repr=False)  # None: any non-empty key is accepted
    faults: list[Mapping[str, Any]] = field(default_factory=list)  # rules, see faults.py
    fault_seed: int | None = None
    connections: ConnectionLimits = field(default_factory=ConnectionLimits)  # caps and deadlines (serving.py)
    control_token: str | None = field(default=None, repr=False)  # set: /_sandbox/* needs "Bearer <token>"


@lru_cache(maxsize=1)
def _tls() -> ssl.SSLContext:
    return ssl.create_default_context()


class SandboxControl:
    """Client of the control API (/_sandbox/...) of a sandbox at ``url``."""

    def __init__(self, url: str, timeout: float = 10.0, token: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._token = token

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        # a client per call, so nothing is left open; the shared TLS context keeps that cheap
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        with httpx.Client(timeout=self.timeout, trust_env=False, verify=_tls()) as client:
            response = client.request(method, f"{self.url}/_sandbox/{path}", json=body, headers=headers)
        response.raise_for_status()
        return response.json()

    def stats(self) -> dict[str, Any]:
        """Counters: submits, requests per route, faults injected per kind, job outcomes, queue sizes, and
        ``billed``: the dollars fal would bill for what completed (as /v1/models/usage reports them)."""
        return self._call("GET", "stats")  # type: ignore[no-any-return]

    def set_faults(self, rules: list[Mapping[str, Any]], seed: int | None = None) -> list[dict[str, Any]]:
        """Replace the fault rules (an empty list switches faults off)."""
        return self._call("POST", "faults", {"rules": list(rules), "seed": seed})["rules"]  # type: ignore[no-any-return]

    def faults(self) -> list[dict[str, Any]]:
        """The active rules, each with how often it fired."""
        return self._call("GET", "faults")["rules"]  # type: ignore[no-any-return]

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change runtime settings (workers, queue_delay, inference_time, ...); returns all of them."""
        return self._call("POST", "config", settings)  # type: ignore[no-any-return]

    def bills(self) -> dict[str, Any]:
        """What fal would bill so far: ``{"total": dollars, "count": n, "bills": [...]}``, one line per completed
        request (endpoint, unit, quantity, unit_price, amount, sizes, at), priced from the returned image sizes."""
        return self._call("GET", "bills")  # type: ignore[no-any-return]

    def billed(self) -> float:
        """Dollars billed so far (the bill log's total)."""
        return float(self.bills()["total"])

    def reset(self) -> None:
        """Forget all requests, media, uploads, counters and fault rules (settings stay)."""
        self._call("POST", "reset")

    def request_info(self, request_id: str) -> dict[str, Any]:
        """Status, endpoint, arguments, headers seen and timestamps of one request."""
        return self._call("GET", f"requests/{request_id}")  # type: ignore[no-any-return]

    def webhooks(self) -> list[Any]:
        """Bodies POSTed to {url}/_sandbox/webhooks (a webhook receiver for tests)."""
        return self._call("GET", "webhooks")  # type: ignore[no-any-return]


class SandboxServer(SandboxControl):
    """A running sandbox: uvicorn in a daemon thread. ``stop()`` shuts it down."""

    def __init__(self, config: SandboxConfig) -> None:
        from .app import create_app

        self.config = config
        self._socket, self.port, bound = listen(config.host, config.port)
        super().__init__(config.public_url or bound, token=config.control_token)
        local = {bound, f"http://localhost:{self.port}", f"http://127.0.0.1:{self.port}"}
        self.app = create_app(config, self.url, local)
        self._thread = ServerThread(self.app, self._socket, f"kontext-sandbox-{self.port}", config.connections)

    def _start(self, timeout: float = 10.0) -> None:
        try:
            self._thread.start(timeout)
        except RuntimeError as exc:
            raise RuntimeError(f"the sandbox did not start on port {self.port}: {exc}") from None

    def stop(self, timeout: float = 5.0) -> None:
        """End open status streams and running jobs, then shut uvicorn down and join its thread."""
        sandbox = self.app.state.sandbox
        if sandbox.loop is not None and sandbox.loop.is_running():
            sandbox.loop.call_soon_threadsafe(sandbox.queue.begin_close)
        self._thread.stop(timeout)

    def __enter__(self) -> SandboxServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<SandboxServer {self.url}>"


def start(**config: Any) -> SandboxServer:
    """Start a sandbox (settings as in SandboxConfig) and return once it accepts connections."""
    known = {f.name for f in fields(SandboxConfig)}
    unknown = set(config) - known
    if unknown:
        raise TypeError(f"unknown sandbox settings {sorted(unknown)}; allowed: {', '.join(sorted(known))}")
    server = SandboxServer(SandboxConfig(**config))
    server._start()
    return server


@contextmanager
def running(**config: Any) -> Iterator[str]:
    """``with running(inference_time=0.05) as url:`` a sandbox for the block, stopped after it."""
    server = start(**config)
    try:
        yield server.url
    finally:
        server.stop()


def control(url: str, token: str | None = None) -> SandboxControl:
    """Control-API client for a sandbox started elsewhere (another process, ``python -m kontext_nb.sandbox``);
    ``token``: its control_token, if it was started with one."""
    return SandboxControl(url, token=token)
