"""Prices as upper bounds: for every rule kind, the bound before sending is never below what the sandbox bills.

The bill is the sandbox's own (kontext_nb.sandbox.billing.bill_for, for the sizes its renderer makes: render.py),
for any valid request hypothesis draws from the model's schema, with source sizes known or not.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kontext_nb import endpoints, models
from kontext_nb.errors import ValidationError
from kontext_nb.models import Model, Registry, Unpriced, bound
from kontext_nb.sandbox import billing, render

from .docs import PROMPT, document

PRICED = [m for m in models.registry().all() if m.pricing is not None]
RULES = {
    "image": {"per": "image"},
    "megapixel of output": {"per": "megapixel", "of": "output"},
    "megapixel of input+output": {"per": "megapixel", "of": "input+output"},
    "first and extra megapixels": {"per": "megapixel", "of": "input+output", "first": 0.07, "extra": 0.03},
    "resolution multiplier": {"per": "image", "multiplier": {"field": "resolution", "values": {"1K": 1, "4K": 2}}},
    "worst-case table": {"per": "image", "table": {"field": ["quality"], "worst_case": {"low": 0.01}, "default": 0.2}},
}
PROPS = 40


ADDITIONS = ("extras", "text_tokens")
"""Parts a rule of any kind may carry on top: fal's extra charges for options on, text tokens."""


def _kind(rule: Mapping[str, Any]) -> str:
    for name, r in RULES.items():
        if (
            set(r) == set(rule) - set(ADDITIONS)
            and r["per"] == rule["per"]
            and r.get("of") == rule.get("of", r.get("of"))
        ):
            return name
    return "other"


def test_the_snapshot_has_every_rule_kind() -> None:
    kinds = {_kind(m.pricing.rule) for m in PRICED if m.pricing is not None}
    assert set(RULES) <= kinds, kinds
    assert {a for m in PRICED if m.pricing is not None for a in ADDITIONS if a in m.pricing.rule} == set(ADDITIONS)


SIDE = st.integers(16, 5000)
SIZE = st.tuples(SIDE, SIDE)
PROMPTS = st.text(min_size=1, max_size=60) | st.just("a fox")
"""Any text: its tokens are bounded by its UTF-8 bytes (emoji and accents are several bytes each)."""


@st.composite
def request(draw: st.DrawFn, model: Model) -> tuple[dict[str, Any], list[tuple[int, int]]]:
    """Valid arguments for ``model`` from its schema, and the size of every image they send."""
    args: dict[str, Any] = {"prompt": draw(PROMPTS)}
    sizes: list[tuple[int, int]] = []
    for f in model.inputs:
        if f.name == "prompt" or (not f.required and draw(st.booleans())):
            continue
        if f.kind == "boolean":  # options fal may charge extra for (web search)
            args[f.name] = draw(st.booleans())
        elif f.kind == "image":
            args[f.name] = "https://example.com/a.png"
            sizes.append(draw(SIZE))
        elif f.kind == "images":
            k = draw(st.integers(f.min_items or 1, min(f.max_items or 3, 3)))
            args[f.name] = ["https://example.com/a.png"] * k
            sizes += [draw(SIZE) for _ in range(k)]
        elif f.kind in ("enum",) or (f.kind == "size" and f.enum and draw(st.booleans())):
            args[f.name] = draw(st.sampled_from(f.enum))
        elif f.kind == "size":
            args[f.name] = {"width": draw(SIDE), "height": draw(SIDE)}
        elif f.name in ("num_images", "max_images"):
            args[f.name] = draw(st.integers(int(f.minimum or 1), int(min(f.maximum or 4, 4))))
    return args, sizes


def _billed(model: Model, args: Mapping[str, Any], sizes: list[tuple[int, int]], returned: int) -> float:
    """What the sandbox bills when ``returned`` images come back at the size its renderer makes for them."""
    images = [SimpleNamespace(size=s) for s in sizes]
    ep = endpoints.ENDPOINTS.get(model.endpoint_id)
    if ep is not None:
        out = render.output_size(args, images, 1.0, ep, sizes[0] if sizes else None)  # type: ignore[arg-type]
    else:
        out = render.any_size(args, images)  # type: ignore[arg-type]
    bill = billing.bill_for(model.endpoint_id, "r", [out] * returned, inputs=sizes, arguments=args)
    return bill.cost


@pytest.mark.parametrize("model", PRICED, ids=lambda m: f"{m.alias}:{_kind(m.pricing.rule) if m.pricing else ''}")
@settings(max_examples=PROPS, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_the_bound_is_never_below_the_sandboxs_bill(model: Model, data: st.DataObject) -> None:
    args, sizes = data.draw(request(model))
    returned = data.draw(st.integers(0, models.images_asked(model, args)))
    billed = _billed(model, args, sizes, returned)
    assert bound(model, args, sizes) >= billed - 1e-9
    assert bound(model, args) >= billed - 1e-9  # every size unknown
    assert models.billed(model, args, [], sizes) == 0.0 or returned  # nothing returned, nothing billed


@pytest.mark.parametrize("kind", list(RULES))
def test_every_rule_kind_on_a_document_of_our_own(kind: str) -> None:
    props = {
        **PROMPT,
        "image_urls": {"type": "array", "items": {"type": "string"}},
        "num_images": {"type": "integer", "minimum": 1, "maximum": 4, "default": 1},
        "resolution": {"type": "string", "enum": ["1K", "4K"], "default": "1K"},
        "quality": {"type": "string", "enum": ["low", "high"], "default": "high"},
        "image_size": {"type": "string", "enum": ["square_hd", "landscape_16_9"], "default": "square_hd"},
    }
    pricing = {"unit_price": 0.05, "unit": "megapixels" if "mega" in kind else "images", "rule": RULES[kind]}
    m = Registry(lambda: {"acme/x": document("acme/x", props, pricing=pricing)}).get("acme/x")
    args = {"prompt": "p", "image_urls": ["u"], "num_images": 2, "resolution": "4K", "quality": "low"}
    expected = {
        "image": 2 * 0.05,
        "megapixel of output": 2 * 0.05 * 1,
        "megapixel of input+output": 0.05 * (4 + 2 * 1),  # a 2048x2048 source: 4 MP, then two 1 MP outputs
        "first and extra megapixels": 0.07 + 0.03 * (4 + 2 - 1),
        "resolution multiplier": 2 * 0.05 * 2,
        "worst-case table": 2 * 0.01,
    }[kind]
    assert bound(m, args, [(2048, 2048)]) == pytest.approx(expected)
    billed = models.billed(m, args, [(1024, 1024)] * 2, [(2048, 2048)])
    assert billed <= bound(m, args, [(2048, 2048)]) + 1e-9


TOKENS_P = 1 * 0.005 / 1000 + 128_000 * 0.010 / 1000
"""GPT-image 1.5's text tokens for the prompt "p" at their bound: 1 input token (its one UTF-8 byte) and the
output cap (128,000: not published, the rule's)."""


def test_a_table_field_not_asked_reserves_the_dearest() -> None:
    gpt = models.get("gpt-image-1.5")
    assert bound(gpt, {"prompt": "p", "quality": "low", "image_size": "1024x1024"}) == pytest.approx(0.009 + TOKENS_P)
    assert bound(gpt, {"prompt": "p", "quality": "low"}) == pytest.approx(0.2 + TOKENS_P)


@pytest.mark.parametrize(
    ("arguments", "extra"),
    [
        ({}, 0.0),
        ({"enable_web_search": True}, 0.015),
        ({"thinking_level": "high"}, 0.002),
        ({"thinking_level": "minimal", "enable_web_search": False}, 0.0),
        ({"enable_web_search": True, "thinking_level": "high"}, 0.017),
    ],
)
def test_nano_banana_2_extras_are_bounded_and_billed_per_image(arguments: dict[str, Any], extra: float) -> None:
    """fal's page: +$0.015 when web search is used, +$0.002 for high thinking; per image or per request is not
    said, so the rule takes the dearer reading (per image)."""
    nb2 = models.get("nano-banana-2-edit")
    args = {"prompt": "p", "image_urls": ["u"], "num_images": 2, "resolution": "2K", **arguments}
    assert bound(nb2, args) == pytest.approx(2 * (0.08 * 1.5 + extra))
    assert models.billed(nb2, args, [(2048, 2048)]) == pytest.approx(0.08 * 1.5 + extra)
    assert models.billed(nb2, args, []) == 0.0  # nothing returned: nothing billed, extras neither
    assert models.from_units(nb2, args, 2 * 1.5) == pytest.approx(2 * (0.08 * 1.5 + extra))


def test_gpt_image_text_tokens_bound_by_utf8_bytes_and_billed_as_counted() -> None:
    gpt = models.get("gpt-image-1.5")
    args = {"prompt": "café ☕", "quality": "low", "image_size": "1024x1024", "num_images": 2}
    in_bytes = len("café ☕".encode())  # 9: é is two bytes, ☕ three; no tokenizer makes more tokens than bytes
    assert bound(gpt, args) == pytest.approx(2 * (0.009 + in_bytes * 0.005 / 1000 + 128_000 * 0.010 / 1000))
    counted = models.billed(gpt, args, [(1024, 1024)], text_tokens=(3, 10))
    assert counted == pytest.approx(0.009 + 3 * 0.005 / 1000 + 10 * 0.010 / 1000)


def test_an_extra_of_an_unknown_shape_is_refused() -> None:
    props = {**PROMPT, "enable_web_search": {"type": "boolean"}}
    bad = {"per": "image", "extras": [{"when": {"field": "enable_web_search"}, "add": 0.01, "per": "image"}]}
    m = Registry(
        lambda: {"acme/x": document("acme/x", props, pricing={"unit_price": 0.05, "unit": "images", "rule": bad})}
    ).get("acme/x")
    with pytest.raises(Unpriced, match="extras and text tokens"):
        bound(m, {"prompt": "p"})


def test_unpriced_models_and_unknown_rules_are_refused_in_one_line() -> None:
    free = Registry(lambda: {"acme/free": document("acme/free", PROMPT)}).get("acme/free")
    with pytest.raises(Unpriced, match=r"fal publishes no price for acme/free .*kx.set_price\('acme/free'") as err:
        bound(free, {"prompt": "p"})
    assert "\n" not in str(err.value) and isinstance(err.value, ValidationError)
    doc = document("acme/video", PROMPT, pricing={"unit_price": 0.1, "unit": "seconds", "rule": {"per": "second"}})
    m = Registry(lambda: {"acme/video": doc}).get("acme/video")
    with pytest.raises(Unpriced, match=r"cannot price acme/video: its price rule \{'per': 'second'\} is not one"):
        bound(m, {"prompt": "p"})
    assert models.can_price(m) is not None and models.can_price(models.get("max")) is None


def test_kontext_bounds_match_the_endpoints_estimates() -> None:
    """The registry prices Kontext as endpoints.py always has (never lower)."""
    for ep in endpoints.ENDPOINTS.values():
        m = models.get(ep.id)
        for args, size in (({"num_images": 2}, (1000, 700)), ({}, None), ({"resolution_mode": "16:9"}, (50, 50))):
            a = {k: v for k, v in args.items() if m.takes(k)}
            assert bound(m, a, [size] if size else None) >= ep.estimate(a, size) - 1e-9, (ep.id, a)


def test_fals_billable_units_are_priced_by_the_rule() -> None:
    flex_max = models.get("flux2-max-edit")  # first megapixel 0.07, each further one 0.03
    assert models.from_units(flex_max, {}, 3) == pytest.approx(0.07 + 2 * 0.03)
    assert models.from_units(models.get("qwen-edit"), {}, 3) == pytest.approx(0.09)
    gpt = models.get("gpt-image-1.5")  # fal sends no token count: text tokens at their bound, per image
    low = {"prompt": "p", "quality": "low", "image_size": "1024x1024"}
    assert models.from_units(gpt, low, 2) == pytest.approx(2 * (0.009 + TOKENS_P))
    assert endpoints.get_endpoint("fal-ai/flux-2-max/edit").cost_of_units(3) == pytest.approx(0.13)
