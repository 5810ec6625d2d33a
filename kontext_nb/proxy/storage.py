"""fal's storage protocol through the proxy: CDN tokens, uploads (both protocols) and media.

A student asking for a CDN token gets their own token back, with the proxy as the CDN's
address; the upload then arrives here with the student's own ``Key`` auth, and the proxy
forwards it with a CDN token of its own, fetched with the real key. The upstream's CDN token
never leaves the proxy. Media is relayed without auth: like fal's, its URLs are capabilities.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from kontext_nb.images import sniff_content_type, sniff_upload
from kontext_nb.sandbox import wire

from . import instances
from .bounds import declared_size
from .classroom import today
from .inputs import header_size
from .limits import Refusal
from .state import Proxy, error, guarded, invalid, proxy_of, too_large
from .upstream import UPLOAD_HEADERS, pick_headers

log = logging.getLogger("kontext_nb.proxy")

SERVED_HEADERS = ("cache-control", "etag", "last-modified")


@guarded
async def storage_token(request: Request) -> Response:
    """A CDN token for the student: their own token again, so the upload comes back here with it."""
    proxy = proxy_of(request)
    student = proxy.authenticate(request, record="storage")
    if isinstance(student, Response):
        return student
    token = request.headers["authorization"].partition(" ")[2].strip()
    expires = datetime.now(timezone.utc) + timedelta(hours=1)
    return JSONResponse(
        {"token": token, "token_type": "Key", "base_url": proxy.base(request), "expires_at": expires.isoformat()}
    )


def _upstream_failure(response: Any) -> Response | None:
    """An upstream storage error as the student should see it: 413 stays, the rest is the proxy's 502."""
    if response.status_code < 400:
        return None
    if response.status_code == 413:
        return error(413, "too large: the upstream storage refused the file")
    try:
        detail = response.json().get("detail")
    except Exception:
        detail = None
    text = f"upstream error: storage answered HTTP {response.status_code}"
    return error(502, text + (f": {str(detail)[:200]}" if detail else ""))


@contextmanager
def _allowance(proxy: Proxy, name: str, request: Request) -> Iterator[Response | Callable[[int], None]]:
    """The upload-bytes-per-day allowance: the declared size counted (checked and counted in one transaction,
    whichever instance) before the body is read, or the refusal; the block calls what it gets with the bytes
    stored upstream, and the count is set to them (given back if it never does)."""
    cap = proxy.config.bounds.upload_bytes_per_day
    day = today()
    size = declared_size(request.headers, proxy.config.max_upload_bytes)
    used = proxy.classroom.reserve_upload(name, day, size, cap)
    if used is not None and cap is not None:
        mb = 1024 * 1024
        refusal = Refusal(
            "upload-bytes-per-day",
            429,
            f"this upload ({size / mb:.1f} MB) would pass your {cap / mb:.0f} MB of uploads per day "
            f"({max(0, cap - used) / mb:.1f} MB left); the count starts again tomorrow",
        )
        yield proxy.refuse(name, refusal, "upload", None)
        return
    stored: list[int] = []
    try:
        yield stored.append
    finally:
        if stored:
            proxy.classroom.add_upload(name, day, stored[0] - size, files=0)
        else:
            proxy.classroom.add_upload(name, day, -size, files=-1)


@guarded
async def cdn_upload(request: Request) -> Response:
    proxy = proxy_of(request)
    student = proxy.authenticate(request, record="upload")
    if isinstance(student, Response):
        return student
    with _allowance(proxy, student.name, request) as counted:
        if isinstance(counted, Response):
            return counted
        async with proxy.held_body(request, student.name, proxy.config.max_upload_bytes, upload=True) as data:
            if isinstance(data, Response):
                return data
            kind = sniff_upload(data)  # an image, or a LoRA's .safetensors
            if kind is None:
                return error(415, wire.not_an_image(request.headers.get("content-type")))
            headers = {**pick_headers(request.headers, UPLOAD_HEADERS), "content-type": kind}
            response = await proxy.upstream.upload(data, headers)
            failed = _upstream_failure(response)
            if failed is not None:
                return failed
            counted(len(data))
            answer = response.json()
            _remember_size(proxy, answer.get("access_url") if isinstance(answer, dict) else None, data)
            log.info("%s uploaded %d KB", student.name, len(data) // 1024)
    return proxy.relay(answer, request)


def _remember_size(proxy: Proxy, url: Any, data: bytes) -> None:
    """An uploaded image's size (from its header), so a per-megapixel job naming it is reserved from it."""
    size = header_size(data)
    if isinstance(url, str) and url and size is not None:
        proxy.classroom.add_upload_size(url, size)


@guarded
async def storage_initiate(request: Request) -> Response:
    proxy = proxy_of(request)
    student = proxy.authenticate(request, record="upload")
    if isinstance(student, Response):
        return student
    raw = await wire.read_body(request, 64 * 1024)
    if raw is None:
        return too_large(64 * 1024)
    try:
        body = wire.parse_json(raw or b"{}")
    except ValueError:
        return invalid(None, "Expected a JSON object with file_name and content_type")
    params = {k: v for k, v in request.query_params.items() if k == "storage_type"}
    response = await proxy.upstream.initiate(params, body)
    failed = _upstream_failure(response)
    if failed is not None:
        return failed
    answer = response.json()
    upload_id = str(answer.get("upload_url", "")).rstrip("/").rsplit("/storage/uploads/", 1)[-1]
    if upload_id and "/" not in upload_id:  # the PUT may reach another instance: the id is kept in the state
        instances.add_signed_upload(proxy.classroom, upload_id, student.name, str(answer.get("file_url", "")))
    return proxy.relay(answer, request)


@guarded
async def storage_put(request: Request) -> Response:
    """The signed-URL PUT when the upstream's upload URLs point at itself (the sandbox); the id is the credential.

    Only ids this proxy handed out are read at all: any other PUT is refused before its body.
    """
    proxy = proxy_of(request)
    issued = instances.signed_upload(proxy.classroom, request.path_params["upload_id"])
    if issued is None:
        return error(404, "Unknown upload URL")
    name, file_url = issued
    with _allowance(proxy, name, request) as counted:
        if isinstance(counted, Response):
            return counted
        async with proxy.held_body(request, name, proxy.config.max_upload_bytes, upload=True) as data:
            if isinstance(data, Response):
                return data
            kind = sniff_upload(data)  # an image, or a LoRA's .safetensors
            if kind is None:
                return error(415, wire.not_an_image(request.headers.get("content-type")))
            instances.drop_signed_upload(proxy.classroom, request.path_params["upload_id"])
            response = await proxy.upstream.put_signed(request.url.path, data, {"content-type": kind})
            failed = _upstream_failure(response)
            if failed is None:
                counted(len(data))
                _remember_size(proxy, file_url, data)
    return failed or JSONResponse({}, 200)


@guarded
async def media(request: Request) -> Response:
    """Images and uploads, relayed without auth: like fal's media URLs, the path is the capability."""
    proxy = proxy_of(request)
    path = request.url.path
    if ".." in path.split("/"):
        return error(404, "File not found")
    response = await proxy.upstream.media(path)
    if response.status_code == 404:
        return error(404, "File not found")
    if response.status_code >= 400:
        return error(502, f"upstream error: media answered HTTP {response.status_code}")
    kind = sniff_content_type(response.content)  # served only as the image its bytes are, never as a page
    headers = {**pick_headers(response.headers, SERVED_HEADERS), **wire.FILE_HEADERS}
    return Response(response.content, 200, headers=headers, media_type=kind or "application/octet-stream")
