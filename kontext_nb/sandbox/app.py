"""The sandbox's HTTP face: fal's queue, storage and media routes, plus a control API for tests.

Built on Starlette and served by uvicorn, so clients meet a real HTTP stack (keep-alive,
chunked streams, dropped connections). The queue logic lives in queue.py, the pictures in
render.py, the failure plans in faults.py; this module maps them onto fal's URLs, status
codes, headers and error bodies.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from kontext_nb import endpoints
from kontext_nb.errors import ValidationError

from .faults import FaultPlan
from .queue import BlobStore, Job, JobQueue

if TYPE_CHECKING:
    from . import SandboxConfig

log = logging.getLogger(__name__)

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
)
_INGRESS_HTML = (
    "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n<center><h1>{code} {reason}</h1></center>\r\n"
    "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
_REASONS = {502: "Bad Gateway", 503: "Service Temporarily Unavailable"}
_PLACEHOLDER_IMAGE = "data:image/png;base64,"
_RECORDED_HEADERS = {"priority": "queue-priority", "store_io": "store-io", "timeout": "request-timeout"}


def _json(body: Any, status: int = 200, request_id: str | None = None, **headers: str) -> JSONResponse:
    """An app response: always carries x-fal-request-id (fal_client tells app errors from ingress by it)."""
    return JSONResponse(body, status, headers={"x-fal-request-id": request_id or str(uuid.uuid4()), **headers})


def _error(status: int, detail: str, error_type: str, request_id: str | None = None, **headers: str) -> JSONResponse:
    return _json(
        {"detail": detail, "error_type": error_type}, status, request_id, **{"X-Fal-Error-Type": error_type}, **headers
    )


def _unprocessable(errors: list[dict[str, Any]], request_id: str | None = None) -> JSONResponse:
    return _json({"detail": errors}, 422, request_id)


class DropResponse(Response):
    """Start a response and hang up mid-body: the client sees a protocol error, as on a dropped connection."""

    def __init__(self) -> None:
        super().__init__()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"4096")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"status": "IN_', "more_body": True})
        # returning now makes uvicorn close the transport without finishing the body


class _QuietDrops(logging.Filter):
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
            if kind == "slow":
                await asyncio.sleep(float(self.config.slow_seconds))
            elif kind == "429":
                return _error(
                    429,
                    "Too many requests (sandbox fault)",
                    "rate_limited",
                    request_id,
                    **{"Retry-After": str(self.config.retry_after)},
                )
            elif kind == "500":
                return _error(500, "Internal server error (sandbox fault)", "internal_error", request_id)
            elif kind in ("502", "503"):
                code = int(kind)
                return HTMLResponse(_INGRESS_HTML.format(code=code, reason=_REASONS[code]), code)
            elif kind == "drop":
                return DropResponse()
            elif kind == "403":
                return _error(403, "Forbidden (sandbox fault)", "forbidden", request_id)
            elif kind == "lost-reply":
                request.state.lost_reply = True
            elif kind == "vanish":
                if request_id is not None:
                    self.queue.forget(request_id)
                elif route == "submit":
                    request.state.vanish = True
                else:
                    return _error(404, "Not found (sandbox fault: vanished)", "not_found")
        return self.check_auth(request, auth, request_id) if auth else None

    def check_auth(self, request: Request, auth: str, request_id: str | None) -> Response | None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        scheme, value = scheme.lower(), value.strip()
        if auth == "bearer" and scheme == "bearer" and value:
            if self.tokens.get(value, 0) > time.time():
                return None
            return _error(401, "Invalid or expired upload token", "unauthorized", request_id)
        if scheme != "key" or not value:
            return _error(
                401, "Missing credentials: send the header 'Authorization: Key <FAL_KEY>'", "unauthorized", request_id
            )
        wanted = self.config.require_key
        if wanted is not None and not hmac.compare_digest(value.encode(), wanted.encode()):
            return _error(401, "Invalid key: the key was not accepted", "unauthorized", request_id)
        return None


def _sb(request: Request) -> Sandbox:
    return request.app.state.sandbox  # type: ignore[no-any-return]


async def read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None if it is larger than limit (the caller answers 413)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> JSONResponse:
    return _error(413, f"Payload too large: the sandbox accepts at most {limit} bytes", "payload_too_large")


def _validate_all(ep: endpoints.Endpoint, raw: dict[str, Any]) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """Validate with endpoints.validate, collecting one error per bad field (fal lists them all)."""
    body, errors = dict(raw), []
    for _ in range(len(raw) + len(ep.inputs) + 1):
        try:
            args = endpoints.validate(ep, body, fill_defaults=True)
        except ValidationError as exc:
            name = exc.field or ""
            errors.append({"loc": ["body", name] if name else ["body"], "msg": str(exc), "type": "value_error"})
            known = {f.name: f for f in ep.inputs}
            if name in known and known[name].required:  # stand in a valid value so it is not reported twice
                f = known[name]
                body[name] = (
                    [_PLACEHOLDER_IMAGE] * (f.min_items or 1)
                    if f.kind == "images"
                    else (_PLACEHOLDER_IMAGE if f.kind == "image" else "x")
                )
            elif name in body:
                del body[name]
            else:
                break
        else:
            return (None if errors else args), errors
    return None, errors


async def _gated_job(request: Request, route: str) -> Job | Response:
    """The request's job after the route's faults and auth, or the response that stops it."""
    denied = await _sb(request).gate(request, route, request.path_params["request_id"])
    return denied if denied is not None else _job_or_404(request)


def _job_or_404(request: Request) -> Job | JSONResponse:
    params = request.path_params
    job = _sb(request).queue.jobs.get(params["request_id"])
    if job is None or job.app_path != f"{params['owner']}/{params['app']}":
        return _error(404, "Request not found", "not_found", params["request_id"])
    return job


def _with_logs(request: Request) -> bool:
    return request.query_params.get("logs", "").lower() in ("1", "true")


# ---- queue routes ----------------------------------------------------------------------
async def submit(request: Request) -> Response:
    sb, request_id = _sb(request), str(uuid.uuid4())
    denied = await sb.gate(request, "submit", None)
    if denied is not None:
        return denied
    endpoint_id = request.path_params["endpoint"].strip("/")
    ep = endpoints.ENDPOINTS.get(endpoint_id)
    if ep is None:
        return _error(404, f"Application '{endpoint_id}' not found", "not_found", request_id)
    raw = await read_body(request, int(sb.config.max_upload_bytes))
    if raw is None:
        return _too_large(int(sb.config.max_upload_bytes))
    try:
        body = json.loads(raw or b"null")
    except ValueError as exc:
        return _unprocessable([{"loc": ["body"], "msg": f"Invalid JSON: {exc}", "type": "value_error"}], request_id)
    if not isinstance(body, dict):
        return _unprocessable(
            [{"loc": ["body"], "msg": "The input must be a JSON object", "type": "value_error"}], request_id
        )
    args, errors = _validate_all(ep, body)
    if args is None:
        return _unprocessable(errors, request_id)
    priority = request.headers.get("x-fal-queue-priority", "normal").strip().lower()
    if priority not in ("normal", "low"):
        return _error(400, f"X-Fal-Queue-Priority must be normal or low, not {priority!r}", "bad_request", request_id)
    timeout: float | None = None
    if "x-fal-request-timeout" in request.headers:
        try:
            timeout = float(request.headers["x-fal-request-timeout"])
            if not timeout > 0:
                raise ValueError
        except ValueError:
            return _error(400, "X-Fal-Request-Timeout must be a positive number of seconds", "bad_request", request_id)
    store_io = request.headers.get("x-fal-store-io", "1").strip().lower() not in ("0", "false")
    seen = {k: request.headers.get(f"x-fal-{h}") for k, h in _RECORDED_HEADERS.items()}
    job = Job(
        request_id,
        ep,
        args,
        priority=priority,
        timeout=timeout,
        store_io=store_io,
        headers_seen=seen,
        webhook=request.query_params.get("fal_webhook"),
    )
    sb.submits += 1
    sb.queue.submit(job, forget=getattr(request.state, "vanish", False))
    if getattr(request.state, "lost_reply", False):
        return DropResponse()
    position = sb.queue.position(job)
    return _json(
        {
            "status": "IN_QUEUE",
            "request_id": request_id,
            **sb.queue.urls(job),
            "queue_position": 0 if position is None else position,
            "logs": None,
            "metrics": {},
        },
        200,
        request_id,
    )


async def status(request: Request) -> Response:
    sb, request_id = _sb(request), request.path_params["request_id"]
    job = await _gated_job(request, "status")
    if isinstance(job, Response):
        return job
    return _json(sb.queue.status_json(job, _with_logs(request)), 200 if job.done else 202, request_id)


async def status_stream(request: Request) -> Response:
    sb, request_id = _sb(request), request.path_params["request_id"]
    if not sb.config.stream:  # as a server without this route answers: the path exists only for POST
        sb.requests["stream"] += 1
        return _error(405, "Method not allowed", "method_not_allowed", request_id)
    job = await _gated_job(request, "stream")
    if isinstance(job, Response):
        return job
    with_logs = _with_logs(request)

    async def events() -> AsyncIterator[str]:
        last: dict[str, Any] | None = None
        sent_logs = 0
        while not (job.forgotten or sb.queue.closing):
            changed = job.changed  # take the event before looking, so no change can slip between
            snapshot = sb.queue.status_json(job, with_logs)
            if snapshot != last:
                # one event per log line, even when several arrived since the last event
                for k in range(sent_logs + 1, len(snapshot["logs"] or ())):
                    step = {
                        **snapshot,
                        "status": "IN_PROGRESS",
                        "queue_position": None,
                        "metrics": {},
                        "logs": snapshot["logs"][:k],
                    }
                    step.pop("error", None), step.pop("error_type", None)
                    yield f"data: {json.dumps(step)}\n\n"
                sent_logs = len(snapshot["logs"] or ())
                last = snapshot
                yield f"data: {json.dumps(snapshot)}\n\n"
                if job.done:
                    return
            try:
                await asyncio.wait_for(changed.wait(), timeout=float(sb.config.keepalive_seconds))
            except asyncio.TimeoutError:
                yield ": keep-alive\n\n"

    headers = {"x-fal-request-id": request_id, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


def _job_error_response(job: Job) -> Response:
    err = job.error
    assert err is not None
    if err.error_type == "request_cancelled":
        return _error(400, "Request was cancelled", "request_cancelled", job.id)
    if err.field is not None:  # a model error: fal lists these like validation errors, typed
        item = {
            "loc": ["body", err.field],
            "msg": str(err),
            "type": err.error_type,
            "url": f"https://docs.fal.ai/errors/#{err.error_type}",
        }
        return _json(
            {"detail": [item]},
            err.status_code,
            job.id,
            **{"X-Fal-Error-Type": err.error_type, "X-Fal-Retryable": "false"},
        )
    extra = {"X-Fal-Request-Timeout-Type": "user"} if err.error_type == "request_timeout" else {}
    return _error(err.status_code, str(err), err.error_type, job.id, **extra)


async def result(request: Request) -> Response:
    request_id = request.path_params["request_id"]
    job = await _gated_job(request, "result")
    if isinstance(job, Response):
        return job
    if not job.done:
        return _json({"detail": "Request is still in progress"}, 400, request_id)
    if job.error is not None:
        return _job_error_response(job)
    return _json(job.result, 200, request_id)


async def cancel(request: Request) -> Response:
    sb, request_id = _sb(request), request.path_params["request_id"]
    denied = await sb.gate(request, "cancel", request_id)
    if denied is not None:
        return denied
    job = _job_or_404(request)
    if isinstance(job, Response):
        return _json({"status": "NOT_FOUND"}, 404, request_id)
    outcome = sb.queue.cancel(job.id)
    code = {"CANCELLATION_REQUESTED": 202, "ALREADY_COMPLETED": 400}.get(outcome, 404)
    return _json({"status": outcome}, code, request_id)


# ---- storage and media -----------------------------------------------------------------
async def _not_found(request: Request, exc: Exception) -> Response:
    code = exc.status_code if isinstance(exc, HTTPException) else 404
    text = "Method not allowed" if code == 405 else "Not found"
    return _error(code, text, "not_found" if code == 404 else "method_not_allowed")


def create_app(config: SandboxConfig, base_url: str, local_bases: set[str] | None = None) -> Starlette:
    """The ASGI app for one sandbox; base_url is the public address put into every returned URL."""
    from . import control_routes, storage

    sandbox = Sandbox(config, base_url, set(local_bases or ()))
    logging.getLogger("uvicorn.error").addFilter(_QuietDrops())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        sandbox.loop = asyncio.get_running_loop()
        yield
        await sandbox.queue.aclose()

    routes = [
        Route("/_sandbox/stats", control_routes.control_stats, methods=["GET"]),
        Route("/_sandbox/requests/{request_id}", control_routes.control_request, methods=["GET"]),
        Route("/_sandbox/faults", control_routes.control_faults, methods=["GET", "POST"]),
        Route("/_sandbox/config", control_routes.control_config, methods=["GET", "POST"]),
        Route("/_sandbox/reset", control_routes.control_reset, methods=["POST"]),
        Route("/_sandbox/webhooks", control_routes.control_webhooks, methods=["GET", "POST"]),
        Route("/storage/auth/token", storage.storage_token, methods=["POST"]),
        Route("/storage/upload/initiate", storage.storage_initiate, methods=["POST"]),
        Route("/storage/uploads/{upload_id}", storage.storage_put, methods=["PUT"]),
        Route("/files/upload", storage.cdn_upload, methods=["POST"]),
        Route("/files/{path:path}", storage.serve_blob, methods=["GET"]),
        Route("/media/{name}", storage.serve_blob, methods=["GET"]),
        Route("/{owner}/{app}/requests/{request_id}/status/stream", status_stream, methods=["GET"]),
        Route("/{owner}/{app}/requests/{request_id}/status", status, methods=["GET"]),
        Route("/{owner}/{app}/requests/{request_id}/cancel", cancel, methods=["PUT"]),
        Route("/{owner}/{app}/requests/{request_id}", result, methods=["GET"]),
        Route("/{endpoint:path}", submit, methods=["POST"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: _not_found, 405: _not_found})
    app.state.sandbox = sandbox
    return app
