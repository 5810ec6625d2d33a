"""The proxy's shared server state and answer helpers: what every route module of the proxy imports.

Route modules (queue_routes, storage, instructor) import from here, never from each other or
from app.py, which only assembles them.
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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kontext_nb.sandbox import wire
from kontext_nb.serving import SlowBody

from . import policy
from .bounds import Holdings, declared_size
from .classroom import Classroom, StateError, Student, today
from .dispatch import Dispatcher
from .job import ProxyJob
from .limits import Limits, Refusal
from .upstream import Upstream, UpstreamRefused

if TYPE_CHECKING:
    from . import ProxyConfig

log = logging.getLogger("kontext_nb.proxy")

PROXY_HEADER = "X-Kontext-Proxy"
LIMIT_HEADER = "X-Kontext-Limit"
UNKNOWN_TOKEN = "unknown token: ask your instructor for yours"
REVOKED = Refusal("revoked", 403, "your access to the classroom proxy was revoked: ask your instructor")
NOT_FOUND = "Request not found"
STATE_UNAVAILABLE = (
    "the classroom proxy cannot reach its database just now (nothing was sent or spent by this request): "
    "try again in a moment"
)
SEEN_FLUSH_SECONDS = 30.0
KEEPALIVE_SECONDS = 15.0


@dataclass
class LoginSession:
    """An instructor's logged-in browser: ends when the instructor token it was opened with is replaced."""

    token_hash: str
    csrf: str
    created: float


class ProxyHeader:
    """ASGI middleware: every answer carries X-Kontext-Proxy: 1, so clients can tell it from fal's, and, as fal's
    do, ``x-fal-request-id`` (the job's, or one of its own for an answer about no job: fal's JS client reads
    ``ApiError.requestId`` from it) and ``x-fal-retryable`` on a 429 or 503."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (b"x-kontext-proxy", b"1")]
                names = {name.lower() for name, _ in headers}
                if b"x-fal-request-id" not in names:
                    headers.append((b"x-fal-request-id", str(uuid.uuid4()).encode()))
                if message["status"] in (429, 503) and b"x-fal-retryable" not in names:
                    headers.append((b"x-fal-retryable", b"true"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, marked if scope["type"] == "http" else send)


class Proxy:
    """All server state: settings, the classroom db, the upstream, the dispatcher, instructor logins."""

    def __init__(
        self,
        config: ProxyConfig,
        classroom: Classroom,
        upstream: Upstream,
        local_bases: tuple[str, ...] = (),
        me: str = "local",
    ) -> None:
        self.config = config
        self.limits: Limits = config.limits
        self.session: str = config.session or today()
        self.classroom = classroom
        self.upstream = upstream
        self.blocklist = policy.Blocklist(config.blocklist)
        self.dispatcher = Dispatcher(classroom, upstream, self.limits.class_in_flight, config.poll_interval, me)
        self.dispatcher.settings = f"{self.limits.describe()}; session {self.session}; blocklist {len(self.blocklist)}"
        self.dispatcher.heartbeat = config.heartbeat
        self.local_bases = local_bases
        """The addresses the server listens on, besides --public-url (a student's file URLs may use any)."""
        self.keepalive_seconds = KEEPALIVE_SECONDS
        self.holdings = Holdings(config.bounds)
        """Body bytes and uploads being received, per student and in total."""
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

    @asynccontextmanager
    async def held_body(
        self, request: Request, who: str, limit: int, *, upload: bool | None = None
    ) -> AsyncIterator[bytes | Response]:
        """The request's body, counted against ``who``'s and the class's bytes in flight while the block runs.

        Yields a 413 or 429 answer instead when the body is too large or a bound is reached: decided
        from the headers, before a byte of the body is read. ``upload`` None: bodies over 64 KiB count
        as uploads.
        """
        size = declared_size(request.headers, limit)
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            yield too_large(limit)
            return
        upload = size > 64 * 1024 if upload is None else upload
        refusal = self.holdings.take(who, size, upload=upload)
        if refusal is not None:
            log.info("refused %s: %s (%s)", who, refusal.kind, refusal.message)
            yield error(refusal.status, refusal.message, limit=refusal.kind, **{"retry-after": "1"})
            return
        try:
            data = await wire.read_body(request, limit)
            yield too_large(limit) if data is None else data
        finally:
            self.holdings.give(who, size, upload=upload)

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


def proxy_of(request: Request) -> Proxy:
    return request.app.state.proxy  # type: ignore[no-any-return]


def guarded(route: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """Any unexpected failure becomes one line (502), never a traceback, a URL with a secret or the key."""

    @functools.wraps(route)
    async def wrapper(request: Request) -> Response:
        try:
            return await route(request)
        except RecursionError:
            return error(400, "the request is nested too deeply to read")
        except SlowBody as exc:
            return error(408, f"request timeout: {exc}")
        except StateError as exc:
            return state_unavailable(request, exc)
        except Exception as exc:
            proxy = proxy_of(request)
            if isinstance(exc, UpstreamRefused):
                detail = exc.body.get("detail") if isinstance(exc.body, dict) else None
                text = f"upstream error: HTTP {exc.status}" + (f": {str(detail)[:200]}" if detail else "")
            else:
                text = f"upstream error: {proxy.upstream.explain(exc)}"
            log.warning("%s %s failed: %s", request.method, request.url.path, proxy.upstream.scrub(text))
            return error(502, proxy.upstream.scrub(text))

    return wrapper


def state_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """The state's database cannot be reached (a PostgreSQL server restarting): a 503 the student's client retries,
    one line saying nothing was sent or spent; the instructor's log gets the reason (never the password)."""
    log.warning("%s %s: %s", request.method, request.url.path, exc)
    return error(503, STATE_UNAVAILABLE, **{"retry-after": "2"})


def too_large(limit: int) -> JSONResponse:
    size = f"{limit / 1024 / 1024:g} MB" if limit >= 1024 * 1024 else f"{limit} bytes"
    return error(413, f"too large: the classroom proxy accepts at most {size} per request")
