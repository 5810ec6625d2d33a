"""Any fal endpoint, live: its OpenAPI document and price fetched with a key, cached in the runs folder for a day.

The models layer sends nothing itself (it sits below fal/): a ``Fetch`` given by the caller does the two requests
on the engine's client, with its key, routing (a sandbox stands in for fal) and retries. The cache file holds the
snapshot's format (the notes' contract) and never the key; when fal cannot be reached, a cached copy of any age is
used, and without one the error names the endpoint and what is allowed.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..errors import KontextError, ValidationError
from .catalog import Registry
from .schema import Model, parse

MAX_AGE = 24 * 3600.0
"""A cached document older than this is fetched again (kept, and used, when fal cannot be reached)."""
ENDPOINT_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]*(/[a-z0-9][a-z0-9_.-]*)+$", re.I)
FOLDER = "models"
"""The cache's folder inside the runs folder."""

FetchOpenAPI = Callable[[str], Mapping[str, Any]]
FetchPrice = Callable[[str], Mapping[str, Any] | None]


def check_endpoint_id(endpoint_id: str) -> str:
    """An endpoint id as fal writes them ('owner/app[/path]'); ValidationError otherwise (no '..', no spaces)."""
    eid = str(endpoint_id).strip().strip("/")
    if not ENDPOINT_ID.match(eid) or ".." in eid:
        raise ValidationError(
            f"model={endpoint_id!r} is not a fal endpoint id: give 'owner/app[/path]' ('fal-ai/flux-2-flex/edit')",
            field="model",
        )
    return eid


def cache_path(folder: Path, endpoint_id: str) -> Path:
    return Path(folder) / FOLDER / (check_endpoint_id(endpoint_id).replace("/", "__") + ".json")


def load(
    registry: Registry,
    endpoint_id: str,
    runs_folder: Path,
    openapi: FetchOpenAPI | None,
    price: FetchPrice | None,
    *,
    now: Callable[[], float] = time.time,
) -> Model:
    """The model of ``endpoint_id``: from the registry when it holds it, else from the cache (younger than a day),
    else fetched (``openapi``/``price`` None: no key, so nothing can be fetched). Added to ``registry``."""
    known = registry.find(endpoint_id)
    if known is not None:
        return known
    eid = check_endpoint_id(endpoint_id)
    path = cache_path(runs_folder, eid)
    cached = _read(path)
    fresh = cached is not None and now() - float(cached.get("fetched_at") or 0) < MAX_AGE
    if not fresh and openapi is not None:
        try:
            cached = _fetch(eid, openapi, price, now())
            _write(path, cached)
        except KontextError as exc:
            if cached is None:
                raise KontextError(
                    f"could not load {eid} from fal ({_first_line(exc)}): it is not in kontext_nb's snapshot, so "
                    "use one that is (kx.models() lists them) or try again online"
                ) from None
    if cached is None:
        raise ValidationError(
            f"{eid} is not in kontext_nb's snapshot and there is no fal key to load it with: set FAL_KEY, or use a "
            "model of the snapshot (kx.models() lists them)",
            field="model",
        )
    return registry.add(parse(cached, live=True))


def _fetch(eid: str, openapi: FetchOpenAPI, price: FetchPrice | None, when: float) -> dict[str, Any]:
    api = dict(openapi(eid))
    meta = (api.get("info") or {}).get("x-fal-metadata") or {}
    day = time.strftime("%Y-%m-%d", time.gmtime(when))
    found = dict(price(eid) or {}) if price is not None else {}
    pricing = {k: found[k] for k in ("unit_price", "unit", "currency") if k in found} if "unit_price" in found else None
    doc = {
        "endpoint_id": eid,
        "alias": eid,
        "title": str((api.get("info") or {}).get("title") or eid).removeprefix("Queue OpenAPI for "),
        "category": meta.get("category") or "",
        "sibling": None,
        "openapi": api,
        "pricing": pricing,
        "provenance": {
            "schema": "fal OpenAPI queue document (fetched live)",
            "schema_retrieved": day,
            "pricing": "fal's pricing API (fetched live)" if pricing else "not published",
            "pricing_retrieved": day,
            "not_published": [] if pricing else ["price"],
        },
        "fetched_at": when,
    }
    parse(doc, live=True)  # refuse a document without an input schema before caching it
    return doc


def _read(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and "openapi" in doc and "endpoint_id" in doc else None


def _write(path: Path, doc: Mapping[str, Any]) -> None:
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]
