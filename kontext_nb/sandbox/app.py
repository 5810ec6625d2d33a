"""The sandbox's HTTP face: fal's queue, storage and media routes, plus a control API for tests.

Built on Starlette and served by uvicorn, so clients meet a real HTTP stack (keep-alive,
chunked streams, dropped connections). This module only assembles: the routes live in
queue_routes.py, storage.py and control_routes.py, the state they share in state.py, the
queue in queue.py, the pictures in render.py, the failure plans in faults.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import catalog_routes, control_routes, platform_routes, queue_routes, storage, wire
from .control_routes import guarded
from .state import RUNTIME_SETTINGS, QuietDrops, Sandbox, fal_error

if TYPE_CHECKING:
    from . import SandboxConfig

__all__ = ["RUNTIME_SETTINGS", "create_app"]


async def _not_found(request: Request, exc: Exception) -> Response:
    code = exc.status_code if isinstance(exc, HTTPException) else 404
    text = "Method not allowed" if code == 405 else "Not found"
    return fal_error(code, text, "not_found" if code == 404 else "method_not_allowed")


async def _slow_body(request: Request, exc: Exception) -> Response:
    return fal_error(408, f"Request timeout: {exc}", "request_timeout")


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
    media=storage.serve_blob,
)


def create_app(config: SandboxConfig, base_url: str, local_bases: set[str] | None = None) -> Starlette:
    """The ASGI app for one sandbox; base_url is the public address put into every returned URL."""
    sandbox = Sandbox(config, base_url, set(local_bases or ()))
    logging.getLogger("uvicorn.error").addFilter(QuietDrops())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        sandbox.loop = asyncio.get_running_loop()
        yield
        await sandbox.queue.aclose()

    routes = [
        Route("/_sandbox/stats", guarded(control_routes.control_stats), methods=["GET"]),
        Route("/_sandbox/requests/{request_id}", guarded(control_routes.control_request), methods=["GET"]),
        Route("/_sandbox/faults", guarded(control_routes.control_faults), methods=["GET", "POST"]),
        Route("/_sandbox/config", guarded(control_routes.control_config), methods=["GET", "POST"]),
        Route("/_sandbox/bills", guarded(control_routes.control_bills), methods=["GET"]),
        Route("/_sandbox/reset", guarded(control_routes.control_reset), methods=["POST"]),
        Route("/_sandbox/webhooks", control_routes.control_webhooks, methods=["POST"]),  # where webhooks arrive
        Route("/_sandbox/webhooks", guarded(control_routes.control_webhooks), methods=["GET"]),
        # fal's Platform APIs (api.fal.ai/v1), before the queue's by-id routes that their paths would also match
        Route("/v1/models", catalog_routes.models_api, methods=["GET"]),
        Route("/api/openapi/queue/openapi.json", catalog_routes.openapi_document, methods=["GET"]),
        Route("/v1/models/pricing", platform_routes.pricing, methods=["GET"]),
        Route("/v1/models/usage", platform_routes.usage, methods=["GET"]),
        Route("/v1/models/requests/by-endpoint", platform_routes.requests_by_endpoint, methods=["GET"]),
        *wire.fal_routes(HANDLERS),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(wire.TargetUrl)],
        exception_handlers={404: _not_found, 405: _not_found, wire.SlowBody: _slow_body},
    )
    app.state.sandbox = sandbox
    return app
