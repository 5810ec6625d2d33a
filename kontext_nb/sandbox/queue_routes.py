"""fal's queue routes in the sandbox: submit, status, status stream, result, cancel, and fal.run's synchronous call."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from . import billing, models, schema, wire
from .queue import Job
from .state import DropResponse, fal_error, fal_json, sandbox_of, too_large, unprocessable

RECORDED_HEADERS = {"priority": "queue-priority", "store_io": "store-io", "timeout": "request-timeout"}


def _job_or_404(request: Request) -> Job | Response:
    params = request.path_params
    queue = sandbox_of(request).queue
    job = queue.jobs.get(params["request_id"])
    if job is None or job.app_path != f"{params['owner']}/{params['app']}" or queue.expired(job):
        # an expired result is gone from the queue as an unknown one is (fal's answer is not documented: assumed 404)
        return fal_error(404, "Request not found", "not_found", params["request_id"])
    return job


async def _gated_job(request: Request, route: str) -> Job | Response:
    """The request's job after the route's faults and auth, or the response that stops it."""
    denied = await sandbox_of(request).gate(request, route, request.path_params["request_id"])
    return denied if denied is not None else _job_or_404(request)


def _with_logs(request: Request) -> bool:
    return request.query_params.get("logs", "").lower() in ("1", "true")


def _options(request: Request, request_id: str) -> dict[str, Any] | Response:
    """fal's submit headers (priority, start timeout, store-io) as Job settings, or a 400."""
    priority = request.headers.get("x-fal-queue-priority", "normal").strip().lower()
    if priority not in ("normal", "low"):
        return fal_error(
            400, f"X-Fal-Queue-Priority must be normal or low, not {priority!r}", "bad_request", request_id
        )
    timeout: float | None = None
    if "x-fal-request-timeout" in request.headers:
        try:
            timeout = float(request.headers["x-fal-request-timeout"])
            if not timeout > 0:
                raise ValueError
        except ValueError:
            return fal_error(
                400, "X-Fal-Request-Timeout must be a positive number of seconds", "bad_request", request_id
            )
    store_io = request.headers.get("x-fal-store-io", "1").strip().lower() not in ("0", "false")
    seen = {k: request.headers.get(f"x-fal-{h}") for k, h in RECORDED_HEADERS.items()}
    return {"priority": priority, "timeout": timeout, "store_io": store_io, "headers_seen": seen}


async def submit(request: Request) -> Response:
    sb, request_id = sandbox_of(request), str(uuid.uuid4())
    denied = await sb.gate(request, "submit", None)
    if denied is not None:
        return denied
    endpoint_id = request.path_params["endpoint"].strip("/")
    ep = models.get(endpoint_id)
    if ep is None:
        return fal_error(404, f"Application '{endpoint_id}' not found", "not_found", request_id)
    raw = await wire.read_body(request, int(sb.config.max_upload_bytes))
    if raw is None:
        return too_large(int(sb.config.max_upload_bytes))
    try:
        body = wire.parse_json(raw)
    except ValueError as exc:
        return unprocessable([{"loc": ["body"], "msg": str(exc), "type": "json_invalid"}], request_id)
    if not isinstance(body, dict):
        return unprocessable([{"loc": ["body"], "msg": "Input should be a valid dictionary", "type": "dict_type"}])
    given, errors = schema.validate(ep, body)
    if errors:
        return unprocessable(errors, request_id)
    options = _options(request, request_id)
    if isinstance(options, Response):
        return options
    webhook = request.query_params.get("fal_webhook")
    job = Job(request_id, ep, schema.with_defaults(ep, given), webhook=webhook, raw_input=body, **options)
    sb.submits += 1
    sb.queue.submit(job, forget=getattr(request.state, "vanish", False))
    if getattr(request.state, "lost_reply", False):  # queued (and billed on fal), but the answer never arrives
        return DropResponse()
    if wire.synchronous(request):  # fal.run: the model's output is the answer
        await sb.queue.wait(job)
        return _result_response(job)
    position = sb.queue.position(job)
    return fal_json(
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
    sb, request_id = sandbox_of(request), request.path_params["request_id"]
    job = await _gated_job(request, "status")
    if isinstance(job, Response):
        return job
    return fal_json(sb.queue.status_json(job, _with_logs(request)), 200 if job.done else 202, request_id)


def _log_steps(last: dict[str, Any] | None, now: dict[str, Any]) -> list[dict[str, Any]]:
    """One event per log line that arrived since the last event, even when several arrived at once."""
    sent = len((last or {}).get("logs") or ())
    steps = []
    for k in range(sent + 1, len(now["logs"] or ())):
        step = {**now, "status": "IN_PROGRESS", "queue_position": None, "metrics": {}, "logs": now["logs"][:k]}
        step.pop("error", None), step.pop("error_type", None)
        steps.append(step)
    return steps


async def status_stream(request: Request) -> Response:
    sb, request_id = sandbox_of(request), request.path_params["request_id"]
    if not sb.config.stream:  # as a server without this route answers: the path exists only for POST
        sb.requests["stream"] += 1
        return fal_error(405, "Method not allowed", "method_not_allowed", request_id)
    job = await _gated_job(request, "stream")
    if isinstance(job, Response):
        return job
    with_logs, watched = _with_logs(request), job
    events = wire.sse(
        lambda: sb.queue.status_json(watched, with_logs),
        lambda: watched.changed,
        finished=lambda: watched.done,
        stopping=lambda: watched.forgotten or sb.queue.closing,
        keepalive=lambda: float(sb.config.keepalive_seconds),
        steps=_log_steps,
    )
    headers = {"x-fal-request-id": request_id, **wire.SSE_HEADERS}
    return StreamingResponse(events, media_type="text/event-stream", headers=headers)


def _result_response(job: Job) -> Response:
    err = job.error
    if err is None:  # fal states what it bills in x-fal-billable-units, in the endpoint's unit (billing.py)
        units = {} if job.billable_units is None else {"x-fal-billable-units": billing.units_text(job.billable_units)}
        return fal_json(job.result, 200, job.id, **units)
    if err.error_type == "request_cancelled":
        return fal_error(400, "Request was cancelled", "request_cancelled", job.id)
    if err.field is not None:  # a model error: fal lists these like validation errors, typed
        item = {
            "loc": ["body", err.field],
            "msg": str(err),
            "type": err.error_type,
            "url": f"https://docs.fal.ai/errors/#{err.error_type}",
        }
        headers = {"X-Fal-Error-Type": err.error_type, "X-Fal-Retryable": "false"}
        return fal_json({"detail": [item]}, err.status_code, job.id, **headers)
    extra = {"X-Fal-Request-Timeout-Type": "user", "X-Fal-Retryable": "false"}
    return fal_error(
        err.status_code, str(err), err.error_type, job.id, **(extra if err.error_type == "request_timeout" else {})
    )


async def result(request: Request) -> Response:
    request_id = request.path_params["request_id"]
    job = await _gated_job(request, "result")
    if isinstance(job, Response):
        return job
    if not job.done:
        return fal_json({"detail": "Request is still in progress"}, 400, request_id)
    return _result_response(job)


async def cancel(request: Request) -> Response:
    sb, request_id = sandbox_of(request), request.path_params["request_id"]
    denied = await sb.gate(request, "cancel", request_id)
    if denied is not None:
        return denied
    job = _job_or_404(request)
    if isinstance(job, Response):
        return fal_json({"status": "NOT_FOUND"}, 404, request_id)
    outcome = sb.queue.cancel(job.id)
    code = {"CANCELLATION_REQUESTED": 202, "ALREADY_COMPLETED": 400}.get(outcome, 404)
    return fal_json({"status": outcome}, code, request_id)
