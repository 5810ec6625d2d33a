"""Dev-only: the snapshot files of the non-Kontext models, from fal-js endpoints.ts plus fal's llms.txt pages.

Run from the repository root with the TypeScript file at hand (``git show HEAD:libs/client/src/types/endpoints.ts``
in a clone of fal-ai/fal-js): ``python tools/snapshot/build_models.py /path/to/endpoints.ts``. What each file
owes to which source is written into its ``provenance``; ranges and prices come only from fal's own pages (the
``LLMS`` table below, as read on the date given), never from third-party catalogues.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from openapi import document, write  # noqa: E402
from ts_types import INTEGER_NAMES, Types  # noqa: E402

FALJS = "fal-ai/fal-js libs/client/src/types/endpoints.ts @381105e (2026-08-02)"
READ = "2026-12-07"


def llms(endpoint_id: str) -> str:
    return f"https://fal.ai/models/{endpoint_id}/llms.txt"


# endpoint id: alias, title, category, sibling
MODELS: dict[str, tuple[str, str, str, str | None]] = {
    "fal-ai/flux-2-pro": ("flux2-pro", "FLUX.2 [pro]", "text-to-image", "fal-ai/flux-2-pro/edit"),
    "fal-ai/flux-2-pro/edit": ("flux2-pro-edit", "FLUX.2 [pro] Edit", "image-to-image", "fal-ai/flux-2-pro"),
    "fal-ai/flux-2-flex": ("flux2-flex", "FLUX.2 [flex]", "text-to-image", "fal-ai/flux-2-flex/edit"),
    "fal-ai/flux-2-flex/edit": ("flux2-flex-edit", "FLUX.2 [flex] Edit", "image-to-image", "fal-ai/flux-2-flex"),
    "fal-ai/flux-2": ("flux2-dev", "FLUX.2 [dev]", "text-to-image", "fal-ai/flux-2/edit"),
    "fal-ai/flux-2/edit": ("flux2-dev-edit", "FLUX.2 [dev] Edit", "image-to-image", "fal-ai/flux-2"),
    "fal-ai/flux-2-max": ("flux2-max", "FLUX.2 [max]", "text-to-image", "fal-ai/flux-2-max/edit"),
    "fal-ai/flux-2-max/edit": ("flux2-max-edit", "FLUX.2 [max] Edit", "image-to-image", "fal-ai/flux-2-max"),
    "fal-ai/qwen-image": ("qwen-image", "Qwen-Image", "text-to-image", "fal-ai/qwen-image-edit"),
    "fal-ai/qwen-image-edit": ("qwen-edit", "Qwen-Image-Edit", "image-to-image", "fal-ai/qwen-image"),
    "fal-ai/qwen-image-edit-2509": ("qwen-edit-2509", "Qwen-Image-Edit 2509", "image-to-image", "fal-ai/qwen-image"),
    "fal-ai/qwen-image-edit-2511": ("qwen-edit-2511", "Qwen-Image-Edit 2511", "image-to-image", "fal-ai/qwen-image"),
    "fal-ai/nano-banana": ("nano-banana", "Nano Banana", "text-to-image", "fal-ai/nano-banana/edit"),
    "fal-ai/nano-banana/edit": ("nano-banana-edit", "Nano Banana Edit", "image-to-image", "fal-ai/nano-banana"),
    "fal-ai/nano-banana-pro": ("nano-banana-pro", "Nano Banana Pro", "text-to-image", "fal-ai/nano-banana-pro/edit"),
    "fal-ai/nano-banana-pro/edit": (
        "nano-banana-pro-edit",
        "Nano Banana Pro Edit",
        "image-to-image",
        "fal-ai/nano-banana-pro",
    ),
    "fal-ai/nano-banana-2": ("nano-banana-2", "Nano Banana 2", "text-to-image", "fal-ai/nano-banana-2/edit"),
    "fal-ai/nano-banana-2/edit": ("nano-banana-2-edit", "Nano Banana 2 Edit", "image-to-image", "fal-ai/nano-banana-2"),
    "fal-ai/bytedance/seedream/v4/text-to-image": (
        "seedream4",
        "Seedream 4.0",
        "text-to-image",
        "fal-ai/bytedance/seedream/v4/edit",
    ),
    "fal-ai/bytedance/seedream/v4/edit": (
        "seedream4-edit",
        "Seedream 4.0 Edit",
        "image-to-image",
        "fal-ai/bytedance/seedream/v4/text-to-image",
    ),
    "fal-ai/bytedance/seedream/v4.5/text-to-image": (
        "seedream45",
        "Seedream 4.5",
        "text-to-image",
        "fal-ai/bytedance/seedream/v4.5/edit",
    ),
    "fal-ai/bytedance/seedream/v4.5/edit": (
        "seedream45-edit",
        "Seedream 4.5 Edit",
        "image-to-image",
        "fal-ai/bytedance/seedream/v4.5/text-to-image",
    ),
    "fal-ai/gpt-image-1.5": ("gpt-image-1.5", "GPT-Image 1.5", "text-to-image", "fal-ai/gpt-image-1.5/edit"),
    "fal-ai/gpt-image-1.5/edit": ("gpt-image-1.5-edit", "GPT-Image 1.5 Edit", "image-to-image", "fal-ai/gpt-image-1.5"),
    "fal-ai/reve/fast/edit": ("reve-fast-edit", "Reve Fast Edit", "image-to-image", None),
    "fal-ai/hunyuan-image/v3/instruct/text-to-image": (
        "hunyuan3-instruct",
        "Hunyuan Image 3.0 Instruct",
        "text-to-image",
        "fal-ai/hunyuan-image/v3/instruct/edit",
    ),
    "fal-ai/hunyuan-image/v3/instruct/edit": (
        "hunyuan3-instruct-edit",
        "Hunyuan Image 3.0 Instruct Edit",
        "image-to-image",
        "fal-ai/hunyuan-image/v3/instruct/text-to-image",
    ),
}

# What fal's own llms.txt pages say, as read: price (None: not read on a fal page) and field ranges.
MP_OUT = {"per": "megapixel", "of": "output"}
MP_IO = {"per": "megapixel", "of": "input+output"}
GPT15_TABLE = {
    "field": ["quality", "image_size"],
    "worst_case": {
        "low|1024x1024": 0.009,
        "low|1536x1024": 0.013,
        "low|1024x1536": 0.013,
        "medium|1024x1024": 0.034,
        "medium|1024x1536": 0.051,
        "medium|1536x1024": 0.050,
        "high|1024x1024": 0.133,
        "high|1024x1536": 0.200,
        "high|1536x1024": 0.199,
    },
    "default": 0.200,
}
NANO_BANANA_2_EXTRAS = [  # "If web search is used, an additional $0.015 ...; if high thinking is used, ... $0.002"
    {"when": {"field": "enable_web_search", "equals": True}, "add": 0.015, "per": "image"},
    {"when": {"field": "thinking_level", "equals": "high"}, "add": 0.002, "per": "image"},
]
GPT15_TEXT_TOKENS = {  # "plus $0.005 per 1,000 input text tokens and $0.010 per 1,000 output text tokens"
    "per": "image",
    "input": {"per_1000": 0.005, "fields": ["prompt"]},
    "output": {"per_1000": 0.010, "cap": 128000},
}
LLMS: dict[str, dict[str, Any]] = {
    "fal-ai/flux-2-flex": {
        "price": (0.05, "megapixels", MP_IO),
        "quote": "$0.05 per megapixel on both input and output side, rounded up",
    },
    "fal-ai/flux-2-flex/edit": {
        "price": (0.05, "megapixels", MP_IO),
        "quote": "$0.05 per megapixel on both input and output side, rounded up",
    },
    "fal-ai/flux-2-max/edit": {
        "price": (0.07, "megapixels", {**MP_IO, "first": 0.07, "extra": 0.03}),
        "quote": "The first processed megapixel will cost $0.07. Each additional megapixel will cost 0.03. Input images"
        " counted as processed megapixel.",
    },
    "fal-ai/qwen-image-edit": {
        "price": (0.03, "megapixels", MP_OUT),
        "quote": "$0.03 per megapixels",
        "ranges": {"num_inference_steps": (2, 50), "guidance_scale": (0, 20), "num_images": (1, 4)},
    },
    "fal-ai/nano-banana-2/edit": {
        "price": (
            0.08,
            "images",
            {
                "per": "image",
                "multiplier": {"field": "resolution", "values": {"0.5K": 0.75, "1K": 1, "2K": 1.5, "4K": 2}},
                "extras": NANO_BANANA_2_EXTRAS,
            },
        ),
        "quote": "$0.08 per image. 2K and 4K outputs will be charged at 1.5 times and 2 times the standard rate,"
        " respectively. 0.5K (512px) resolution outputs will be charged at 0.75 times the standard rate. If web"
        " search is used, an additional $0.015 will be charged. If high thinking is used, an additional $0.002",
        "ranges": {"num_images": (1, 4)},
        "extra_not_published": [
            "whether the web-search ($0.015) and high-thinking ($0.002) charges are per image or per request: the"
            " page does not say; the rule's extras take the dearer reading, per image"
        ],
    },
    "fal-ai/gpt-image-1.5": {
        "price": (0.2, "images", {"per": "image", "table": GPT15_TABLE, "text_tokens": GPT15_TEXT_TOKENS}),
        "quote": "low $0.009 (1024x1024) / $0.013 other; medium $0.034 / $0.051 (1024x1536) / $0.050 (1536x1024);"
        " high $0.133 / $0.200 (1024x1536) / $0.199 (1536x1024) per image; plus $0.005 per 1,000 input text tokens"
        " and $0.010 per 1,000 output text tokens",
        "extra_not_published": [
            "the tokenizer: input text tokens are bounded by the prompt's UTF-8 bytes (a BPE token is at least one"
            " byte), not counted",
            "the most output text tokens a request can return: no fal or OpenAI page for this model gives it; the"
            " rule's cap (128,000, the largest max-output-tokens OpenAI publishes for its current models) is ours",
            "whether text tokens are charged per request or per image: the rule takes the dearer reading, per image",
        ],
    },
    "fal-ai/reve/fast/edit": {
        "price": (0.01, "images", {"per": "image"}),
        "quote": "$0.01 per images",
        "ranges": {"num_images": (1, 4)},
    },
    "fal-ai/bytedance/seedream/v4.5/edit": {"ranges": {"num_images": (1, 6), "max_images": (1, 6)}, "docs": True},
    "fal-ai/bytedance/seedream/v4/edit": {
        "price": (0.03, "images", {"per": "image"}),
        "quote": "$0.03 per images",
        "ranges": {"num_images": (1, 6), "max_images": (1, 6)},
        "defaults": {"image_size": {"height": 2048, "width": 2048}},
    },
    "fal-ai/bytedance/seedream/v4.5/text-to-image": {
        "price": (0.04, "images", {"per": "image"}),
        "quote": "Your request will cost $0.04 per image.",
        "price_url": "https://fal.ai/models/fal-ai/bytedance/seedream/v4.5/text-to-image/playground",
    },
    "fal-ai/nano-banana-pro": {"ranges": {"num_images": (1, 4)}, "docs": True},
}
DOCS = "https://fal.ai/docs/model-api-reference/image-generation-api/"
THIRD_PARTY = {
    "fal-ai/flux-2-pro": "third-party catalogues quote $0.03 for the first megapixel + $0.015 per extra one",
    "fal-ai/flux-2": "third-party catalogues quote $0.012 per megapixel",
    "fal-ai/flux-2/edit": "third-party catalogues quote $0.012 per megapixel of input and output",
    "fal-ai/qwen-image-edit-2509": "third-party catalogues quote $0.03 per megapixel",
    "fal-ai/bytedance/seedream/v4.5/edit": "third-party catalogues quote $0.04 per image",
}


def _output_name(types: Types, eid: str) -> tuple[str, str]:
    i, o = types.endpoints[eid]
    return i, o


def build(types: Types, eid: str) -> dict[str, Any]:
    alias, title, category, sibling = MODELS[eid]
    schemas: dict[str, Any] = {}
    in_ts, out_ts = types.endpoints[eid]
    in_name = types.schema(in_ts, schemas)
    out_name = types.schema(out_ts, schemas)
    facts = LLMS.get(eid, {})
    not_published = [
        "ranges (minimum/maximum) of fields: fal-js's types carry none"
        + ("; those fal's page gives are kept: " + ", ".join(facts["ranges"]) if facts.get("ranges") else ""),
        "integer vs number: fal-js's types say number; "
        + ", ".join(sorted(INTEGER_NAMES))
        + " are typed integer as fal's pages show them",
        "x-fal-order-properties: fal-js's types list fields alphabetically; the order here is prompt, the other"
        " required fields, then the rest alphabetically (not fal's)",
    ]
    props = schemas[in_name]["properties"]
    for field, (lo, hi) in facts.get("ranges", {}).items():
        if field in props:
            props[field]["minimum"], props[field]["maximum"] = lo, hi
    for field, default in facts.get("defaults", {}).items():
        props[field]["default"] = default
        not_published.append(f"{field}'s default: not in fal-js's types; {default!r} is from fal's page")
    required = set(schemas[in_name].get("required", []))
    order = sorted(props, key=lambda f: (f != "prompt", f not in required, f))
    schemas[in_name]["x-fal-order-properties"] = order
    schemas[in_name]["properties"] = {f: props[f] for f in order}
    doc = document(eid, title, title + ".", category, in_name, out_name, schemas)
    schema_source = FALJS + f" ({in_ts} / {out_ts})"
    if facts.get("ranges"):
        schema_source += "; ranges from " + (DOCS if facts.get("docs") else llms(eid))
    pricing: dict[str, Any] | None = None
    if "price" in facts:
        price, unit, rule = facts["price"]
        pricing = {"unit_price": price, "unit": unit, "currency": "USD", "rule": rule}
        price_source = f"{facts.get('price_url', llms(eid))}: '{facts['quote']}'"
    else:
        price_source = "not published: no fal page with this endpoint's price could be read"
        if eid in THIRD_PARTY:
            price_source += " (" + THIRD_PARTY[eid] + "; not fal's, so not used)"
        not_published.append("the price")
    not_published += facts.get("extra_not_published", [])
    if eid == "fal-ai/reve/fast/edit":
        not_published.append(
            "not in fal-js @381105e: every field is from fal's llms.txt page; the output schema"
            " (images[]) is the shape of fal's other Reve edit endpoints"
        )
    return {
        "endpoint_id": eid,
        "alias": alias,
        "title": title,
        "category": category,
        "sibling": sibling,
        "openapi": doc,
        "pricing": pricing,
        "provenance": {
            "schema": schema_source,
            "schema_retrieved": READ,
            "pricing": price_source,
            "pricing_retrieved": READ,
            "not_published": not_published,
        },
    }


REVE_FAST_EDIT = """export type ReveFastEditInput = {
  /**
   * The text description of how to edit the provided image.
   */
  prompt: string;
  /**
   * URL of the reference image to edit. Must be publicly accessible or base64 data URI. Supports PNG, JPEG, WebP, AVIF, and HEIF formats.
   */
  image_url: string | Blob | File;
  /**
   * Number of images to generate Default value: `1`
   */
  num_images?: number;
  /**
   * Output format for the generated image. Default value: `"png"`
   */
  output_format?: "png" | "jpeg" | "webp";
  /**
   * If `True`, the media will be returned as a data URI and the output data won't be available in the request history.
   */
  sync_mode?: boolean;
};
"""

if __name__ == "__main__":
    text = Path(sys.argv[1]).read_text(encoding="utf-8")
    types = Types(REVE_FAST_EDIT + text)
    types.endpoints["fal-ai/reve/fast/edit"] = ("ReveFastEditInput", "_21EditOutput")
    for eid in MODELS:
        print(write(build(types, eid)).name)
