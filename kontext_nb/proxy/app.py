"""The proxy's HTTP face: fal's queue, storage and media routes as students' clients call them.

A student sets ``KONTEXT_FAL_URL`` to the proxy and ``FAL_KEY`` to their own token; kontext_nb
(or fal_client, or fal's JS client, directly or through its ``proxyUrl``) then sends here what
it would send to fal. Each request is authenticated by token from its headers before any body
is read, checked against the class's policy and quotas, and answered from the proxy's own
queue (dispatch.py); only the proxy talks upstream, with the real key.

This module only assembles: routes live in queue_routes.py, storage.py and instructor.py,
their shared state in state.py. What is not passed on: ``?fal_webhook=`` (refused: fal would
post results to an address of the student's choosing, around the proxy's record), any header
outside ``upstream.SUBMIT_HEADERS``, and upstream response headers other than fal's error
headers (``upstream.ERROR_HEADERS``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

from kontext_nb.sandbox import wire

from . import duel, instructor, queue_routes, storage, student_view
from .bounds import RequestCaps
from .classroom import StateError
from .state import Proxy, ProxyHeader, error, state_unavailable

__all__ = ["create_app"]

HANDLERS = wire.FalHandlers(
    submit=queue_routes.submit,
    status=queue_routes.status,
    stream=queue_routes.status_stream,
    result=queue_routes.result,
    cancel=queue_routes.cancel,
    storage_token=storage.storage_token,
    storage_initiate=storage.storage_initiate,
    storage_put=storage.storage_put,
    cdn_upload=storage.cdn_upload,
    media=storage.media,
)


async def _not_found(request: Request, exc: Exception) -> Response:
    code = exc.status_code if isinstance(exc, HTTPException) else 404
    return error(code, "Method not allowed" if code == 405 else "Not found")


async def _slow_body(request: Request, exc: Exception) -> Response:
    return error(408, f"request timeout: {exc}")


def create_app(proxy: Proxy) -> Starlette:
    """The ASGI app of one proxy."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        proxy.loop = asyncio.get_running_loop()
        proxy.dispatcher.resume()
        yield
        await proxy.dispatcher.aclose()
        await proxy.upstream.aclose()
        with contextlib.suppress(StateError):  # the state away at the stop: the last batch of "seen" times
            proxy.flush_seen()
        duel.close_for(proxy)  # this thread's connections to the state
        proxy.classroom.close()

    app = Starlette(
        routes=[*instructor.routes(), *duel.routes(), *student_view.routes(), *wire.fal_routes(HANDLERS)],
        lifespan=lifespan,
        middleware=[
            Middleware(ProxyHeader),
            Middleware(RequestCaps, bounds=proxy.config.bounds),
            Middleware(wire.TargetUrl),
        ],
        exception_handlers={
            404: _not_found,
            405: _not_found,
            wire.SlowBody: _slow_body,
            StateError: state_unavailable,  # routes outside ``guarded`` (the instructor's, the duel's)
        },
    )
    app.state.proxy = proxy
    return app
