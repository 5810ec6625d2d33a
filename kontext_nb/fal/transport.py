"""The httpx transport every request of the engine goes through.

It does two things, so that nothing else has to:
- routes fal's hosts (queue, run, storage, CDN upload) to a configured base URL, which is
  how the sandbox, a classroom proxy or a test server stand in for fal (plain http on
  loopback works; fal_client's module globals stay untouched);
- retries, with exponential backoff and jitter, what is worth retrying: 429 (honouring
  Retry-After), 408, fal's ingress 502-504 and dropped connections; for reads (GET, PUT
  cancel) also any 5xx, because a lost status or result read could lose a paid image.
  A submit (a POST to fal's queue or run hosts, which fal bills) is sent again after a broken
  connection only when it provably never reached the server: the connection was refused or
  timed out while connecting, or the host name did not resolve (fal_client's own failover
  retries exactly these). Any other break raises ``SubmitUnconfirmed`` at once: fal may have
  accepted the job, and sending it again could run and bill it twice.
  A classroom proxy's refusal (X-Kontext-Limit) is final: raised at once as a FalError.

When retries run out it raises ``RetriesExhausted`` — deliberately not an httpx error, so
fal_client's own retry loop does not multiply the attempts.
"""

from __future__ import annotations

import asyncio
import email.utils
import re
import time

import httpx

from ..config import RetryPolicy
from ..errors import NotSent, RetriesExhausted, SubmitUnconfirmed
from .protocol import PROXY_LIMIT_HEADER, http_error

FAL_HOSTS = frozenset(
    {
        "queue.fal.run",
        "fal.run",
        "rest.fal.ai",
        "v3.fal.media",
        "queue.falrun.com",
        "falrun.com",
        "api.fal.ai",
        "fal.ai",
    }
)
"""Hosts routed to a configured base URL (api.fal.ai: the Platform APIs; fal.ai: endpoints' OpenAPI documents)."""
RETRY_STATUSES = frozenset({408, 429})
INGRESS_STATUSES = frozenset({502, 503, 504})
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "OPTIONS"})
BILLED_HOSTS = frozenset({"queue.fal.run", "fal.run", "queue.falrun.com", "falrun.com"})
"""Where a POST submits a job fal bills (storage uploads are free, and retried like reads)."""
NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
"""Breaks that prove the request never reached the server (a DNS failure is a ConnectError)."""
REFUSED_LOCALLY = (httpx.UnsupportedProtocol, httpx.LocalProtocolError)
"""Raised by httpx (h11) before a byte is written: an unsupported scheme, an illegal header. Never unconfirmed."""
_HEADER_NAME = re.compile(rb"^[-!#$%&'*+.^_`|~0-9a-zA-Z]+$")
_HEADER_VALUE = re.compile(rb"^(?:[\x21-\x7e\x80-\xff]+(?:[ \t]+[\x21-\x7e\x80-\xff]+)*)?$")
"""RFC 9110 field names and values, as h11 checks them before sending."""


def refuse_illegal_headers(request: httpx.Request) -> None:
    """Raise NotSent for a header h11 would refuse (a key pasted with a CR): named, its value never shown."""
    for name, value in request.headers.raw:
        if not _HEADER_NAME.match(name) or not _HEADER_VALUE.match(value):
            shown = name.decode("ascii", "replace") if _HEADER_NAME.match(name) else "a header"
            raise NotSent(
                f"the request to {request.url.host} was not sent: {shown} holds a character HTTP does not allow "
                "(a line break or a space at its end?); nothing was sent or billed"
            )


def retry_after_seconds(response: httpx.Response) -> float | None:
    """Retry-After as seconds, from either of its two forms (delta-seconds or HTTP date)."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def is_ingress_error(response: httpx.Response, body: bytes) -> bool:
    """fal's own heuristic: a 502-504 from the load balancer, not from the app."""
    return (
        response.status_code in INGRESS_STATUSES
        and "x-fal-request-id" not in response.headers
        and b"nginx" in body.lower()
    )


class FalTransport(httpx.AsyncBaseTransport):
    """Routes fal hosts to ``base_url`` (if set) and applies the retry policy."""

    def __init__(
        self,
        base_url: str | None = None,
        policy: RetryPolicy | None = None,
        inner: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._base = httpx.URL(base_url.rstrip("/")) if base_url else None
        self.policy = policy or RetryPolicy()
        self._inner = inner or httpx.AsyncHTTPTransport()
        self.requests_sent = 0
        self.retries = 0

    def route(self, request: httpx.Request) -> httpx.Request:
        if self._base is None or request.url.host not in FAL_HOSTS:
            return request
        base = self._base
        path = base.raw_path.rstrip(b"/") + request.url.raw_path
        url = request.url.copy_with(scheme=base.scheme, host=base.host, port=base.port, raw_path=path)
        headers = httpx.Headers(request.headers)
        headers["host"] = url.netloc.decode("ascii")
        if request.url.host in ("fal.run", "falrun.com"):  # fal.run's synchronous API, which a server at base_url
            headers["x-fal-target-url"] = str(request.url.copy_with(host="fal.run"))  # cannot tell from a submit
        return httpx.Request(request.method, url, headers=headers, stream=request.stream, extensions=request.extensions)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        billed = request.method == "POST" and request.url.host in BILLED_HOSTS
        request = self.route(request)
        refuse_illegal_headers(request)
        idempotent = request.method in IDEMPOTENT
        attempts = self.policy.attempts
        for attempt in range(1, attempts + 1):
            try:
                self.requests_sent += 1
                response = await self._inner.handle_async_request(request)
                if not _is_event_stream(request, response):
                    response = await _buffered(response)
            except httpx.TransportError as exc:
                if isinstance(exc, REFUSED_LOCALLY):  # httpx stopped it on this machine: not sent, never retried
                    raise NotSent(
                        f"the request to {request.url.host} was not sent: httpx refused it here "
                        f"({type(exc).__name__}); nothing was sent or billed"
                    ) from None
                if billed and not isinstance(exc, NEVER_SENT):
                    raise SubmitUnconfirmed(
                        f"the connection broke after the request was sent to {request.url.host} "
                        f"({type(exc).__name__}{' ' + _short(exc) if _short(exc) else ''}): fal may have accepted it"
                    ) from None
                if attempt == attempts:
                    raise RetriesExhausted(
                        f"could not reach {request.url.host}: {type(exc).__name__} {_short(exc)} "
                        f"(tried {attempts} times)"
                    ) from None
                await self._sleep(attempt, None)
                continue
            status = response.status_code
            if status >= 400 and PROXY_LIMIT_HEADER in response.headers:
                # a classroom proxy's quota or policy refusal: final, and raised here (not an httpx error)
                # so that fal_client's own retry loop, which retries any 429, does not ask nine more times
                await response.aread()
                raise http_error(response)
            retryable = status in RETRY_STATUSES or (idempotent and status >= 500)
            if not retryable and status in INGRESS_STATUSES:
                body = await response.aread()
                retryable = is_ingress_error(response, body)
            if not retryable:
                return response
            await response.aread()
            await response.aclose()
            if attempt == attempts:
                raise RetriesExhausted(
                    f"HTTP {status}{_detail(response)} on every try ({attempts} tries of "
                    f"{request.method} {request.url.path})",
                    status_code=status,
                    error_type=response.headers.get("x-fal-error-type"),
                )
            await self._sleep(attempt, retry_after_seconds(response) if status == 429 else None)
        raise AssertionError("unreachable")

    async def _sleep(self, attempt: int, retry_after: float | None) -> None:
        self.retries += 1
        await asyncio.sleep(self.policy.delay(attempt, retry_after))

    async def aclose(self) -> None:
        await self._inner.aclose()


def _is_event_stream(request: httpx.Request, response: httpx.Response) -> bool:
    return "text/event-stream" in request.headers.get("accept", "") or "text/event-stream" in response.headers.get(
        "content-type", ""
    )


async def _buffered(response: httpx.Response) -> httpx.Response:
    """Read the whole body here, so a connection dropped mid-body is retried like any other."""
    try:
        raw = b"".join([chunk async for chunk in response.aiter_raw()])
    finally:
        await response.aclose()
    return httpx.Response(
        response.status_code, headers=response.headers, stream=httpx.ByteStream(raw), extensions=response.extensions
    )


def _short(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"({text[:120]})" if text else ""


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except Exception:
        return ""
    return f": {str(detail)[:200]}" if detail else ""
