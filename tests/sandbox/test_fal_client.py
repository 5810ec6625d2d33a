"""Unmodified fal_client works against the sandbox once only its httpx client is swapped.

The swapped client's transport sends fal's hosts (queue.fal.run, fal.run, rest.fal.ai,
v3.fal.media) to the sandbox over plain http on loopback, keeping the path; every other
host passes through untouched. Nothing else of fal_client is patched.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from functools import cached_property
from typing import Any

import fal_client
import httpx
import pytest
from asyncstdlib import cached_property as async_cached_property
from fal_client.client import USER_AGENT
from PIL import Image, ImageStat

FAL_HOSTS = {"queue.fal.run", "fal.run", "rest.fal.ai", "v3.fal.media"}
T2I = "fal-ai/flux-pro/kontext/max/text-to-image"
EDIT = "fal-ai/flux-pro/kontext/max"


def _rewrite(request: httpx.Request, target: httpx.URL) -> httpx.Request:
    if request.url.host not in FAL_HOSTS:
        return request
    url = request.url.copy_with(scheme=target.scheme, host=target.host, port=target.port)
    headers = request.headers.copy()
    headers["Host"] = url.netloc.decode("ascii")
    return httpx.Request(request.method, url, headers=headers, stream=request.stream, extensions=request.extensions)


class RewriteTransport(httpx.BaseTransport):
    def __init__(self, target: str) -> None:
        self.target, self.inner = httpx.URL(target), httpx.HTTPTransport(trust_env=False)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self.inner.handle_request(_rewrite(request, self.target))

    def close(self) -> None:
        self.inner.close()


class AsyncRewriteTransport(httpx.AsyncBaseTransport):
    def __init__(self, target: str) -> None:
        self.target, self.inner = httpx.URL(target), httpx.AsyncHTTPTransport(trust_env=False)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.inner.handle_async_request(_rewrite(request, self.target))

    async def aclose(self) -> None:
        await self.inner.aclose()


def sync_client(url: str) -> fal_client.SyncClient:
    class SandboxSyncClient(fal_client.SyncClient):
        @cached_property
        def _client(self) -> httpx.Client:
            return httpx.Client(
                transport=RewriteTransport(url),
                headers={"Authorization": self._auth.header_value, "User-Agent": USER_AGENT},
                timeout=self.default_timeout,
                follow_redirects=True,
            )

    return SandboxSyncClient(key="sandbox-test")


def async_client(url: str) -> fal_client.AsyncClient:
    class SandboxAsyncClient(fal_client.AsyncClient):
        @async_cached_property(asyncio.Lock)
        async def _client(self) -> httpx.AsyncClient:
            auth = await self._auth
            return httpx.AsyncClient(
                transport=AsyncRewriteTransport(url),
                headers={"Authorization": auth.header_value, "User-Agent": USER_AGENT},
                timeout=self.default_timeout,
            )

    return SandboxAsyncClient(key="sandbox-test")


def png(colour: tuple[int, int, int]) -> Image.Image:
    return Image.new("RGB", (80, 60), colour)


def fetch(url: str) -> Image.Image:
    with httpx.Client(trust_env=False) as client:
        response = client.get(url)
    assert response.status_code == 200
    return Image.open(io.BytesIO(response.content))


@pytest.fixture
def client(sandbox: str) -> Iterator[fal_client.SyncClient]:
    """A SyncClient whose httpx client goes to the sandbox; closed after the test."""
    made = sync_client(sandbox)
    yield made
    made._client.close()


def test_sync_submit_iter_events_status_get(client: fal_client.SyncClient, sandbox: str) -> None:
    handle = client.submit(T2I, {"prompt": "a harbour at dusk", "seed": 8, "num_images": 2})
    assert handle.status_url.startswith(sandbox)
    events = list(handle.iter_events(with_logs=True, interval=0.01))
    assert isinstance(events[-1], fal_client.Completed) and events[-1].error is None
    assert any("Generating image 2/2" in log["message"] for log in events[-1].logs or [])
    assert isinstance(handle.status(), fal_client.Completed)
    result = handle.get()
    assert result["seed"] == 8 and len(result["images"]) == 2
    assert fetch(result["images"][0]["url"]).size == (result["images"][0]["width"], result["images"][0]["height"])
    assert isinstance(client.status(T2I, handle.request_id), fal_client.Completed)  # by-id URL built by fal_client
    assert client.result(T2I, handle.request_id) == result


def test_sync_queue_position_cancel_and_cancelled_result(client: fal_client.SyncClient, sandbox_server: Any) -> None:
    sandbox_server.configure(workers=1, inference_time=3600)  # "first" runs until cancelled: "second" stays queued
    first = client.submit(T2I, {"prompt": "first"})
    second = client.submit(T2I, {"prompt": "second"}, priority="low", start_timeout=30)
    status = second.status()
    assert isinstance(status, fal_client.Queued) and status.position == 0
    second.cancel()
    client.cancel(T2I, first.request_id)
    done = second.status()
    assert isinstance(done, fal_client.Completed) and done.error_type == "request_cancelled"
    with pytest.raises(fal_client.FalClientHTTPError) as info:
        first.get(interval=0.01)
    assert info.value.status_code == 400 and info.value.error_type == "request_cancelled"
    info = sandbox_server.request_info(second.request_id)
    assert info["headers_seen"] == {"priority": "low", "store_io": None, "timeout": "30.0"}
    assert (info["priority"], info["store_io"], info["timeout"]) == ("low", True, 30.0)


def test_sync_subscribe_with_logs_and_upload(client: fal_client.SyncClient, sandbox: str) -> None:
    url = client.upload_image(png((30, 200, 30)), format="png", repository="fal")
    assert url.startswith(f"{sandbox}/files/")
    updates: list[Any] = []
    enqueued: list[str] = []
    result = client.subscribe(
        EDIT,
        {"prompt": "greener", "image_url": url, "seed": 1},
        with_logs=True,
        on_enqueue=enqueued.append,
        on_queue_update=updates.append,
        interval=0.01,
    )
    assert enqueued and any(isinstance(u, fal_client.InProgress) and u.logs for u in updates)
    r, g, b = ImageStat.Stat(fetch(result["images"][0]["url"]).convert("RGB")).mean
    assert g > r + 40 and g > b + 40


def test_sync_client_survives_retryable_faults(client: fal_client.SyncClient, sandbox_server: Any) -> None:
    sandbox_server.set_faults(
        [
            {"route": "submit", "sequence": ["503", "drop"]},
            {"route": "status", "sequence": ["429", "drop", "502"]},
            {"route": "result", "kind": "429", "count": 1},
        ]
    )
    result = client.subscribe(T2I, {"prompt": "through the storm", "seed": 2}, interval=0.01)
    assert result["seed"] == 2
    stats = sandbox_server.stats()
    assert stats["submits"] == 1  # the 503 and the dropped submit enqueued nothing; fal_client's retry did
    assert stats["faults_injected"] == {"503": 1, "drop": 2, "429": 2, "502": 1}


def test_sync_client_does_not_retry_app_errors(client: fal_client.SyncClient, sandbox_server: Any) -> None:
    sandbox_server.set_faults([{"route": "submit", "kind": "500", "count": 1}])
    with pytest.raises(fal_client.FalClientHTTPError) as info:
        client.submit(T2I, {"prompt": "x"})
    assert info.value.status_code == 500 and info.value.error_type == "internal_error"
    with pytest.raises(fal_client.FalClientHTTPError) as bad:
        client.submit(T2I, {"prompt": "x", "seed": -3})
    assert bad.value.status_code == 422
    assert sandbox_server.stats()["submits"] == 0


def test_async_client_submit_events_get_cancel_upload(sandbox: str, sandbox_server: Any) -> None:
    async def main() -> None:
        client = async_client(sandbox)
        try:
            await exercise(client)
        finally:
            await (await client._client).aclose()

    async def exercise(client: fal_client.AsyncClient) -> None:
        handle = await client.submit(T2I, {"prompt": "async harbour", "seed": 3})
        events = [e async for e in handle.iter_events(with_logs=True, interval=0.01)]
        assert isinstance(events[-1], fal_client.Completed) and events[-1].logs
        assert isinstance(await handle.status(), fal_client.Completed)
        result = await handle.get()
        assert result["seed"] == 3 and result["images"][0]["url"].startswith(sandbox)

        sandbox_server.configure(workers=1, inference_time=3600)  # the blocker runs until cancelled: "queued" stays
        blocker = await client.submit(T2I, {"prompt": "blocker"})
        queued = await client.submit(T2I, {"prompt": "queued"})
        assert isinstance(await queued.status(), fal_client.Queued)
        await queued.cancel()
        with pytest.raises(fal_client.FalClientHTTPError) as info:
            await queued.get()
        assert info.value.error_type == "request_cancelled"
        await client.cancel(T2I, blocker.request_id)

        # the fal storage repository: fal_client's CDN v3 path opens httpx clients of its own that no
        # transport reaches, so offline it could only fail (how fast depends on the machine's DNS)
        url = await asyncio.wait_for(client.upload_image(png((200, 30, 30)), format="png", repository="fal"), 20)
        assert url.startswith(f"{sandbox}/files/")
        sandbox_server.configure(workers=2, inference_time=0.05)
        edited = await client.subscribe(
            EDIT, {"prompt": "redder", "image_url": url}, with_logs=True, on_queue_update=lambda s: None, interval=0.01
        )
        r, g, b = ImageStat.Stat(fetch(edited["images"][0]["url"]).convert("RGB")).mean
        assert r > g + 40 and r > b + 40

    asyncio.run(main())
    stats = sandbox_server.stats()
    assert stats["submits"] == 4 and stats["completed"] == 2 and stats["cancelled"] == 2
