"""fal's model catalogue in the sandbox, offline, from the vendored snapshot (kontext_nb/models/snapshot).

- ``GET /api/openapi/queue/openapi.json?endpoint_id=<id>`` -> the endpoint's OpenAPI 3 document, as fal's model
  pages link it (404 for an endpoint the snapshot does not hold);
- ``GET /v1/models`` (fal's Model Search, docs.fal.ai/platform-apis/v1/models): list mode (no parameters), find
  mode (``endpoint_id``, repeated or comma-separated, 1-50), search mode (``q`` over id, title and category,
  ``category``, ``status``); ``expand=openapi-3.0`` puts each document in ``openapi``. Answer: ``{models:
  [{endpoint_id, metadata: {display_name, category, description, status, tags, updated_at, is_favorited,
  thumbnail_url, model_url, date, highlighted, pinned}, openapi?}], next_cursor, has_more}``. fal makes the key
  optional here, so does the sandbox. Dates are the snapshot's retrieval dates (fal's own are not in it).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from . import models, platform_routes
from .state import fal_error, sandbox_of


async def openapi_document(request: Request) -> Response:
    denied = await sandbox_of(request).gate(request, "platform", auth=None)
    if denied is not None:
        return denied
    endpoint_id = (request.query_params.get("endpoint_id") or "").strip()
    if not endpoint_id:
        return fal_error(400, "endpoint_id is required", "bad_request")
    model = models.get(endpoint_id)
    if model is None:
        return fal_error(404, f"Endpoint {endpoint_id!r} not found", "not_found")
    return JSONResponse(model.openapi)


def _entry(model: models.Model, base_url: str, expand: set[str]) -> dict[str, Any]:
    info = model.document["openapi"].get("info") or {}
    when = str(model.document["provenance"].get("schema_retrieved") or "")
    entry: dict[str, Any] = {
        "endpoint_id": model.id,
        "metadata": {
            "display_name": model.title,
            "category": model.category,
            "description": info.get("description", ""),
            "status": "active",
            "tags": [],
            "updated_at": f"{when}T00:00:00Z" if when else None,
            "is_favorited": False,
            "thumbnail_url": None,
            "model_url": f"{base_url}/{model.id}",
            "date": f"{when}T00:00:00Z" if when else None,
            "highlighted": False,
            "pinned": False,
        },
    }
    if "openapi-3.0" in expand:
        entry["openapi"] = model.openapi
    return entry


async def models_api(request: Request) -> Response:
    sb = sandbox_of(request)
    denied = await sb.gate(request, "platform", auth=None)
    if denied is not None:
        return denied
    q = request.query_params
    try:
        wanted = platform_routes.endpoint_ids(request) if q.getlist("endpoint_id") else None
        page, limit = platform_routes.page_of(request, default=50, most=100)
    except platform_routes.BadQuery as exc:
        return fal_error(400, str(exc), "bad_request")
    text, category, status = (q.get("q") or "").lower(), q.get("category"), q.get("status")
    found = []
    for endpoint_id in wanted if wanted is not None else models.names():
        model = models.get(endpoint_id)
        if model is None or (category and model.category != category) or (status and status != "active"):
            continue
        if text and text not in f"{model.id} {model.title} {model.category} {model.alias}".lower():
            continue
        found.append(_entry(model, sb.base_url, platform_routes.expand_of(request)))
    shown, cursor, more = platform_routes.paged(found, page, limit)
    return JSONResponse({"models": shown, "next_cursor": cursor, "has_more": more})
