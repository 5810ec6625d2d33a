"""The sandbox's shared server state and answer helpers: what every route module of the sandbox imports.

Route modules (queue_routes, storage, control_routes) import from here, never from each other
or from app.py, which only assembles them.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
import uuid
from collections import Counter
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import Receive, Scope, Send

from .faults import FaultPlan
from .queue import BlobStore, JobQueue

if TYPE_CHECKING:
    from . import SandboxConfig

RUNTIME_SETTINGS = (
    "workers",
    "queue_delay",
    "inference_time",
    "keepalive_seconds",
    "image_scale",
    "retry_after",
    "slow_seconds",
    "max_upload_bytes",
    "stream",
    "clock_offset",
)
INGRESS_HTML = (
    "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n<center><h1>{code} {reason}</h1></center>\r\n"
    "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
REASONS = {502: "Bad Gateway", 503: "Service Temporarily Unavailable"}


def fal_json(body: Any, status: int = 200, request_id: str | None = None, **headers: str) -> JSONResponse:
    """An app response: always carries x-fal-request-id (fal_client tells app errors from ingress by it)."""
    return JSONResponse(body, status, headers={"x-fal-request-id": request_id or str(uuid.uuid4()), **headers})


def fal_error(status: int, detail: str, error_type: str, request_id: str | None = None, **headers: str) -> JSONResponse:
    return fal_json(
        {"detail": detail, "error_type": error_type}, status, request_id, **{"X-Fal-Error-Type": error_type}, **headers
    )


def unprocessable(errors: list[dict[str, Any]], request_id: str | None = None) -> JSONResponse:
    return fal_json({"detail": errors}, 422, request_id)


class DropResponse(Response):
    """Start a response and hang up mid-body: the client sees a protocol error, as on a dropped connection."""

    def __init__(self) -> None:
        super().__init__()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"4096")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"status": "IN_', "more_body": True})
        # returning now makes uvicorn close the transport without finishing the body


class QuietDrops(logging.Filter):
    """uvicorn reports our deliberate hang-ups as errors; they are the point of the 'drop' fault."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "returned without completing response" not in record.getMessage()


class Sandbox:
    """All server state: config, queue, media and uploads, fault plan and counters."""

    def __init__(self, config: SandboxConfig, base_url: str, local_bases: set[str]) -> None:
        self.config = config
        self.base_url = base_url.rstrip("/")
        self.blobs = BlobStore()
        self.queue = JobQueue(config, self.blobs, self.base_url, local_bases | {self.base_url})
        self.faults = FaultPlan(config.faults, config.fault_seed)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.submits = 0
        self.requests: Counter[str] = Counter()
        self.faults_injected: Counter[str] = Counter()
        self.tokens: dict[str, float] = {}
        self.uploads: dict[str, tuple[str, str]] = {}
        self.webhooks: list[Any] = []

    def reset(self) -> None:
        self.queue.reset()
        self.blobs.clear()
        self.faults.replace([])
        self.submits = 0
        self.requests.clear()
        self.faults_injected.clear()
        self.tokens.clear()
        self.uploads.clear()
        self.webhooks.clear()

    def stats(self) -> dict[str, Any]:
        return {
            "submits": self.submits,
            "requests": dict(self.requests),
            "faults_injected": dict(self.faults_injected),
            **self.queue.stats(),
        }

    def settings(self) -> dict[str, Any]:
        return {name: getattr(self.config, name) for name in RUNTIME_SETTINGS}

    async def gate(
        self, request: Request, route: str, request_id: str | None = None, auth: str | None = "key"
    ) -> Response | None:
        """Count the request, inject a fault if a rule fires, then check auth. None means: go on."""
        self.requests[route] += 1
        kind = self.faults.pick(route)
        if kind is not None:
            self.faults_injected[kind] += 1
            if kind in ("slow", "slow-lost-reply"):
                await asyncio.sleep(float(self.config.slow_seconds))
            elif kind == "429":
                return fal_error(
                    429,
                    "Too many requests (sandbox fault)",
                    "rate_limited",
                    request_id,
                    **{"Retry-After": str(self.config.retry_after)},
                )
            elif kind == "500":
                return fal_error(500, "Internal server error (sandbox fault)", "internal_error", request_id)
            elif kind in ("502", "503"):
                code = int(kind)
                return HTMLResponse(INGRESS_HTML.format(code=code, reason=REASONS[code]), code)
            elif kind == "drop":
                return DropResponse()
            elif kind == "403":
                return fal_error(403, "Forbidden (sandbox fault)", "forbidden", request_id)
            if kind in ("lost-reply", "slow-lost-reply"):
                request.state.lost_reply = True
            elif kind == "huge":
                request.state.huge = True
            elif kind == "vanish":
                if request_id is not None:
                    self.queue.forget(request_id)
                elif route == "submit":
                    request.state.vanish = True
                else:
                    return fal_error(404, "Not found (sandbox fault: vanished)", "not_found")
        return self.check_auth(request, auth, request_id) if auth else None

    def check_auth(self, request: Request, auth: str, request_id: str | None) -> Response | None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        scheme, value = scheme.lower(), value.strip()
        if auth == "bearer" and scheme == "bearer" and value:
            if self.tokens.get(value, 0) > time.time():
                return None
            return fal_error(401, "Invalid or expired upload token", "unauthorized", request_id)
        if scheme != "key" or not value:
            return fal_error(
                401, "Missing credentials: send the header 'Authorization: Key <FAL_KEY>'", "unauthorized", request_id
            )
        wanted = self.config.require_key
        if wanted is not None and not hmac.compare_digest(value.encode(), wanted.encode()):
            return fal_error(401, "Invalid key: the key was not accepted", "unauthorized", request_id)
        return None


def sandbox_of(request: Request) -> Sandbox:
    return request.app.state.sandbox  # type: ignore[no-any-return]


def too_large(limit: int) -> JSONResponse:
    return fal_error(413, f"Payload too large: the sandbox accepts at most {limit} bytes", "payload_too_large")
