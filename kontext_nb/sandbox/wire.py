"""fal's HTTP surface as both local servers speak it: the route table, the status stream, served files.

The sandbox and the classroom proxy answer the same URLs (fal's queue, storage and media
routes); each supplies its own handlers to ``fal_routes``. ``sse`` is the one status-stream
loop both use. Files either serves go out with ``FILE_HEADERS`` and only as images, so a
student's upload can never run as a page on the server's origin.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from kontext_nb.images import SNIFFED_TYPES
from kontext_nb.serving import SlowBody, read_body

__all__ = [
    "FILE_HEADERS",
    "SSE_HEADERS",
    "FalHandlers",
    "SlowBody",
    "TargetUrl",
    "fal_routes",
    "not_an_image",
    "parse_json",
    "read_body",
    "sse",
    "synchronous",
]

Handler = Callable[[Request], Awaitable[Response]]

FILE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cross-Origin-Resource-Policy": "cross-origin",
}
"""On every file served: never sniffed into something else, never run as a page even if opened as one."""


def not_an_image(declared: str | None) -> str:
    shown = (declared or "no Content-Type").split(";")[0].strip()[:60]
    return f"only images can be uploaded ({SNIFFED_TYPES}); these bytes are not one (sent as {shown})"


@dataclass(frozen=True)
class FalHandlers:
    """A server's handlers for fal's routes (``submit`` also serves fal.run's synchronous calls)."""

    submit: Handler
    status: Handler
    stream: Handler
    result: Handler
    cancel: Handler
    storage_token: Handler
    storage_initiate: Handler
    storage_put: Handler
    cdn_upload: Handler
    media: Handler


def fal_routes(h: FalHandlers) -> list[Route]:
    """fal's queue, storage and media URLs, in matching order (the submit catch-all last)."""
    return [
        Route("/storage/auth/token", h.storage_token, methods=["POST"]),
        Route("/storage/upload/initiate", h.storage_initiate, methods=["POST"]),
        Route("/storage/uploads/{upload_id}", h.storage_put, methods=["PUT"]),
        Route("/files/upload", h.cdn_upload, methods=["POST"]),
        Route("/files/{path:path}", h.media, methods=["GET"]),
        Route("/media/{name}", h.media, methods=["GET"]),
        Route("/{owner}/{app}/requests/{request_id}/status/stream", h.stream, methods=["GET"]),
        Route("/{owner}/{app}/requests/{request_id}/status", h.status, methods=["GET"]),
        Route("/{owner}/{app}/requests/{request_id}/cancel", h.cancel, methods=["PUT"]),
        Route("/{owner}/{app}/requests/{request_id}", h.result, methods=["GET"]),
        Route("/{endpoint:path}", h.submit, methods=["POST"]),
    ]


SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def sse(
    snapshot: Callable[[], dict[str, Any]],
    changed: Callable[[], asyncio.Event],
    *,
    finished: Callable[[], bool],
    stopping: Callable[[], bool],
    keepalive: Callable[[], float],
    encode: Callable[[dict[str, Any]], str] = json.dumps,
    steps: Callable[[dict[str, Any] | None, dict[str, Any]], Iterable[dict[str, Any]]] | None = None,
) -> AsyncIterator[str]:
    """fal's status stream: one ``data:`` event per change, a comment every ``keepalive`` s, ends after COMPLETED.

    ``steps(last, now)`` may add events before ``now`` (the sandbox sends one per log line).
    """
    last: dict[str, Any] | None = None
    while not stopping() or finished():
        event = changed()  # taken before looking, so no change slips between
        now = snapshot()
        if now != last:
            for step in steps(last, now) if steps is not None else ():
                yield f"data: {encode(step)}\n\n"
            last = now
            yield f"data: {encode(now)}\n\n"
            if finished():
                return
        try:
            await asyncio.wait_for(event.wait(), timeout=keepalive())
        except asyncio.TimeoutError:
            yield ": keep-alive\n\n"


# ---- request bodies --------------------------------------------------------------------------
MAX_JSON_DEPTH = 32
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(rb"[\[\]{}]")


def parse_json(raw: bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """JSON from a request body; ValueError (one line) if it is not JSON or is nested deeper than ``max_depth``.

    The depth is checked before parsing, so a deeply nested body can never reach Python's recursion limit.
    """
    depth = deepest = 0
    for match in _BRACKETS.finditer(_STRINGS.sub(b'""', raw)):
        depth += 1 if match.group() in (b"[", b"{") else -1
        deepest = max(deepest, depth)
        if deepest > max_depth:
            raise ValueError(f"Invalid JSON: nested more than {max_depth} levels deep")
    try:
        return json.loads(raw or b"null")
    except (ValueError, RecursionError) as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"Invalid JSON: {text}") from None


# ---- which fal host a request was meant for ---------------------------------------------------
TARGET_HEADER = "x-fal-target-url"
SYNC_HOST = "fal.run"
FAL_TARGET_HOSTS = ("fal.run", "fal.ai", "fal.media", "falrun.com")


def synchronous(request: Request) -> bool:
    """True for a call to fal.run (the synchronous API): by x-fal-target-url, or a Host header naming it."""
    return bool(request.scope.get("fal_host") == SYNC_HOST)


def _host_allowed(host: str) -> bool:
    return any(host == h or host.endswith("." + h) for h in FAL_TARGET_HOSTS)


class TargetUrl:
    """fal's proxy protocol (the JS client's ``proxyUrl``): a request naming its fal URL in ``x-fal-target-url``.

    The request is served as if it had been sent to that URL's path; only fal's own hosts may be
    named (anything else is a 403). Without the header, a ``Host: fal.run`` marks a synchronous call.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        target = headers.get(TARGET_HEADER.encode())
        if target is None:
            host = headers.get(b"host", b"").decode("latin-1").split(":")[0].lower()
            scope = {**scope, "fal_host": host}
            await self.app(scope, receive, send)
            return
        parts = urlsplit(target.decode("latin-1"))
        host = (parts.hostname or "").lower()
        if parts.scheme != "https" or not _host_allowed(host):
            answer = JSONResponse(
                {"detail": f"{TARGET_HEADER} must name an https URL on fal's hosts ({', '.join(FAL_TARGET_HOSTS)})"},
                403,
            )
            await answer(scope, receive, send)
            return
        path = parts.path or "/"
        if path.startswith(("/instructor", "/_sandbox")):
            await JSONResponse({"detail": "Not found"}, 404)(scope, receive, send)
            return
        scope = {
            **scope,
            "path": unquote(path),
            "raw_path": path.encode(),
            "query_string": parts.query.encode(),
            "fal_host": host,
        }
        await self.app(scope, receive, send)
