"""fal's error answers turned into one readable line each (never echoing headers or keys)."""

from __future__ import annotations

from typing import Any

import httpx
from fal_client.auth import MissingCredentialsError
from fal_client.client import FalClientHTTPError

from ..errors import FalError, KontextError, NotSent

PROXY_HEADER = "x-kontext-proxy"  # on every answer a kontext_nb classroom proxy makes itself
PROXY_LIMIT_HEADER = "x-kontext-limit"  # on its refusals: which limit (images-per-day, blocklist, ...)
CANCEL_ERROR_TYPES = ("request_cancelled", "client_cancelled")  # fal documents both (client_cancelled: HTTP 499)


def field_errors(detail: Any) -> list[tuple[str, str]]:
    """fal's 422 ``detail`` list as (field, message) pairs."""
    if not isinstance(detail, list):
        return []
    pairs = []
    for item in detail:
        if isinstance(item, dict):
            loc = [str(p) for p in item.get("loc", []) if p != "body"]
            pairs.append((".".join(loc) or "input", str(item.get("msg", item))))
    return pairs


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def http_error(response: httpx.Response, request_id: str | None = None) -> FalError:
    """An HTTP error response from fal (or the sandbox, or a proxy) as a FalError."""
    status = response.status_code
    body = _body(response)
    detail = body.get("detail") if isinstance(body, dict) else None
    error_type = (body.get("error_type") if isinstance(body, dict) else None) or response.headers.get(
        "x-fal-error-type"
    )
    pairs = field_errors(detail)
    if status == 422 and pairs:
        text = "; ".join(f"{f}: {m}" for f, m in pairs)
        return FalError(
            f"fal rejected the input: {text}",
            status_code=422,
            error_type=error_type or "validation",
            field_errors=pairs,
        )
    if not isinstance(detail, str):
        detail = response.text.strip().splitlines()[0][:200] if response.text.strip() else response.reason_phrase
    rid = f" for request {request_id}" if request_id else ""
    if PROXY_HEADER in response.headers and status in (401, 403, 429):
        msg = f"the classroom proxy refused the request (HTTP {status}): {detail}"
    elif status in (401, 403):
        msg = f"fal refused the request (HTTP {status}): {detail}. Check FAL_KEY"
    elif status == 404 and request_id:
        msg = f"fal no longer knows request {request_id} (HTTP 404: {detail})"
    elif status == 429:
        msg = f"fal is rate limiting{rid} (HTTP 429): {detail}"
    else:
        msg = f"fal answered HTTP {status}{rid}: {detail}"
    return FalError(msg, status_code=status, error_type=error_type, request_id=request_id)


def fal_error(exc: Any, request_id: str | None = None) -> KontextError:
    """Any failure of a fal call as a KontextError with a one-line message."""
    if isinstance(exc, KontextError):
        return exc
    if isinstance(exc, httpx.Response):
        return http_error(exc, request_id)
    if isinstance(exc, FalClientHTTPError):
        return http_error(exc.response, request_id)
    if isinstance(exc, MissingCredentialsError):
        return FalError("no fal key found: set FAL_KEY (or FAL_KEY_ID and FAL_KEY_SECRET)")
    if isinstance(exc, (httpx.InvalidURL, httpx.UnsupportedProtocol, httpx.LocalProtocolError)):
        return NotSent(f"httpx refused the request on this machine ({type(exc).__name__}); nothing was sent or billed")
    if isinstance(exc, httpx.TimeoutException):
        return FalError(f"fal did not answer in time ({type(exc).__name__})", request_id=request_id)
    if isinstance(exc, httpx.TransportError):
        return FalError(f"could not reach fal: {type(exc).__name__}", request_id=request_id)
    return FalError(f"{type(exc).__name__}: {str(exc)[:200]}", request_id=request_id)
