"""fal's queue routes through the proxy: submit (and fal.run's synchronous call), status, stream, result, cancel.

Every answer about a job carries ``x-fal-request-id`` (the proxy's id for it), as fal's do:
fal's JS client takes ``requestId`` from that header.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from kontext_nb import models
from kontext_nb.sandbox import schema, wire

from . import policy
from .classroom import today
from .inputs import input_sizes
from .job import ProxyJob
from .limits import Refusal, to_micros
from .state import NOT_FOUND, PROXY_HEADER, Proxy, error, guarded, proxy_of
from .upstream import SUBMIT_HEADERS, pick_headers

log = logging.getLogger("kontext_nb.proxy")

REQUEST_ID = "x-fal-request-id"
NO_WEBHOOKS = (
    "webhooks are not available through the classroom proxy (fal would post to an address outside the class); "
    "follow the job's status_url instead"
)


def _invalid(errors: list[dict[str, Any]]) -> JSONResponse:
    return error(422, errors)


@guarded
async def submit(request: Request) -> Response:
    proxy = proxy_of(request)
    endpoint_id = request.path_params["endpoint"].strip("/")
    student = proxy.authenticate(request, record=endpoint_id)  # from the headers, before any body is read
    if isinstance(student, Response):
        return student
    allowed = policy.allowed_endpoints(tuple(proxy.config.allow))
    refusal = policy.endpoint_refusal(endpoint_id, allowed)
    if refusal is not None and policy.stream_of_known(
        endpoint_id, allowed
    ):  # fal.stream on an endpoint that does not stream
        return error(
            404, f"{endpoint_id.removesuffix('/stream')} has no streaming output: use fal.subscribe or fal.run"
        )
    refusal = refusal or policy.model_refusal(models.get(endpoint_id))  # no price: nothing to reserve it with
    if refusal is not None:
        return proxy.refuse(student.name, refusal, endpoint_id, None)
    if "fal_webhook" in request.query_params:
        return error(400, NO_WEBHOOKS)
    async with proxy.held_body(request, student.name, proxy.config.max_upload_bytes) as raw:
        if isinstance(raw, Response):
            return raw
        job = _admit(request, proxy, endpoint_id, raw)  # the body is held (counted) until it is recorded
    if isinstance(job, Response):
        return job
    if wire.synchronous(request):  # fal.run: answer with the model's output once the job is done
        while not (job.done or proxy.dispatcher.closing):
            await job.changed.wait()
        return _result_answer(proxy, job, request)
    return JSONResponse(proxy.status_json(job, request, with_logs=False), headers={REQUEST_ID: job.id})


def _admit(request: Request, proxy: Proxy, endpoint_id: str, raw: bytes) -> ProxyJob | Response:
    """Validate, check the policy and the quotas, and record (reserve) the job; or the answer refusing it.

    Nothing here awaits: concurrent submits see each other's reservations.
    """
    try:
        body = wire.parse_json(raw)
    except ValueError as exc:
        return _invalid([{"loc": ["body"], "msg": str(exc), "type": "json_invalid"}])
    if not isinstance(body, dict):
        return _invalid([{"loc": ["body"], "msg": "Input should be a valid dictionary", "type": "dict_type"}])
    model = models.get(endpoint_id)
    given, errors = schema.validate(endpoint_id, body)  # as fal validates: every bad field, values converted
    if errors:
        return _invalid(errors)
    student = proxy.authenticate(request, record=endpoint_id)  # revoked while the body was arriving?
    if isinstance(student, Response):
        return student
    prompt = str(given.get("prompt", ""))
    refusal = proxy.blocklist.refusal(prompt)
    if refusal is not None:
        return proxy.refuse(student.name, refusal, endpoint_id, prompt)
    safety = policy.safety_checker_refusal(given) or policy.enforce_safety(
        given.get("safety_tolerance", policy.MISSING), proxy.limits.max_safety_tolerance
    )
    if isinstance(safety, Refusal):
        return proxy.refuse(student.name, safety, endpoint_id, prompt)
    inputs = schema.with_defaults(endpoint_id, given)
    images = models.images_asked(model, inputs)
    bases = (proxy.base(request), *proxy.local_bases)
    sent_inputs = proxy.upstream.inbound(given, bases)  # the proxy's own file URLs, as they go upstream
    sizes = input_sizes(model, sent_inputs, proxy.classroom.upload_size)  # None: not known, the worst case
    cost = to_micros(models.bound(model, inputs, sizes))  # the registry's upper bound, as the notebook reserves
    day, session = today(), proxy.session
    forced = {"safety_tolerance": policy.class_safety(model, safety[0])} if model.takes("safety_tolerance") else {}
    sent = proxy.upstream.inbound({**given, **forced}, bases)
    job = ProxyJob(str(uuid.uuid4()), student.name, endpoint_id, sent, pick_headers(request.headers, SUBMIT_HEADERS))
    job.arguments, job.input_sizes = _elided(sent), tuple(sizes)  # for the recorded cost (the registry's rule)
    job.owner = proxy.dispatcher.me
    refusal = proxy.classroom.admit(  # checked and reserved in one transaction, whichever instance admits
        {
            "id": job.id,
            "student": student.name,
            "session": session,
            "day": day,
            "endpoint": endpoint_id,
            "prompt": prompt,
            "arguments": _elided(sent),
            "body": sent,
            "headers": job.headers,
            "num_images": images,
            "images": images,
            "cost_reserved": cost,
            "cost": cost,
            "safety_tolerance": forced["safety_tolerance"] if forced else None,
            "safety_note": safety[1] if forced else None,
            "state": job.state,
            "created": time.time(),
            "owner": job.owner,
        },
        proxy.limits,
    )
    if refusal is not None:
        return proxy.refuse(student.name, refusal, endpoint_id, prompt)
    log.info("%s submitted job %s (%s, %d image%s)", student.name, job.id, endpoint_id, images, "s" * (images != 1))
    job.body = None  # kept in the db until sent: waiting jobs hold no memory
    proxy.dispatcher.add(job)
    return job


def _elided(body: dict[str, Any]) -> dict[str, Any]:
    """The arguments for the audit log: inline images shortened."""

    def short(value: Any) -> Any:
        if isinstance(value, str) and value.startswith("data:") and len(value) > 64:
            return value[:48] + f"...({len(value)} chars)"
        return [short(v) for v in value] if isinstance(value, list) else value

    return {k: short(v) for k, v in body.items()}


def _own_job(request: Request, missing: Response | None = None) -> tuple[Proxy, ProxyJob] | Response:
    """The job the path names if it is the caller's; else ``missing`` (a 404): unknown and others' look the same."""
    proxy = proxy_of(request)
    student = proxy.authenticate(request)
    if isinstance(student, Response):
        return student
    params = request.path_params
    job = proxy.dispatcher.lookup(params["request_id"])
    if job is None or job.student != student.name or job.app_path != f"{params['owner']}/{params['app']}":
        return missing or error(404, NOT_FOUND)
    return proxy, job


def _with_logs(request: Request) -> bool:
    return request.query_params.get("logs", "").lower() in ("1", "true")


@guarded
async def status(request: Request) -> Response:
    found = _own_job(request)
    if isinstance(found, Response):
        return found
    proxy, job = found
    body = proxy.status_json(job, request, _with_logs(request))
    return proxy.relay(body, request, 200 if job.done else 202, **{REQUEST_ID: job.id})


@guarded
async def status_stream(request: Request) -> Response:
    found = _own_job(request)
    if isinstance(found, Response):
        return found
    proxy, job = found
    with_logs, base = _with_logs(request), proxy.base(request)
    events = wire.sse(
        lambda: proxy.status_json(job, request, with_logs),
        lambda: job.changed,
        finished=lambda: job.done,
        stopping=lambda: proxy.dispatcher.closing,
        keepalive=lambda: proxy.keepalive_seconds,
        encode=lambda snapshot: proxy.upstream.outbound(json.dumps(snapshot), base),
    )
    headers = {REQUEST_ID: job.id, **wire.SSE_HEADERS}
    job.followers += 1  # before the stream starts: the tick must not forget the job in between
    return StreamingResponse(_followed(job, events), media_type="text/event-stream", headers=headers)


async def _followed(job: ProxyJob, events: AsyncIterator[str]) -> AsyncIterator[str]:
    """The stream's events; the job counts it as a follower while it is open (another instance's job is re-read
    from its row for it: dispatch.Dispatcher.tick)."""
    try:
        async for event in events:
            yield event
    finally:
        job.followers -= 1


def _result_answer(proxy: Proxy, job: ProxyJob, request: Request) -> Response:
    if not job.done:
        return error(503, "the classroom proxy is stopping: ask for the result again in a moment")
    row = proxy.classroom.job(job.id)
    assert row is not None and row["result"] is not None
    headers = {REQUEST_ID: job.id, **(row.get("result_headers") or {})}
    if job.error_type and job.outcome != "ok" and "x-fal-error-type" not in headers:
        headers["x-fal-error-type"] = job.error_type
    return proxy.relay(row["result"], request, int(row["result_status"]), **headers)


@guarded
async def result(request: Request) -> Response:
    found = _own_job(request)
    if isinstance(found, Response):
        return found
    proxy, job = found
    if not job.done:
        return error(400, "Request is still in progress", **{REQUEST_ID: job.id})
    return _result_answer(proxy, job, request)


@guarded
async def cancel(request: Request) -> Response:
    found = _own_job(request, missing=JSONResponse({"status": "NOT_FOUND"}, 404, headers={PROXY_HEADER: "1"}))
    if isinstance(found, Response):
        return found
    proxy, job = found
    code, answer = await proxy.dispatcher.cancel(job)
    log.info("%s cancelled job %s: %s", job.student, job.id, answer)
    return JSONResponse({"status": answer}, code, headers={REQUEST_ID: job.id})
