"""The vendored snapshot of fal's model documents: raw loading only (the registry in kontext_nb.models reads it).

One JSON file per endpoint id (``/`` written as ``__``), shipped as package data; the format is the contract in
the project's notes (endpoint_id, alias, title, category, sibling, openapi, pricing, provenance). Files are read
once, on first use, and cached: warm calls cost a dict lookup.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

__all__ = ["document", "documents", "names"]


@functools.lru_cache(maxsize=1)
def _all() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for entry in resources.files(__name__).iterdir():
        if entry.name.endswith(".json"):
            doc = json.loads(entry.read_text(encoding="utf-8"))
            out[doc["endpoint_id"]] = doc
    return dict(sorted(out.items()))


def names() -> list[str]:
    """The endpoint ids in the snapshot, sorted."""
    return list(_all())


def document(endpoint_id: str) -> dict[str, Any]:
    """One endpoint's snapshot file, parsed (KeyError if the snapshot does not hold it)."""
    return _all()[endpoint_id]


def documents() -> dict[str, dict[str, Any]]:
    """Every snapshot file, by endpoint id (cached: do not modify what you get)."""
    return _all()
