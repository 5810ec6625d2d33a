"""The models the sandbox serves: every endpoint of the vendored snapshot, read by the model registry.

A ``Model`` holds what the sandbox needs to act as the endpoint: the registry's reading of its snapshot file
(``spec``: kontext_nb.models.parse, one reader: image inputs, seed, price rule, priced by kontext_nb.models.billed),
its raw input schema for the sandbox's fal-shaped lax validator (schema.py) and its output schema (the shape a
result takes: ``images[]`` or ``image``, ``seed`` or not, ``has_nsfw_concepts``, ...), both found and ``$ref``
resolved by the registry's resolver (kontext_nb.models.schema), and for the Kontext family the endpoints.py spec
the renderer already knows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache, cached_property
from typing import Any

from kontext_nb import endpoints
from kontext_nb import models as registry
from kontext_nb.models import schema as registry_schema
from kontext_nb.models import snapshot


@dataclass(frozen=True)
class Model:
    """One snapshot endpoint, as the sandbox serves it."""

    id: str
    title: str
    alias: str
    category: str
    document: dict[str, Any] = field(repr=False)
    """The snapshot file (endpoint_id, alias, title, category, sibling, openapi, pricing, provenance)."""

    @cached_property
    def spec(self) -> registry.Model:
        """The registry's reading of this snapshot file (kontext_nb.models.parse): its inputs, outputs and price."""
        return registry.parse(self.document)

    @property
    def openapi(self) -> dict[str, Any]:
        return dict(self.document["openapi"])

    @property
    def pricing(self) -> dict[str, Any] | None:
        return self.document.get("pricing")

    @property
    def kontext(self) -> endpoints.Endpoint | None:
        """The endpoints.py spec of a Kontext endpoint (the renderer's sizes and labels), else None."""
        return endpoints.ENDPOINTS.get(self.id)

    @property
    def model(self) -> str:
        """A short name for logs and labels: Kontext's max/pro/dev/lora, else the title."""
        return self.kontext.model if self.kontext else self.title

    @property
    def mode(self) -> str:
        if self.kontext:
            return self.kontext.mode
        return "text-to-image" if self.category == "text-to-image" else "edit"

    @cached_property
    def _io(self) -> tuple[dict[str, Any], dict[str, Any]]:
        inp, out = registry_schema.io_schemas(self.id, self.document["openapi"])
        return inp or {}, out or {}

    @property
    def input_schema(self) -> dict[str, Any]:
        """The queue POST body's schema, ``$ref`` resolved by the registry's resolver (its properties' not)."""
        return dict(self._io[0])

    @property
    def output_schema(self) -> dict[str, Any]:
        """The result GET's schema, resolved likewise."""
        return dict(self._io[1])

    @property
    def image_inputs(self) -> tuple[tuple[str, bool], ...]:
        """(name, is a list) of every image input, in fal's order (the registry's reading: masks and references
        included)."""
        return tuple((n, self.spec.input(n).kind == "images") for n in self.spec.image_inputs)

    @property
    def takes_seed(self) -> bool:
        return self.spec.takes_seed


@cache
def get(endpoint_id: str) -> Model | None:
    """The snapshot endpoint with this id, or None."""
    try:
        doc = snapshot.document(endpoint_id)
    except KeyError:
        return None
    return Model(doc["endpoint_id"], doc["title"], doc["alias"], doc["category"], doc)


def names() -> list[str]:
    return snapshot.names()
