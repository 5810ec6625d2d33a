"""fal's storage protocol in the sandbox: CDN tokens, uploads (both protocols), and serving files."""

from __future__ import annotations

import hashlib
import json
import mimetypes
import re
import secrets
import uuid
from datetime import datetime, timedelta, timezone

from starlette.requests import Request
from starlette.responses import Response

from .app import _error, _json, _sb, _too_large, _unprocessable, read_body


def _safe_name(name: str | None, content_type: str) -> str:
    """A file name safe in a URL path: basename only, [A-Za-z0-9._-], at most 100 characters."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", (name or "").replace("\\", "/").rsplit("/", 1)[-1]).strip("._")[:100]
    if not base:
        ext = mimetypes.guess_extension(content_type.split(";")[0].strip()) or ".bin"
        base = "upload" + ext
    return base


async def storage_token(request: Request) -> Response:
    sb = _sb(request)
    denied = await sb.gate(request, "upload")
    if denied is not None:
        return denied
    token, expires = secrets.token_urlsafe(24), datetime.now(timezone.utc) + timedelta(hours=1)
    sb.tokens[token] = expires.timestamp()
    return _json({"token": token, "token_type": "Bearer", "base_url": sb.base_url, "expires_at": expires.isoformat()})


async def cdn_upload(request: Request) -> Response:
    sb = _sb(request)
    denied = await sb.gate(request, "upload", auth="bearer")
    if denied is not None:
        return denied
    limit = int(sb.config.max_upload_bytes)
    data = await read_body(request, limit)
    if data is None:
        return _too_large(limit)
    content_type = request.headers.get("content-type", "application/octet-stream")
    name = _safe_name(request.headers.get("x-fal-file-name"), content_type)
    path = f"/files/{hashlib.sha256(data).hexdigest()[:32]}/{name}"
    sb.blobs.put(path, data, content_type)
    return _json({"access_url": sb.base_url + path, "content_type": content_type, "file_name": name})


async def storage_initiate(request: Request) -> Response:
    sb = _sb(request)
    denied = await sb.gate(request, "upload")
    if denied is not None:
        return denied
    try:
        body = json.loads(await request.body() or b"{}")
        if not isinstance(body, dict):
            raise ValueError("not an object")
    except ValueError:
        return _unprocessable(
            [{"loc": ["body"], "msg": "Expected a JSON object with file_name and content_type", "type": "value_error"}]
        )
    content_type = str(body.get("content_type") or "application/octet-stream")
    name, upload_id = _safe_name(body.get("file_name"), content_type), uuid.uuid4().hex
    sb.uploads[upload_id] = (name, content_type)
    return _json(
        {
            "upload_url": f"{sb.base_url}/storage/uploads/{upload_id}",
            "file_url": f"{sb.base_url}/files/{upload_id}/{name}",
        }
    )


async def storage_put(request: Request) -> Response:
    """The signed-URL PUT of the gcs protocol: the upload id is the credential, as with a signed URL."""
    sb, upload_id = _sb(request), request.path_params["upload_id"]
    denied = await sb.gate(request, "upload", auth=None)
    if denied is not None:
        return denied
    if upload_id not in sb.uploads:
        return _error(404, "Unknown upload URL", "not_found")
    limit = int(sb.config.max_upload_bytes)
    data = await read_body(request, limit)
    if data is None:
        return _too_large(limit)
    name, content_type = sb.uploads[upload_id]
    sb.blobs.put(f"/files/{upload_id}/{name}", data, request.headers.get("content-type") or content_type)
    return _json({}, 200)


async def serve_blob(request: Request) -> Response:
    sb = _sb(request)
    denied = await sb.gate(request, "media", auth=None)
    if denied is not None:
        return denied
    blob = sb.blobs.get(request.url.path)
    if blob is None:
        return _error(404, "File not found", "not_found")
    data, content_type = blob
    return Response(
        data,
        media_type=content_type,
        headers={"x-fal-request-id": str(uuid.uuid4()), "Cache-Control": "public, max-age=3600"},
    )


# ---- control API (no auth, no faults) --------------------------------------------------
