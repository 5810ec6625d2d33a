"""What one student (and the whole class) can make the proxy hold: requests, bodies in memory, upload bytes.

Every resource a request can pin is counted per token and in total, and refused with a 429
(fal's clients retry it) once its bound is reached — before the body is read, so refusing
costs nothing. Connections and request heads are bounded below this, in serving.py; money
and images in limits.py. Defaults fit a class of 30–300 students on one machine.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from .limits import Refusal

MB = 1024 * 1024


@dataclass(frozen=True)
class Bounds:
    """Per-token and class-wide bounds on what requests hold while they run (None: no bound)."""

    requests_per_token: int | None = 16
    """Requests of one token in progress at once (status streams, uploads, submits, polls)."""
    requests_per_client: int | None = 256
    """Requests in progress at once from one client address (X-Forwarded-For from a trusted proxy)."""
    uploads_per_token: int | None = 2
    """Uploads (and submits with a body over 64 KiB) of one token being received at once."""
    bytes_per_token: int | None = 48 * MB
    """Request bytes of one token held in memory at once (bodies being received and forwarded)."""
    bytes_in_flight: int | None = 128 * MB
    """Request bytes the whole class can hold in memory at once."""
    upload_bytes_per_day: int | None = 200 * MB
    """Bytes one student may upload per day (uploads are kept upstream: the instructor's storage)."""

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a whole number >= 1 or None, not {value!r}")


def _over(used: int, more: int, cap: int | None) -> bool:
    return cap is not None and used + more > cap


class Holdings:
    """What requests hold right now: body bytes and uploads per student, and in total. Event-loop only."""

    def __init__(self, bounds: Bounds) -> None:
        self.bounds = bounds
        self.bytes: Counter[str] = Counter()
        self.uploads: Counter[str] = Counter()
        self.total = 0

    def take(self, who: str, size: int, *, upload: bool) -> Refusal | None:
        """Reserve ``size`` bytes (and an upload slot) for ``who``; a refusal when a bound would be passed."""
        b = self.bounds
        if upload and _over(self.uploads[who], 1, b.uploads_per_token):
            return Refusal(
                "uploads-at-once",
                429,
                f"you are already sending {self.uploads[who]} uploads (at most {b.uploads_per_token} at once): "
                "wait for one to finish",
            )
        if _over(self.bytes[who], size, b.bytes_per_token):
            return Refusal(
                "bytes-in-flight",
                429,
                f"you are already sending {self.bytes[who] / MB:.0f} MB "
                f"(at most {(b.bytes_per_token or 0) / MB:.0f} MB at once): wait for your uploads to finish",
            )
        if _over(self.total, size, b.bytes_in_flight):
            return Refusal(
                "class-bytes-in-flight",
                429,
                "the classroom proxy is receiving as much as it holds at once from the class: try again in a moment",
            )
        self.bytes[who] += size
        self.uploads[who] += upload
        self.total += size
        return None

    def give(self, who: str, size: int, *, upload: bool) -> None:
        self.bytes[who] -= size
        self.uploads[who] -= upload
        self.total -= size
        for counter in (self.bytes, self.uploads):
            if counter[who] <= 0:
                del counter[who]


def declared_size(headers: Any, limit: int) -> int:
    """The bytes a body will hold: its Content-Length, or the most allowed when it gives none (chunked)."""
    text = headers.get("content-length", "")
    return min(int(text), limit) if text.isdigit() else limit


class RequestCaps:
    """ASGI middleware: at most N requests in progress per token and per client address; the rest get a 429.

    The client address is uvicorn's ``scope["client"]``, which believes X-Forwarded-For only from the
    trusted proxies configured (serving.ConnectionLimits.trusted_proxies).
    """

    def __init__(self, app: ASGIApp, bounds: Bounds) -> None:
        self.app = app
        self.bounds = bounds
        self.by_token: Counter[str] = Counter()
        self.by_client: Counter[str] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = str((scope.get("client") or ("?", 0))[0])
        auth = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        token = hashlib.sha256(auth).hexdigest() if auth else ""
        refusal = None
        if _over(self.by_client[client], 1, self.bounds.requests_per_client):
            refusal = f"too many requests at once from your address (at most {self.bounds.requests_per_client})"
        elif token and _over(self.by_token[token], 1, self.bounds.requests_per_token):
            refusal = f"too many requests at once with your token (at most {self.bounds.requests_per_token})"
        if refusal is not None:
            await _answer(send, 429, refusal)
            return
        self.by_client[client] += 1
        self.by_token[token] += bool(token)
        try:
            await self.app(scope, receive, send)
        finally:
            for counter, key in ((self.by_client, client), (self.by_token, token)):
                counter[key] -= 1
                if counter[key] <= 0:
                    del counter[key]


async def _answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", b"1"),
        (b"x-kontext-limit", b"requests-at-once"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
