"""The one place the real key is used: HTTP to fal (or a sandbox, or any fal-compatible server).

Requests go through kontext_nb's own FalTransport, so retries, backoff and 429 handling are
the extension's policy. What comes back is rewritten before a student sees it: upstream
bases become the proxy's address, upstream request ids the proxy's, and the key (in any of
its parts) is scrubbed from every body — defence in depth, fal never echoes it. Response
headers are never copied wholesale: routes build theirs from the allowlists below.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx

from kontext_nb.config import RetryPolicy
from kontext_nb.errors import KontextError
from kontext_nb.fal.status import StreamUnavailable, follow_stream, poll_status
from kontext_nb.fal.transport import FalTransport

SUBMIT_HEADERS = ("x-fal-queue-priority", "x-fal-request-timeout", "x-fal-store-io")
"""The request headers passed on with a submit: fal's queue options, nothing that identifies anyone."""
UPLOAD_HEADERS = ("content-type", "x-fal-file-name")
MEDIA_HEADERS = ("content-type", "cache-control", "etag", "last-modified")
ERROR_HEADERS = ("x-fal-error-type", "x-fal-retryable", "x-fal-request-timeout-type")
REDACTED = "[redacted]"


@dataclass(frozen=True)
class Bases:
    queue: str
    storage: str
    media: str


FAL = Bases("https://queue.fal.run", "https://rest.fal.ai", "https://v3.fal.media")


def pick_headers(headers: Any, allowed: Iterable[str]) -> dict[str, str]:
    return {name: headers[name] for name in allowed if name in headers}


class Upstream:
    """fal (``target="fal"``) or one fal-compatible base URL for queue, storage and media alike."""

    def __init__(self, target: str, key: str, retry: RetryPolicy | None = None, label: str | None = None) -> None:
        if target == "fal":
            self.bases, route = FAL, None
        else:
            url = target.rstrip("/")
            self.bases, route = Bases(url, url, url), url
        self.label = label or ("fal" if target == "fal" else url)
        self._secrets = sorted({s for s in (key, *key.split(":")) if len(s) >= 8}, key=len, reverse=True)
        self._http = httpx.AsyncClient(
            transport=FalTransport(route, retry), headers={"Authorization": f"Key {key}"}, timeout=60.0
        )
        self._plain = httpx.AsyncClient(transport=FalTransport(route, retry), timeout=60.0)  # no key: media, CDN
        self._once = httpx.AsyncClient(  # no retries: a stored result is final, whatever its status
            transport=_RouteOnly(FalTransport(route, retry)), headers={"Authorization": f"Key {key}"}, timeout=60.0
        )
        bases = sorted({self.bases.queue, self.bases.storage, self.bases.media}, key=len, reverse=True)
        self._outbound = re.compile("(?:" + "|".join(map(re.escape, bases)) + r")(?=[/\"'?#\s\\]|$)")
        self._stream: bool | None = None
        self._cdn: dict[str, Any] | None = None
        self._cdn_expires = datetime.min.replace(tzinfo=timezone.utc)
        self._cdn_lock = asyncio.Lock()

    def describe(self) -> str:
        if self.bases == FAL:
            return "fal (queue.fal.run, rest.fal.ai, v3.fal.media)"
        return f"{self.label} at {self.bases.queue}" if self.label != self.bases.queue else self.bases.queue

    async def aclose(self) -> None:
        await self._http.aclose()
        await self._plain.aclose()
        await self._once.aclose()

    # ---- what students see ---------------------------------------------------------------
    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def outbound(self, text: str, proxy_base: str) -> str:
        """Upstream addresses in a body become the proxy's; the key, were it there, is removed."""
        return self.scrub(self._outbound.sub(proxy_base.rstrip("/"), text))

    def inbound(self, value: Any, proxy_bases: Iterable[str]) -> Any:
        """The proxy's own file URLs in a student's input point upstream again (fal cannot reach a classroom)."""
        prefixes = [(b.rstrip("/") + p, self.bases.media + p) for b in proxy_bases if b for p in ("/files/", "/media/")]

        def fix(text: str) -> str:
            for mine, theirs in prefixes:
                if text.startswith(mine):
                    return theirs + text[len(mine) :]
            return text

        return _map_strings(value, fix)

    def explain(self, exc: BaseException) -> str:
        """An exception as one line for a student: no URL with a secret, no key."""
        if isinstance(exc, httpx.TimeoutException):
            text = f"upstream did not answer in time ({type(exc).__name__})"
        elif isinstance(exc, httpx.TransportError):
            text = f"could not reach upstream ({type(exc).__name__})"
        elif isinstance(exc, KontextError):
            text = str(exc)
        else:
            text = type(exc).__name__
        return self.scrub(text.splitlines()[0][:300] if text else type(exc).__name__)

    # ---- the queue -----------------------------------------------------------------------
    async def submit(self, endpoint_id: str, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
        return await self._http.post(f"{self.bases.queue}/{endpoint_id}", json=body, headers=headers)

    async def follow(
        self, status_url: str, apply: Callable[[dict[str, Any]], None], poll_interval: float
    ) -> dict[str, Any]:
        """Status events until COMPLETED: the SSE stream when the upstream has one, else polling."""
        if self._stream is not False:
            try:
                final = await follow_stream(self._http, status_url, apply)
                self._stream = True
                return final
            except StreamUnavailable as exc:
                if exc.for_server:
                    self._stream = False
        return await poll_status(self._http, status_url, poll_interval, apply)

    async def get_json(self, url: str, method: str = "GET") -> tuple[int, Any]:
        """(status, JSON body) of a result or cancel call; a body that is not JSON becomes a detail line."""
        response = await self._http.request(method, url)
        return response.status_code, _json_or_detail(response)

    async def result(self, url: str) -> tuple[int, Any, dict[str, str]]:
        """(status, body, fal's error headers) of a COMPLETED request's result: final, whatever the status.

        A 5xx that carries fal's request id or error type is the request's stored result (fal's
        500 runner_server_error, 504 request_timeout), not an outage; only one without them (the
        load balancer's) raises UpstreamOutage, to be tried again later.
        """
        response = await self._once.get(url)
        status = response.status_code
        if status >= 500 and not any(h in response.headers for h in ("x-fal-request-id", "x-fal-error-type")):
            raise UpstreamOutage(f"the upstream answered HTTP {status} to a result read")
        return status, _json_or_detail(response), pick_headers(response.headers, ERROR_HEADERS)

    # ---- storage and media ---------------------------------------------------------------
    async def _cdn_token(self, fresh: bool = False) -> dict[str, Any]:
        async with self._cdn_lock:
            if fresh or self._cdn is None or datetime.now(timezone.utc) + timedelta(seconds=60) >= self._cdn_expires:
                response = await self._http.post(
                    f"{self.bases.storage}/storage/auth/token", params={"storage_type": "fal-cdn-v3"}, json={}
                )
                if response.status_code >= 400:
                    raise UpstreamRefused(response.status_code, _json_or_detail(response))
                token = response.json()
                self._cdn = token
                try:
                    expires = datetime.fromisoformat(str(token["expires_at"]).replace("Z", "+00:00"))
                except (KeyError, ValueError):
                    expires = datetime.now(timezone.utc) + timedelta(minutes=5)
                self._cdn_expires = expires if expires.tzinfo else expires.replace(tzinfo=timezone.utc)
            return self._cdn

    async def upload(self, data: bytes, headers: dict[str, str]) -> httpx.Response:
        """POST the bytes to the upstream CDN with the proxy's own CDN token (fetched with the real key)."""
        response: httpx.Response | None = None
        for fresh in (False, True):  # a token the CDN no longer takes is fetched again, once
            token = await self._cdn_token(fresh)
            auth = {"Authorization": f"{token['token_type']} {token['token']}"}
            response = await self._plain.post(
                str(token["base_url"]).rstrip("/") + "/files/upload", content=data, headers={**headers, **auth}
            )
            if response.status_code != 401:
                break
        assert response is not None
        return response

    async def initiate(self, params: dict[str, str], body: Any) -> httpx.Response:
        return await self._http.post(f"{self.bases.storage}/storage/upload/initiate", params=params, json=body)

    async def put_signed(self, path: str, data: bytes, headers: dict[str, str]) -> httpx.Response:
        """The signed-URL PUT of an upstream whose upload URLs point at itself (a sandbox)."""
        return await self._plain.put(self.bases.storage + path, content=data, headers=headers)

    async def media(self, path: str) -> httpx.Response:
        return await self._plain.get(self.bases.media + path)


class _RouteOnly(httpx.AsyncBaseTransport):
    """FalTransport's routing of fal's hosts, without its retries."""

    def __init__(self, fal: FalTransport) -> None:
        self.fal, self.inner = fal, httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.inner.handle_async_request(self.fal.route(request))

    async def aclose(self) -> None:
        await self.inner.aclose()


class UpstreamOutage(Exception):
    """The upstream could not answer now (its load balancer's 5xx): try again later."""


class UpstreamRefused(Exception):
    """The upstream answered an error the proxy cannot hide (its storage refused a token, ...)."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = body


def _json_or_detail(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        text = response.text.strip()
        return {"detail": text.splitlines()[0][:200] if text else response.reason_phrase}


def _map_strings(value: Any, fn: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, list):
        return [_map_strings(v, fn) for v in value]
    if isinstance(value, dict):
        return {k: _map_strings(v, fn) for k, v in value.items()}
    return value
