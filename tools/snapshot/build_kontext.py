"""Dev-only, run once: the Kontext family's snapshot files, from what kontext_nb/endpoints.py holds.

endpoints.py's facts came from the project's seed pages ([max], [pro]) and fal-js endpoints.ts @381105e plus
fal's llms.txt ([dev], LoRA); its NOT PUBLISHED notes become ``provenance.not_published``. Run from the
repository root: ``python tools/snapshot/build_kontext.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from openapi import document, write  # noqa: E402

from kontext_nb import endpoints as E  # noqa: E402

RETRIEVED = "2026-12-07"
SEEDS = {
    "max-t2i": "fal's API page for fal-ai/flux-pro/kontext/max/text-to-image (the project's seed page 000)",
    "max": "fal's API page for fal-ai/flux-pro/kontext/max (the project's seed page 003)",
}
PRO_LLMS = "https://fal.ai/models/fal-ai/flux-pro/kontext/llms.txt"


def _title(name: str) -> str:
    return name.replace("_", " ").title()


def prop(f: E.Field) -> dict[str, Any]:
    out: dict[str, Any] = {"title": _title(f.name)}
    if f.kind in ("string", "image"):
        out["type"] = "string"
    elif f.kind == "integer":
        out["type"] = "integer"
    elif f.kind == "float":
        out["type"] = "number"
    elif f.kind == "boolean":
        out["type"] = "boolean"
    elif f.kind == "enum":
        out.update(type="string", enum=list(f.choices))
    elif f.kind == "images":
        out.update(type="array", items={"type": "string"})
    elif f.kind == "loras":
        out.update(type="array", items={"$ref": "#/components/schemas/LoraWeight"})
    elif f.kind == "size":
        out["anyOf"] = [{"$ref": "#/components/schemas/ImageSize"}, {"type": "string", "enum": list(f.choices)}]
    out["description"] = f.description
    if f.minimum is not None:
        out["minimum"] = f.minimum
    if f.maximum is not None:
        out["maximum"] = f.maximum
    if f.min_items is not None:
        out["minItems"] = f.min_items
    if f.max_items is not None:
        out["maxItems"] = f.max_items
    if f.has_default:
        out["default"] = list(f.default) if isinstance(f.default, tuple) else f.default
    if f.kind in ("integer",) and isinstance(out.get("maximum"), float) and out["maximum"].is_integer():
        out["maximum"] = int(out["maximum"])
    return out


def input_schema(ep: E.Endpoint, name: str) -> dict[str, Any]:
    return {
        "title": name,
        "type": "object",
        "properties": {f.name: prop(f) for f in ep.inputs},
        "x-fal-order-properties": [f.name for f in ep.inputs],
        "required": [f.name for f in ep.inputs if f.required],
    }


def _image(required: tuple[str, ...], title: str) -> dict[str, Any]:
    props = {
        "url": {"type": "string", "title": "Url", "description": "The URL where the file can be downloaded from."},
        "content_type": {"type": "string", "title": "Content Type", "description": "The mime type of the file."},
        "file_name": {
            "type": "string",
            "title": "File Name",
            "description": "The name of the file. It will be auto-generated if not provided.",
        },
        "file_size": {"type": "integer", "title": "File Size", "description": "The size of the file in bytes."},
        "width": {"type": "integer", "title": "Width", "description": "The width of the image in pixels."},
        "height": {"type": "integer", "title": "Height", "description": "The height of the image in pixels."},
    }
    if title == "registry__image__fast_sdxl__models__Image":
        props = {k: props[k] for k in ("url", "width", "height", "content_type")}
        props["content_type"]["default"] = "image/jpeg"
    return {
        "title": title,
        "type": "object",
        "properties": props,
        "required": list(required),
        "x-fal-order-properties": list(props),
    }


def output_schema(name: str, image_ref: str, images_description: str) -> dict[str, Any]:
    return {
        "title": name,
        "type": "object",
        "properties": {
            "images": {
                "title": "Images",
                "type": "array",
                "description": images_description,
                "items": {"$ref": f"#/components/schemas/{image_ref}"},
            },
            "timings": {"title": "Timings", "type": "object", "additionalProperties": {"type": "number"}},
            "seed": {
                "title": "Seed",
                "type": "integer",
                "description": (
                    "Seed of the generated Image. It will be the same value of the one passed in the input or the "
                    "randomly generated that was used in case none was passed."
                ),
            },
            "has_nsfw_concepts": {
                "title": "Has Nsfw Concepts",
                "type": "array",
                "items": {"type": "boolean"},
                "description": "Whether the generated images contain NSFW concepts.",
            },
            "prompt": {"title": "Prompt", "type": "string", "description": "The prompt used for generating the image."},
        },
        "x-fal-order-properties": ["images", "timings", "seed", "has_nsfw_concepts", "prompt"],
        "required": ["images", "timings", "seed", "has_nsfw_concepts", "prompt"],
    }


def _pascal(endpoint_id: str) -> str:
    parts = endpoint_id.replace("fal-ai/", "").replace("-", "/").replace(".", "/").split("/")
    return "".join(p[:1].upper() + p[1:] for p in parts if p)


ALIASES = {
    "fal-ai/flux-pro/kontext/max": "max",
    "fal-ai/flux-pro/kontext": "pro",
    "fal-ai/flux-kontext/dev": "dev",
    "fal-ai/flux-kontext-lora": "lora",
    "fal-ai/flux-pro/kontext/max/text-to-image": "max-t2i",
    "fal-ai/flux-pro/kontext/text-to-image": "pro-t2i",
    "fal-ai/flux-pro/kontext/max/multi": "max-multi",
    "fal-ai/flux-pro/kontext/multi": "pro-multi",
    "fal-ai/flux-kontext-lora/text-to-image": "lora-t2i",
    "fal-ai/flux-kontext-lora/inpaint": "lora-inpaint",
}
SIBLINGS = {
    "fal-ai/flux-pro/kontext/max": "fal-ai/flux-pro/kontext/max/text-to-image",
    "fal-ai/flux-pro/kontext/max/multi": "fal-ai/flux-pro/kontext/max/text-to-image",
    "fal-ai/flux-pro/kontext/max/text-to-image": "fal-ai/flux-pro/kontext/max",
    "fal-ai/flux-pro/kontext": "fal-ai/flux-pro/kontext/text-to-image",
    "fal-ai/flux-pro/kontext/multi": "fal-ai/flux-pro/kontext/text-to-image",
    "fal-ai/flux-pro/kontext/text-to-image": "fal-ai/flux-pro/kontext",
    "fal-ai/flux-kontext/dev": None,
    "fal-ai/flux-kontext-lora": "fal-ai/flux-kontext-lora/text-to-image",
    "fal-ai/flux-kontext-lora/inpaint": "fal-ai/flux-kontext-lora/text-to-image",
    "fal-ai/flux-kontext-lora/text-to-image": "fal-ai/flux-kontext-lora",
}
FAMILY_NOT_PUBLISHED = [
    "seed range: fal gives none; the schema keeps kontext_nb's 0 to 2**63-1",
    "a minimum prompt length: fal gives none; the sandbox refuses an empty prompt as pydantic's string_too_short",
]
DEV_NOT_PUBLISHED = [
    "ranges of num_inference_steps (10-50) and guidance_scale (0-20) for fal-ai/flux-kontext/dev: taken from its"
    " LoRA sibling's llms.txt (the same model)",
    "range of num_images: 1-4 as in the rest of the Kontext family",
    "the pixel sizes of the image_size presets and fal's megapixel rounding rule (kontext_nb counts 2**20 px and"
    " rounds each image up)",
]


def pricing(ep: E.Endpoint) -> tuple[dict[str, Any] | None, str]:
    if ep.model == "pro":
        return {"unit_price": 0.04, "unit": "images", "currency": "USD", "rule": {"per": "image"}}, (
            PRO_LLMS + " ('$0.04 per images'), read 2026-12-07"
        )
    if ep.model == "max":
        return {"unit_price": 0.08, "unit": "images", "currency": "USD", "rule": {"per": "image"}}, (
            "kontext_nb/endpoints.py PRICE_PER_IMAGE['max'] (the project's figure since 2026-11-21, its source not"
            " recorded there); fal's own page for [max] could not be read here; a third-party catalogue"
            " (lumenfall.ai, citing https://fal.ai/models/fal-ai/flux-pro/kontext/max/text-to-image) quotes the"
            " same $0.08 per image"
        )
    if ep.model == "lora":
        return {
            "unit_price": 0.035,
            "unit": "megapixels",
            "currency": "USD",
            "rule": {"per": "megapixel", "of": "output"},
        }, ("https://fal.ai/models/fal-ai/flux-kontext-lora/llms.txt ('$0.035 per megapixels'), read 2026-11-30")
    return None, (
        "not published: fal's model page for fal-ai/flux-kontext/dev was not available; the $0.025 per"
        " megapixel endpoints.py used is a third-party catalogue figure, not fal's"
    )


def build(ep: E.Endpoint) -> dict[str, Any]:
    base = _pascal(ep.id)
    schemas: dict[str, Any] = {}
    in_name, out_name = base + "Input", base + "Output"
    schemas[in_name] = input_schema(ep, in_name)
    if ep.model in ("max", "pro"):
        if ep.mode == "edit":
            image_ref, req = "fal__toolkit__image__image__Image", ("url",)
        else:
            image_ref, req = "registry__image__fast_sdxl__models__Image", ("url", "width", "height")
        desc = "The generated image files info."
    else:
        image_ref, req, desc = "Image", ("url",), "The URLs of the generated images."
    schemas[out_name] = output_schema(out_name, image_ref, desc)
    schemas[image_ref] = _image(req, image_ref)
    names = {f.name for f in ep.inputs}
    if "image_size" in names:
        side = {"type": "integer", "exclusiveMinimum": 0, "maximum": E.MAX_SIDE, "default": 512}
        schemas["ImageSize"] = {
            "title": "ImageSize",
            "type": "object",
            "x-fal-order-properties": ["width", "height"],
            "properties": {
                "width": {**side, "title": "Width", "description": "The width of the generated image."},
                "height": {**side, "title": "Height", "description": "The height of the generated image."},
            },
        }
    if "loras" in names:
        schemas["LoraWeight"] = {
            "title": "LoraWeight",
            "type": "object",
            "required": ["path"],
            "x-fal-order-properties": ["path", "scale", "force"],
            "properties": {
                "path": {
                    "type": "string",
                    "title": "Path",
                    "description": "URL or path to a LoRA safetensors file. Or HF model name that resolves to safetensors weights.",
                },
                "scale": {
                    "type": "number",
                    "title": "Scale",
                    "minimum": E.LORA_SCALE[0],
                    "maximum": E.LORA_SCALE[1],
                    "default": 1,
                    "description": "The scale of the LoRA weight, applied before merging it with the base model.",
                },
                "force": {
                    "type": "boolean",
                    "title": "Force",
                    "description": "If set to true, the embedding will be forced to be used.",
                },
            },
        }
    category = "text-to-image" if ep.mode == "text-to-image" else "image-to-image"
    doc = document(ep.id, ep.title, ep.title + ".", category, in_name, out_name, schemas)
    price, price_source = pricing(ep)
    not_published = list(FAMILY_NOT_PUBLISHED)
    if ep.model in ("max", "pro"):
        schema_source = SEEDS["max-t2i"] + " and " + SEEDS["max"] + ", as kontext_nb/endpoints.py holds them"
        if ep.mode == "multi":
            not_published.append("bounds of image_urls (2-4): kontext_nb's reading of fal's page")
        if ep.model == "pro":
            schema_source += "; " + PRO_LLMS
    else:
        schema_source = E.DEV_SOURCE + " (" + ep.source.rsplit("(", 1)[-1] + " and fal's llms.txt for"
        schema_source += " fal-ai/flux-kontext-lora (2026-11-30), as kontext_nb/endpoints.py holds them"
        not_published += DEV_NOT_PUBLISHED
        if "loras" in names:
            not_published.append("range of a LoRA's scale: fal gives a default (1) and no range; kontext_nb allows 0-4")
        if "image_size" in names:
            not_published.append("custom image_size sides: 1-14142, the largest input side fal names")
        if "strength" in names:
            not_published.append("range of strength (0.01-1): the range fal publishes for fal-ai/flux-lora/inpainting")
    if price is None:
        not_published.append("the price of fal-ai/flux-kontext/dev")
    return {
        "endpoint_id": ep.id,
        "alias": ALIASES[ep.id],
        "title": ep.title,
        "category": category,
        "sibling": SIBLINGS[ep.id],
        "openapi": doc,
        "pricing": price,
        "provenance": {
            "schema": schema_source,
            "schema_retrieved": RETRIEVED,
            "pricing": price_source,
            "pricing_retrieved": RETRIEVED,
            "not_published": not_published,
        },
    }


if __name__ == "__main__":
    for ep in E.ENDPOINTS.values():
        print(write(build(ep)).name)
