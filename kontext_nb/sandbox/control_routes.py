"""The sandbox's control API for tests and benchmarks: stats, faults, settings, reset.

Open by default; with ``control_token`` set (a classroom proxy's rehearsal sandbox sets one only the proxy
holds), every control call needs ``Authorization: Bearer <control_token>``: on a shared host, any local user
could otherwise find the loopback port and inject a fault into every student's jobs.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .state import RUNTIME_SETTINGS, sandbox_of


def guarded(route: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """The route, refused (401) without the sandbox's control token when it has one."""

    @functools.wraps(route)
    async def wrapper(request: Request) -> Response:
        wanted = sandbox_of(request).config.control_token
        if wanted is not None:
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), wanted.encode()):
                return JSONResponse({"detail": "the control API needs this sandbox's control token"}, 401)
        return await route(request)

    return wrapper


async def control_stats(request: Request) -> Response:
    return JSONResponse(sandbox_of(request).stats())


async def control_request(request: Request) -> Response:
    sb = sandbox_of(request)
    job = sb.queue.jobs.get(request.path_params["request_id"])
    if job is None:
        return JSONResponse({"detail": "Request not found", "error_type": "not_found"}, 404)
    return JSONResponse(sb.queue.info(job))


async def control_faults(request: Request) -> Response:
    sb = sandbox_of(request)
    if request.method == "POST":
        try:
            body = await request.json()
            rules, seed = body.get("rules", []), body.get("seed")
            if not isinstance(rules, list) or (seed is not None and not isinstance(seed, int)):
                raise ValueError("send {'rules': [...], 'seed': int | null}")
            sb.faults.replace(rules, seed)
        except (ValueError, AttributeError) as exc:
            return JSONResponse({"detail": str(exc), "error_type": "bad_request"}, 400)
    return JSONResponse({"rules": sb.faults.describe()})


async def control_config(request: Request) -> Response:
    sb = sandbox_of(request)
    if request.method == "POST":
        try:
            changes = await request.json()
            if not isinstance(changes, dict):
                raise ValueError("send a JSON object of settings")
            updates = {k: _setting(k, v) for k, v in changes.items()}
        except ValueError as exc:
            return JSONResponse({"detail": str(exc), "error_type": "bad_request"}, 400)
        for key, value in updates.items():
            setattr(sb.config, key, value)
        sb.queue.kick()
    return JSONResponse(sb.settings())


def _setting(key: str, value: Any) -> Any:
    if key not in RUNTIME_SETTINGS:
        raise ValueError(f"unknown setting {key!r}: use {', '.join(RUNTIME_SETTINGS)}")
    if key == "stream":
        if not isinstance(value, bool):
            raise ValueError(f"stream must be true or false, not {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{key} must be a number, not {value!r}")
    if key in ("workers", "retry_after", "max_upload_bytes"):
        if int(value) != value or value < (1 if key != "retry_after" else 0):
            raise ValueError(f"{key} must be a whole number >= 1, not {value!r}")
        return int(value)
    if value < 0 or (key == "image_scale" and not 0 < value <= 4):
        raise ValueError(f"{key}={value!r} is out of range")
    return float(value)


async def control_bills(request: Request) -> Response:
    """The bill log: every completed output at endpoints.py's prices; ``?since=`` / ``?until=`` (Unix times)."""
    sb = sandbox_of(request)
    try:
        since, until = (request.query_params.get(k) for k in ("since", "until"))
        bills = sb.queue.bills.entries(
            since=None if since is None else float(since), until=None if until is None else float(until)
        )
    except ValueError:
        return JSONResponse({"detail": "since and until are Unix times", "error_type": "bad_request"}, 400)
    total = round(sum(b.cost for b in bills), 6)
    return JSONResponse({"total": total, "count": len(bills), "bills": [b.as_dict() for b in bills]})


async def control_reset(request: Request) -> Response:
    sandbox_of(request).reset()
    return JSONResponse({"ok": True})


async def control_webhooks(request: Request) -> Response:
    """A webhook receiver for tests: POST stores the body, GET lists what arrived."""
    sb = sandbox_of(request)
    if request.method == "POST":
        try:
            sb.webhooks.append(await request.json())
        except ValueError:
            sb.webhooks.append(None)
        return JSONResponse({"ok": True})
    return JSONResponse(sb.webhooks)
