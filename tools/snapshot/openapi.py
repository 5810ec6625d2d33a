"""Dev-only: write one snapshot file (kontext_nb/models/snapshot/<id with / as __>.json) in fal's OpenAPI shape.

fal's per-endpoint document (``/api/openapi/queue/openapi.json?endpoint_id=...``) has the queue POST
``/{id}`` (requestBody -> the input schema), ``/{id}/requests/{request_id}`` (GET -> the output schema),
the status and cancel paths, ``components.schemas`` and ``info.x-fal-metadata``. Inputs keep
``x-fal-order-properties`` (the order fal's playground shows them).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SNAPSHOT = Path(__file__).resolve().parents[2] / "kontext_nb" / "models" / "snapshot"

QUEUE_STATUS: dict[str, Any] = {
    "type": "object",
    "title": "QueueStatus",
    "required": ["status", "request_id"],
    "properties": {
        "status": {"type": "string", "enum": ["IN_QUEUE", "IN_PROGRESS", "COMPLETED"]},
        "request_id": {"type": "string", "description": "The request id."},
        "response_url": {"type": "string", "description": "The response url."},
        "status_url": {"type": "string", "description": "The status url."},
        "cancel_url": {"type": "string", "description": "The cancel url."},
        "logs": {"type": "object", "description": "The logs.", "additionalProperties": True},
        "metrics": {"type": "object", "description": "The metrics.", "additionalProperties": True},
        "queue_position": {"type": "integer", "description": "The queue position."},
    },
}


def file_name(endpoint_id: str) -> str:
    return endpoint_id.replace("/", "__") + ".json"


def _request_id() -> dict[str, Any]:
    return {"name": "request_id", "in": "path", "required": True, "schema": {"type": "string"}}


def _json(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}


def document(
    endpoint_id: str,
    title: str,
    description: str,
    category: str,
    input_name: str,
    output_name: str,
    schemas: dict[str, Any],
) -> dict[str, Any]:
    """fal's queue OpenAPI document for one endpoint, from its schemas (input and output named)."""
    rid = "/{request_id}"
    base = f"/{endpoint_id}"
    return {
        "openapi": "3.0.4",
        "info": {
            "title": "Queue OpenAPI for " + endpoint_id,
            "version": "1.0.0",
            "description": description,
            "x-fal-metadata": {
                "endpointId": endpoint_id,
                "category": category,
                "playgroundUrl": f"https://fal.ai/models/{endpoint_id}",
                "documentationUrl": f"https://fal.ai/models/{endpoint_id}/api",
            },
        },
        "components": {
            "securitySchemes": {
                "apiKeyAuth": {"type": "apiKey", "in": "header", "name": "Authorization", "description": "Fal Key"}
            },
            "schemas": {"QueueStatus": QUEUE_STATUS, **schemas},
        },
        "paths": {
            f"{base}/requests{rid}/status": {
                "get": {
                    "parameters": [
                        _request_id(),
                        {
                            "name": "logs",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "number"},
                            "description": "Whether to include logs (`1`) in the response or not (`0`).",
                        },
                    ],
                    "responses": {"200": {"description": "The request status.", "content": _json("QueueStatus")}},
                }
            },
            f"{base}/requests{rid}/cancel": {
                "put": {
                    "parameters": [_request_id()],
                    "responses": {
                        "200": {
                            "description": "The request was cancelled.",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "success": {
                                                "type": "boolean",
                                                "description": "Whether the request was cancelled successfully.",
                                            }
                                        },
                                    }
                                }
                            },
                        }
                    },
                }
            },
            base: {
                "post": {
                    "requestBody": {"required": True, "content": _json(input_name)},
                    "responses": {"200": {"description": "The request status.", "content": _json("QueueStatus")}},
                }
            },
            f"{base}/requests{rid}": {
                "get": {
                    "parameters": [_request_id()],
                    "responses": {"200": {"description": "Result of the request.", "content": _json(output_name)}},
                }
            },
        },
        "servers": [{"url": "https://queue.fal.run"}],
        "security": [{"apiKeyAuth": []}],
    }


def write(entry: dict[str, Any]) -> Path:
    """Write one snapshot file; keys in the contract's order."""
    keys = ("endpoint_id", "alias", "title", "category", "sibling", "openapi", "pricing", "provenance")
    assert set(entry) == set(keys), sorted(set(entry) ^ set(keys))
    path = SNAPSHOT / file_name(entry["endpoint_id"])
    path.write_text(json.dumps({k: entry[k] for k in keys}, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
