"""endpoints.py's Endpoints come from the registry: the Kontext family and every other model, one API."""

from __future__ import annotations

import pytest

from kontext_nb import endpoints, models
from kontext_nb.errors import ValidationError

from .docs import PROMPT, document

FLEX = "fal-ai/flux-2-flex/edit"


def test_the_kontext_family_is_built_from_the_snapshot() -> None:
    assert [e.model for e in endpoints.ENDPOINTS.values()].count("max") == 3
    for ep in endpoints.ENDPOINTS.values():
        m = models.get(ep.id)
        assert ep.spec == m and ep.kontext and [f.name for f in ep.inputs] == list(m.input_names)
    max_edit = endpoints.ENDPOINTS["fal-ai/flux-pro/kontext/max"]
    # the enums other modules name by constant are the snapshot's
    assert max_edit.field("aspect_ratio").choices == endpoints.ASPECT_RATIOS
    assert max_edit.field("safety_tolerance").choices == endpoints.SAFETY_TOLERANCES
    assert max_edit.field("output_format").choices == endpoints.OUTPUT_FORMATS
    t2i = endpoints.endpoint_for("text-to-image", "max")
    assert {k: t2i.field(k).default for k in endpoints.T2I_DEFAULTS} == endpoints.T2I_DEFAULTS
    assert max_edit.field("seed").maximum == 2**63 - 1  # an integer bound stays an integer
    assert endpoints.PRICE_PER_IMAGE == {"max": 0.08, "pro": 0.04}
    assert endpoints.PRICE_PER_MEGAPIXEL == {"dev": 0.025, "lora": 0.035}


def test_every_other_model_is_an_endpoint_too() -> None:
    flex = endpoints.get_endpoint(FLEX)
    assert (flex.mode, flex.model, flex.unit, flex.price, flex.kontext) == (
        "edit",
        "flux2-flex-edit",
        "megapixel",
        0.05,
        False,
    )
    assert endpoints.endpoint_for("edit", "flux2-flex-edit") is flex
    assert endpoints.endpoint_for("text-to-image", "flux2-flex-edit").id == "fal-ai/flux-2-flex"
    assert endpoints.endpoint_for("multi", FLEX) is flex  # a list editor serves multi
    with pytest.raises(ValidationError, match=r"model='fal-ai/flux-2-flex/edit' is a edit endpoint; this call needs"):
        endpoints.endpoint_for("text-to-image", FLEX)
    args = endpoints.validate(flex, {"prompt": "p", "image_urls": ["https://example.com/a.png"], "seed": 3})
    assert args["seed"] == 3 and args["image_size"] == "auto"
    assert flex.estimate(args, (1024, 1024)) == models.bound(models.get(FLEX), args, [(1024, 1024)])
    assert flex.needs_input_size(args)
    with pytest.raises(ValidationError, match=r"unknown argument 'aspect_ratio' for fal-ai/flux-2-flex/edit"):
        endpoints.validate(flex, {"prompt": "p", "image_urls": ["https://example.com/a.png"], "aspect_ratio": "1:1"})


def test_an_unpriced_model_says_so_and_refuses_an_estimate() -> None:
    models.registry().add(models.parse(document("acme/unpriced/edit", PROMPT), live=True))  # as kx.model loads one
    unpriced = endpoints.get_endpoint("acme/unpriced/edit")
    assert not unpriced.priced and unpriced.price_text() == "price not published"
    with pytest.raises(models.Unpriced, match="fal publishes no price for acme/unpriced/edit"):
        unpriced.estimate({"prompt": "p"})


def test_help_text_for_a_schema_without_ranges() -> None:
    text = endpoints.describe(endpoints.get_endpoint("fal-ai/gpt-image-1.5/edit"))
    assert "(price not published)" in text and "num_images: an integer [default 1]" in text
    assert "image_urls: a list of at least 1 image URLs or data URIs [required]" in text
    with pytest.raises(ValidationError, match=r"num_images='2' must be an integer \(a str is not an integer\)"):
        endpoints.validate(
            "fal-ai/gpt-image-1.5/edit", {"prompt": "p", "image_urls": ["https://a/b.png"], "num_images": "2"}
        )
