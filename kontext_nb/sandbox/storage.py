"""fal's storage protocol in the sandbox: CDN tokens, uploads (both protocols), and serving files."""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
import re
import secrets
import uuid
from datetime import datetime, timedelta, timezone

from starlette.requests import Request
from starlette.responses import Response

from kontext_nb.images import sniff_upload

from . import wire
from .render import oversized_png
from .state import fal_error, fal_json, sandbox_of, too_large, unprocessable


def _safe_name(name: str | None, content_type: str) -> str:
    """A file name safe in a URL path: basename only, [A-Za-z0-9._-], at most 100 characters."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", (name or "").replace("\\", "/").rsplit("/", 1)[-1]).strip("._")[:100]
    if not base:
        ext = mimetypes.guess_extension(content_type.split(";")[0].strip()) or ".bin"
        base = "upload" + ext
    return base


async def storage_token(request: Request) -> Response:
    sb = sandbox_of(request)
    denied = await sb.gate(request, "upload")
    if denied is not None:
        return denied
    token, expires = secrets.token_urlsafe(24), datetime.now(timezone.utc) + timedelta(hours=1)
    sb.tokens[token] = expires.timestamp()
    return fal_json(
        {"token": token, "token_type": "Bearer", "base_url": sb.base_url, "expires_at": expires.isoformat()}
    )


async def cdn_upload(request: Request) -> Response:
    sb = sandbox_of(request)
    denied = await sb.gate(request, "upload", auth="bearer")
    if denied is not None:
        return denied
    limit = int(sb.config.max_upload_bytes)
    data = await wire.read_body(request, limit)
    if data is None:
        return too_large(limit)
    content_type = sniff_upload(data)  # an image, or a LoRA's .safetensors
    if content_type is None:
        return fal_error(415, wire.not_an_image(request.headers.get("content-type")), "unsupported_media_type")
    name = _safe_name(request.headers.get("x-fal-file-name"), content_type)
    path = f"/files/{hashlib.sha256(data).hexdigest()[:32]}/{name}"
    sb.blobs.put(path, data, content_type)
    return fal_json({"access_url": sb.base_url + path, "content_type": content_type, "file_name": name})


async def storage_initiate(request: Request) -> Response:
    sb = sandbox_of(request)
    denied = await sb.gate(request, "upload")
    if denied is not None:
        return denied
    raw = await wire.read_body(request, 64 * 1024)
    if raw is None:
        return too_large(64 * 1024)
    try:
        body = wire.parse_json(raw or b"{}")
        if not isinstance(body, dict):
            raise ValueError("not an object")
    except ValueError:
        return unprocessable(
            [{"loc": ["body"], "msg": "Expected a JSON object with file_name and content_type", "type": "value_error"}]
        )
    content_type = str(body.get("content_type") or "application/octet-stream")
    name, upload_id = _safe_name(body.get("file_name"), content_type), uuid.uuid4().hex
    sb.uploads[upload_id] = (name, content_type)
    return fal_json(
        {
            "upload_url": f"{sb.base_url}/storage/uploads/{upload_id}",
            "file_url": f"{sb.base_url}/files/{upload_id}/{name}",
        }
    )


async def storage_put(request: Request) -> Response:
    """The signed-URL PUT of the gcs protocol: the upload id is the credential, as with a signed URL."""
    sb, upload_id = sandbox_of(request), request.path_params["upload_id"]
    denied = await sb.gate(request, "upload", auth=None)
    if denied is not None:
        return denied
    if upload_id not in sb.uploads:
        return fal_error(404, "Unknown upload URL", "not_found")
    limit = int(sb.config.max_upload_bytes)
    data = await wire.read_body(request, limit)
    if data is None:
        return too_large(limit)
    name, _ = sb.uploads[upload_id]
    content_type = sniff_upload(data)  # an image, or a LoRA's .safetensors
    if content_type is None:
        return fal_error(415, wire.not_an_image(request.headers.get("content-type")), "unsupported_media_type")
    sb.blobs.put(f"/files/{upload_id}/{name}", data, content_type)
    return fal_json({}, 200)


async def serve_blob(request: Request) -> Response:
    sb = sandbox_of(request)
    denied = await sb.gate(request, "media", auth=None)
    if denied is not None:
        return denied
    blob = sb.blobs.get(request.url.path)
    if blob is None:
        return fal_error(404, "File not found", "not_found")
    data, content_type = blob
    if getattr(request.state, "huge", False):
        data, content_type = await asyncio.to_thread(oversized_png), "image/png"
    if not content_type.startswith("image/") or "svg" in content_type:
        content_type = "application/octet-stream"  # stored only as sniffed images; a guard all the same
    return Response(
        data,
        media_type=content_type,
        headers={"x-fal-request-id": str(uuid.uuid4()), "Cache-Control": "public, max-age=3600", **wire.FILE_HEADERS},
    )
