"""The models the sandbox serves: every endpoint of the vendored snapshot, read from its OpenAPI document.

A ``Model`` holds what the sandbox needs to act as the endpoint: its input schema (through one validator,
schema.py), its output schema (the shape a result takes: ``images[]`` or ``image``, ``seed`` or not,
``has_nsfw_concepts``, ...), its image inputs (``image_url``, ``image_urls``, masks), its price rule, and for the
Kontext family the endpoints.py spec the renderer already knows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache, cached_property
from typing import Any

from kontext_nb import endpoints
from kontext_nb import models as registry
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

    @property
    def components(self) -> dict[str, Any]:
        return dict(self.document["openapi"]["components"]["schemas"])

    def _schema_of(self, path: str, method: str, key: str) -> dict[str, Any]:
        op = self.document["openapi"]["paths"][path][method]
        node = op["requestBody"] if key == "request" else op["responses"]["200"]
        ref = str(node["content"]["application/json"]["schema"]["$ref"])
        return dict(self.components[ref.rsplit("/", 1)[-1]])

    @property
    def input_schema(self) -> dict[str, Any]:
        return self._schema_of("/" + self.id, "post", "request")

    @property
    def output_schema(self) -> dict[str, Any]:
        return self._schema_of(f"/{self.id}/requests/{{request_id}}", "get", "response")

    @property
    def image_inputs(self) -> tuple[tuple[str, bool], ...]:
        """(name, is a list) of every image input, in fal's order: a string or list of strings named like one."""
        schema = self.input_schema
        props: dict[str, Any] = schema.get("properties") or {}
        order = [p for p in schema.get("x-fal-order-properties") or () if p in props]
        order += [p for p in props if p not in order]
        names = [n for n in order if n.endswith(("image_url", "image_urls", "mask_url"))]
        return tuple((n, props[n].get("type") == "array") for n in names)

    @property
    def takes_seed(self) -> bool:
        return "seed" in (self.input_schema.get("properties") or {})


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
