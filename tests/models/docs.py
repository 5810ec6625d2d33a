"""Small OpenAPI documents of our own (the snapshot's format), to test the parser on shapes fal writes."""

from __future__ import annotations

from typing import Any


def document(
    endpoint_id: str,
    properties: dict[str, Any],
    *,
    required: tuple[str, ...] = ("prompt",),
    order: list[str] | None = None,
    output: dict[str, Any] | None = None,
    pricing: dict[str, Any] | None = None,
    alias: str | None = None,
    category: str = "image-to-image",
    sibling: str | None = None,
    extra_schemas: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A snapshot document: the input schema behind a $ref from the queue POST, the output from the result GET."""
    schema: dict[str, Any] = {"type": "object", "properties": properties, "required": list(required)}
    if order is not None:
        schema["x-fal-order-properties"] = order
    out = output or {
        "type": "object",
        "properties": {
            "images": {"type": "array", "items": {"$ref": "#/components/schemas/Image"}},
            "seed": {"type": "integer"},
        },
    }
    return {
        "endpoint_id": endpoint_id,
        "alias": alias or endpoint_id.rsplit("/", 1)[-1],
        "title": endpoint_id.title(),
        "category": category,
        "sibling": sibling,
        "openapi": {
            "info": {"x-fal-metadata": {"endpointId": endpoint_id, "category": category}},
            "components": {
                "schemas": {
                    "In": schema,
                    "Out": out,
                    "Image": {"type": "object", "properties": {"url": {"type": "string"}}},
                    **(extra_schemas or {}),
                }
            },
            "paths": {
                f"/{endpoint_id}": {
                    "post": {
                        "requestBody": {
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/In"}}}
                        }
                    }
                },
                f"/{endpoint_id}/requests/{{request_id}}": {
                    "get": {
                        "responses": {
                            "200": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Out"}}}}
                        }
                    }
                },
            },
        },
        "pricing": pricing,
        "provenance": {"schema": "a test", "pricing": "a test" if pricing else "not published"},
    }


PROMPT = {"prompt": {"type": "string", "description": "What to make."}}
