"""Following a request's status: fal's SSE stream first, polling as the fallback.

The stream pushes each change the moment the server makes it, so completion is noticed
within milliseconds and with a single HTTP request, where polling costs one request per
interval and half an interval of latency on average.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
from httpx_sse import EventSource

from .protocol import http_error

Apply = Callable[[dict[str, Any]], None]

# fal sends a keep-alive comment every ~15 s; three missed ones mean the stream is dead.
STREAM_READ_TIMEOUT = 45.0


class StreamUnavailable(Exception):
    """The server has no status stream (or not for this request): poll instead."""

    def __init__(self, for_server: bool) -> None:
        super().__init__("no status stream")
        self.for_server = for_server


async def follow_stream(
    http: httpx.AsyncClient, status_url: str, apply: Apply, request_id: str | None = None
) -> dict[str, Any]:
    """Apply every status event until COMPLETED, and return that final status."""
    timeout = httpx.Timeout(30.0, read=STREAM_READ_TIMEOUT)
    headers = {"Accept": "text/event-stream"}
    async with http.stream(
        "GET", status_url + "/stream", params={"logs": "1"}, headers=headers, timeout=timeout
    ) as response:
        if response.status_code in (405, 501):
            raise StreamUnavailable(for_server=True)
        if response.status_code == 404:
            raise StreamUnavailable(for_server=False)
        if response.status_code >= 400:
            await response.aread()
            raise http_error(response, request_id)
        if "text/event-stream" not in response.headers.get("content-type", ""):
            # one odd answer (a proxy's error page, a broken connection) says nothing about the server
            raise StreamUnavailable(for_server=False)
        async for event in EventSource(response).aiter_sse():
            if not event.data:
                continue
            data: dict[str, Any] = json.loads(event.data)
            apply(data)
            if data.get("status") == "COMPLETED":
                return data
    raise httpx.RemoteProtocolError("status stream ended before the job completed")


async def poll_status(
    http: httpx.AsyncClient, status_url: str, interval: float, apply: Apply, request_id: str | None = None
) -> dict[str, Any]:
    """Ask for the status every ``interval`` seconds until COMPLETED."""
    while True:
        response = await http.get(status_url, params={"logs": "1"})
        if response.status_code >= 400:
            raise http_error(response, request_id)
        data: dict[str, Any] = response.json()
        apply(data)
        if data.get("status") == "COMPLETED":
            return data
        await asyncio.sleep(interval)
