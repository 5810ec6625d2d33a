"""The proxy's HTTP face: fal's queue, storage and media routes as students' notebooks call them.

A student sets ``KONTEXT_FAL_URL`` to the proxy and ``FAL_KEY`` to their own token; kontext_nb
(or fal_client) then sends here what it would send to fal, path unchanged. Each request is
authenticated by token, checked against the class's policy and quotas, and answered from the
proxy's own queue (dispatch.py); only the proxy talks upstream, with the real key.

What is not passed on: ``?fal_webhook=`` (the proxy watches every job itself, and a webhook
would have fal post results to an address of the student's choosing, around the proxy's
record), any header outside ``upstream.SUBMIT_HEADERS``, and every upstream response header.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kontext_nb import endpoints
from kontext_nb.errors import ValidationError
from kontext_nb.sandbox.app import read_body

from . import instructor, policy
from .classroom import Classroom, Student, today
from .dispatch import Dispatcher, ProxyJob
from .limits import Limits, Refusal, check, to_micros
from .upstream import SUBMIT_HEADERS, Upstream, UpstreamRefused, pick_headers

if TYPE_CHECKING:
    from . import ProxyConfig

log = logging.getLogger("kontext_nb.proxy")

PROXY_HEADER = "X-Kontext-Proxy"
LIMIT_HEADER = "X-Kontext-Limit"
UNKNOWN_TOKEN = "unknown token: ask your instructor for yours"
REVOKED = Refusal("revoked", 403, "your access to the classroom proxy was revoked: ask your instructor")
NOT_FOUND = "Request not found"
SEEN_FLUSH_SECONDS = 30.0
KEEPALIVE_SECONDS = 15.0


class ProxyHeader:
    """ASGI middleware: every answer carries X-Kontext-Proxy: 1, so clients can tell it from fal's."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-kontext-proxy", b"1")]
            await send(message)

        await self.app(scope, receive, marked if scope["type"] == "http" else send)


class Proxy:
    """All server state: settings, the classroom db, the upstream, the dispatcher, instructor logins."""

    def __init__(
        self, config: ProxyConfig, classroom: Classroom, upstream: Upstream, local_bases: tuple[str, ...] = ()
    ) -> None:
        self.config = config
        self.limits: Limits = config.limits
        self.session: str = config.session or today()
        self.classroom = classroom
        self.upstream = upstream
        self.blocklist = policy.Blocklist(config.blocklist)
        self.dispatcher = Dispatcher(classroom, upstream, self.limits.class_in_flight, config.poll_interval)
        self.local_bases = local_bases
        """The addresses the server listens on, besides --public-url (a student's file URLs may use any)."""
        self.instructor_sessions: dict[str, instructor.LoginSession] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self._seen: dict[str, float] = {}
        self._seen_flushed = time.monotonic()

    def report(self, base: str) -> dict[str, Any]:
        """The instructor's view (classroom usage plus upstream and limits); image URLs point at ``base``."""
        data = self.classroom.usage(self.session)
        for item in data["recent_images"]:
            item["urls"] = [self.upstream.outbound(u, base) for u in item["urls"]]
        data["upstream"] = self.upstream.describe()
        data["limits"] = self.limits.as_dict()
        data["limits_text"] = self.limits.describe()
        data["blocklist_entries"] = len(self.blocklist)
        return data

    def base(self, request: Request) -> str:
        """The address students reach the proxy at: --public-url, else the Host they used."""
        return (self.config.public_url or str(request.base_url)).rstrip("/")

    def relay(self, body: Any, request: Request, status: int = 200, **headers: str) -> Response:
        """A JSON answer built from upstream data: addresses rewritten, key scrubbed."""
        text = self.upstream.outbound(body if isinstance(body, str) else json.dumps(body), self.base(request))
        return Response(text, status, headers=headers, media_type="application/json")

    def authenticate(self, request: Request, *, record: str | None = None) -> Student | Response:
        """The student whose token the request carries; a 401 or 403 answer otherwise.

        ``record`` names the action when a revoked student's refusal should be logged in the db
        (submits and uploads: things that would spend; status polls would flood the table).
        """
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        student = self.classroom.student_for_token(token.strip()) if scheme.lower() in ("key", "bearer") else None
        if student is None:
            log.info("refused a request with an unknown token (%s %s)", request.method, request.url.path)
            return error(401, UNKNOWN_TOKEN)
        if student.revoked:
            if record is not None:
                return self.refuse(student.name, REVOKED, record, None)
            return error(REVOKED.status, REVOKED.message, limit=REVOKED.kind)
        self.seen(student.name)
        return student

    def refuse(self, name: str | None, refusal: Refusal, endpoint: str | None, prompt: str | None) -> Response:
        self.classroom.add_refusal(name, endpoint, prompt, refusal.kind, refusal.message)
        log.info("refused %s: %s (%s)", name, refusal.kind, refusal.message)
        return error(refusal.status, refusal.message, limit=refusal.kind)

    def seen(self, name: str) -> None:
        self._seen[name] = time.time()
        if time.monotonic() - self._seen_flushed > SEEN_FLUSH_SECONDS:
            self.flush_seen()

    def flush_seen(self) -> None:
        if self._seen:
            self.classroom.touch(self._seen)
            self._seen = {}
        self._seen_flushed = time.monotonic()

    def status_json(self, job: ProxyJob, request: Request, with_logs: bool) -> dict[str, Any]:
        """fal's status body; every key is always there (fal_client reads them directly)."""
        status = "IN_PROGRESS" if job.upstream_status == "IN_PROGRESS" else "IN_QUEUE"
        status = "COMPLETED" if job.done else status
        body: dict[str, Any] = {"status": status, "request_id": job.id, **urls(self.base(request), job)}
        body["queue_position"] = self.dispatcher.position(job) if status == "IN_QUEUE" else None
        body["logs"] = list(job.logs) if with_logs else None
        body["metrics"] = dict(job.metrics) if job.done else {}
        if job.done and job.outcome != "ok":
            body["error"], body["error_type"] = job.error or "the request failed", job.error_type
        return body


def urls(base: str, job: ProxyJob) -> dict[str, str]:
    root = f"{base}/{job.app_path}/requests/{job.id}"
    return {"response_url": root, "status_url": root + "/status", "cancel_url": root + "/cancel"}


def error(status: int, detail: Any, *, limit: str | None = None, **headers: str) -> JSONResponse:
    """fal's error shape, {"detail": ...}; refusals by a class limit name it in X-Kontext-Limit."""
    if limit is not None:
        headers[LIMIT_HEADER] = limit
    return JSONResponse({"detail": detail}, status, headers=headers)


def invalid(field: str | None, message: str, kind: str = "value_error") -> JSONResponse:
    """A 422 in fal's shape: a list of {loc, msg, type}."""
    return error(422, [{"loc": ["body", field] if field else ["body"], "msg": message, "type": kind}])


def _proxy(request: Request) -> Proxy:
    return request.app.state.proxy  # type: ignore[no-any-return]


def guarded(route: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """Any unexpected failure becomes one line (502), never a traceback, a URL with a secret or the key."""

    @functools.wraps(route)
    async def wrapper(request: Request) -> Response:
        try:
            return await route(request)
        except Exception as exc:
            proxy = _proxy(request)
            if isinstance(exc, UpstreamRefused):
                detail = exc.body.get("detail") if isinstance(exc.body, dict) else None
                text = f"upstream error: HTTP {exc.status}" + (f": {str(detail)[:200]}" if detail else "")
            else:
                text = f"upstream error: {proxy.upstream.explain(exc)}"
            log.warning("%s %s failed: %s", request.method, request.url.path, proxy.upstream.scrub(text))
            return error(502, proxy.upstream.scrub(text))

    return wrapper


def too_large(limit: int) -> JSONResponse:
    size = f"{limit / 1024 / 1024:g} MB" if limit >= 1024 * 1024 else f"{limit} bytes"
    return error(413, f"too large: the classroom proxy accepts at most {size} per request")


# ---- the queue -----------------------------------------------------------------------------
@guarded
async def submit(request: Request) -> Response:
    proxy = _proxy(request)
    endpoint_id = request.path_params["endpoint"].strip("/")
    student = proxy.authenticate(request, record=endpoint_id)
    if isinstance(student, Response):
        return student
    refusal = policy.endpoint_refusal(endpoint_id)
    if refusal is not None:
        return proxy.refuse(student.name, refusal, endpoint_id, None)
    raw = await read_body(request, proxy.config.max_upload_bytes)
    if raw is None:
        return too_large(proxy.config.max_upload_bytes)
    try:
        body = json.loads(raw or b"null")
    except ValueError as exc:
        return invalid(None, f"Invalid JSON: {exc}")
    if not isinstance(body, dict):
        return invalid(None, "The input must be a JSON object")
    ep = endpoints.ENDPOINTS[endpoint_id]
    try:
        args = endpoints.validate(ep, body)
    except ValidationError as exc:
        return invalid(exc.field, str(exc))
    # From here to the reservation nothing awaits: concurrent submits see each other's reservations.
    student = proxy.authenticate(request, record=endpoint_id)  # revoked while the body was arriving?
    if isinstance(student, Response):
        return student
    prompt = str(args["prompt"])
    refusal = proxy.blocklist.refusal(prompt)
    if refusal is not None:
        return proxy.refuse(student.name, refusal, endpoint_id, prompt)
    given = args.get("safety_tolerance") if body.get("safety_tolerance") is not None else policy.MISSING
    safety = policy.safety_checker_refusal(args) or policy.enforce_safety(given, proxy.limits.max_safety_tolerance)
    if isinstance(safety, Refusal):
        return proxy.refuse(student.name, safety, endpoint_id, prompt)
    images = int(args["num_images"])
    cost = to_micros(ep.estimate(args))  # per megapixel: from the requested size, or the largest input (errs high)
    day, session = today(), proxy.session
    refusal = check(
        proxy.limits,
        proxy.classroom.student_usage(student.name, day, session),
        proxy.classroom.class_usage(day, session),
        images,
        cost,
    )
    if refusal is not None:
        return proxy.refuse(student.name, refusal, endpoint_id, prompt)
    forced = {"safety_tolerance": safety[0]} if policy.has_safety_tolerance(ep) else {}
    sent = proxy.upstream.inbound({**body, **forced}, (proxy.base(request), *proxy.local_bases))
    job = ProxyJob(str(uuid.uuid4()), student.name, endpoint_id, sent, pick_headers(request.headers, SUBMIT_HEADERS))
    proxy.classroom.add_job(
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
            "safety_tolerance": safety[0] if forced else None,
            "safety_note": safety[1] if forced else None,
            "state": job.state,
            "created": time.time(),
        }
    )
    log.info("%s submitted job %s (%s, %d image%s)", student.name, job.id, endpoint_id, images, "s" * (images != 1))
    proxy.dispatcher.add(job)
    return JSONResponse(proxy.status_json(job, request, with_logs=False))


def _elided(body: dict[str, Any]) -> dict[str, Any]:
    """The arguments for the audit log: inline images shortened."""

    def short(value: Any) -> Any:
        if isinstance(value, str) and value.startswith("data:") and len(value) > 64:
            return value[:48] + f"...({len(value)} chars)"
        return [short(v) for v in value] if isinstance(value, list) else value

    return {k: short(v) for k, v in body.items()}


def _own_job(request: Request, missing: Response | None = None) -> tuple[Proxy, ProxyJob] | Response:
    """The job the path names if it is the caller's; else ``missing`` (a 404): unknown and others' look the same."""
    proxy = _proxy(request)
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
    return proxy.relay(body, request, 200 if job.done else 202)


@guarded
async def status_stream(request: Request) -> Response:
    found = _own_job(request)
    if isinstance(found, Response):
        return found
    proxy, job = found
    with_logs, base = _with_logs(request), proxy.base(request)
    watched: ProxyJob = job

    async def events() -> AsyncIterator[str]:
        last: dict[str, Any] | None = None
        while not proxy.dispatcher.closing or watched.done:
            changed = watched.changed  # taken before looking, so no change slips between
            snapshot = proxy.status_json(watched, request, with_logs)
            if snapshot != last:
                last = snapshot
                yield f"data: {proxy.upstream.outbound(json.dumps(snapshot), base)}\n\n"
                if watched.done:
                    return
            try:
                await asyncio.wait_for(changed.wait(), timeout=KEEPALIVE_SECONDS)
            except asyncio.TimeoutError:
                yield ": keep-alive\n\n"

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


@guarded
async def result(request: Request) -> Response:
    found = _own_job(request)
    if isinstance(found, Response):
        return found
    proxy, job = found
    if not job.done:
        return error(400, "Request is still in progress")
    row = proxy.classroom.job(job.id)
    assert row is not None and row["result"] is not None
    extra = {"X-Fal-Error-Type": job.error_type} if job.error_type and job.outcome != "ok" else {}
    return proxy.relay(row["result"], request, int(row["result_status"]), **extra)


@guarded
async def cancel(request: Request) -> Response:
    found = _own_job(request, missing=JSONResponse({"status": "NOT_FOUND"}, 404, headers={PROXY_HEADER: "1"}))
    if isinstance(found, Response):
        return found
    proxy, job = found
    code, answer = await proxy.dispatcher.cancel(job)
    log.info("%s cancelled job %s: %s", job.student, job.id, answer)
    return JSONResponse({"status": answer}, code)


async def _not_found(request: Request, exc: Exception) -> Response:
    code = exc.status_code if isinstance(exc, HTTPException) else 404
    return error(code, "Method not allowed" if code == 405 else "Not found")


def create_app(proxy: Proxy) -> Starlette:
    """The ASGI app of one proxy."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        proxy.loop = asyncio.get_running_loop()
        proxy.dispatcher.resume()
        yield
        await proxy.dispatcher.aclose()
        await proxy.upstream.aclose()
        proxy.flush_seen()

    from . import storage

    routes = [
        *instructor.routes(),
        Route("/storage/auth/token", storage.storage_token, methods=["POST"]),
        Route("/storage/upload/initiate", storage.storage_initiate, methods=["POST"]),
        Route("/storage/uploads/{upload_id}", storage.storage_put, methods=["PUT"]),
        Route("/files/upload", storage.cdn_upload, methods=["POST"]),
        Route("/files/{path:path}", storage.media, methods=["GET"]),
        Route("/media/{name}", storage.media, methods=["GET"]),
        Route("/{owner}/{app}/requests/{request_id}/status/stream", status_stream, methods=["GET"]),
        Route("/{owner}/{app}/requests/{request_id}/status", status, methods=["GET"]),
        Route("/{owner}/{app}/requests/{request_id}/cancel", cancel, methods=["PUT"]),
        Route("/{owner}/{app}/requests/{request_id}", result, methods=["GET"]),
        Route("/{endpoint:path}", submit, methods=["POST"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(ProxyHeader)],
        exception_handlers={404: _not_found, 405: _not_found},
    )
    app.state.proxy = proxy
    return app
