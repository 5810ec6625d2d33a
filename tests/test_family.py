"""The rest of the FLUX.1 Kontext family: [dev], LoRA and inpainting specs, validation and prices."""

from __future__ import annotations

import pytest

from kontext_nb import endpoints as ep
from kontext_nb.errors import ValidationError

URL = "https://example.org/cat.png"
DEV = ep.ENDPOINTS["fal-ai/flux-kontext/dev"]
LORA = ep.ENDPOINTS["fal-ai/flux-kontext-lora"]
LORA_T2I = ep.ENDPOINTS["fal-ai/flux-kontext-lora/text-to-image"]
INPAINT = ep.ENDPOINTS["fal-ai/flux-kontext-lora/inpaint"]


def base(endpoint: ep.Endpoint) -> dict[str, object]:
    args: dict[str, object] = {"prompt": "a fox"}
    for f in endpoint.inputs:
        if f.required and f.kind == "image":
            args[f.name] = URL
    return args


def rejected(endpoint: ep.Endpoint, **args: object) -> str:
    with pytest.raises(ValidationError) as info:
        ep.validate(endpoint, {**base(endpoint), **args})
    message = str(info.value)
    assert "\n" not in message
    return message


def test_the_four_endpoints_are_in_the_family_with_modes_and_models() -> None:
    assert (DEV.mode, DEV.model) == ("edit", "dev")
    assert (LORA.mode, LORA.model) == ("edit", "lora")
    assert (LORA_T2I.mode, LORA_T2I.model) == ("text-to-image", "lora")
    assert (INPAINT.mode, INPAINT.model) == ("inpaint", "lora")
    assert ep.endpoint_for("inpaint", "lora") is INPAINT
    assert ep.endpoint_for("edit", "dev") is DEV
    assert ep.endpoint_for("edit", "fal-ai/flux-kontext-lora") is LORA  # an endpoint id works as a model


def test_dev_has_no_text_to_image_endpoint_and_says_what_to_use() -> None:
    with pytest.raises(ValidationError) as info:
        ep.endpoint_for("text-to-image", "dev")
    assert "dev" in str(info.value) and "lora" in str(info.value)


def test_defaults_are_fals_published_defaults() -> None:
    assert ep.validate(DEV, base(DEV)) == {
        "prompt": "a fox",
        "image_url": URL,
        "num_inference_steps": 28,
        "guidance_scale": 2.5,
        "sync_mode": False,
        "num_images": 1,
        "enable_safety_checker": True,
        "output_format": "jpeg",
        "acceleration": "none",
        "resolution_mode": "match_input",
    }
    lora = ep.validate(LORA, base(LORA))
    assert lora["num_inference_steps"] == 30 and lora["output_format"] == "png" and lora["loras"] == []
    assert ep.validate(LORA_T2I, base(LORA_T2I))["image_size"] == "landscape_4_3"
    inpaint = ep.validate(INPAINT, {**base(INPAINT)})
    assert inpaint["strength"] == 0.88 and inpaint["mask_url"] == URL and inpaint["reference_image_url"] == URL


@pytest.mark.parametrize(
    ("endpoint", "args", "words"),
    [
        (DEV, {"num_inference_steps": 9}, ["num_inference_steps=9", "10 to 50"]),
        (DEV, {"num_inference_steps": 2.5}, ["num_inference_steps=2.5", "integer"]),
        (DEV, {"acceleration": "fast"}, ["acceleration='fast'", "none, regular, high"]),
        (DEV, {"resolution_mode": "4:7"}, ["resolution_mode='4:7'", "match_input"]),
        (DEV, {"guidance_scale": 21}, ["guidance_scale=21", "0 to 20"]),
        (DEV, {"safety_tolerance": "2"}, ["safety_tolerance", "not an input of fal-ai/flux-kontext/dev"]),
        (LORA, {"loras": [{"path": URL, "scale": 9}]}, ["loras[0].scale=9", "0 to 4"]),
        (LORA, {"loras": [{"path": "", "scale": 1}]}, ["loras[0].path", "URL"]),
        (LORA, {"loras": "x"}, ["loras='x'", "list"]),
        (LORA, {"loras": [{"path": URL, "weight": 1}]}, ["loras[0]", "'weight'"]),
        (LORA_T2I, {"image_size": "huge"}, ["image_size='huge'", "square_hd"]),
        (LORA_T2I, {"image_size": {"width": 0, "height": 512}}, ["image_size", "width"]),
        (INPAINT, {"strength": 1.5}, ["strength=1.5", "0.01 to 1"]),
        (INPAINT, {"mask_url": "mask.png"}, ["mask_url='mask.png'", "URL"]),
    ],
)
def test_bad_values_are_refused_in_one_line_naming_field_value_and_allowed(
    endpoint: ep.Endpoint, args: dict[str, object], words: list[str]
) -> None:
    message = rejected(endpoint, **args)
    for word in words:
        assert word in message, message


def test_good_values_pass_and_are_normalised() -> None:
    out = ep.validate(
        LORA,
        {**base(LORA), "loras": [{"path": URL}, {"path": "owner/repo", "scale": 0.5}], "num_inference_steps": 50},
    )
    assert out["loras"] == [{"path": URL, "scale": 1.0}, {"path": "owner/repo", "scale": 0.5}]
    size = ep.validate(LORA_T2I, {**base(LORA_T2I), "image_size": {"width": 640, "height": 480}})["image_size"]
    assert size == {"width": 640, "height": 480}
    assert ep.validate(DEV, {**base(DEV), "resolution_mode": "4:5", "acceleration": "high"})["resolution_mode"] == "4:5"


def test_every_spec_names_its_source_and_date() -> None:
    for e in (DEV, LORA, LORA_T2I, INPAINT):  # from the registry's snapshot, whose provenance names both
        assert "fal-ai/fal-js" in e.source and e.spec is not None
        assert str(e.spec.provenance["schema_retrieved"]).startswith("2026")


# --- prices: per image for [max]/[pro], per megapixel for [dev] and LoRA ---------------------


def test_per_megapixel_prices_and_units() -> None:
    assert (DEV.unit, LORA.unit, INPAINT.unit) == ("megapixel", "megapixel", "megapixel")
    assert ep.endpoint_for("edit", "max").unit == "image"
    assert LORA.price == 0.035
    assert "per megapixel" in ep.describe(LORA)


def test_billed_megapixels_round_up_per_image() -> None:
    assert ep.billed_megapixels(1024, 1024) == 1
    assert ep.billed_megapixels(1024, 1025) == 2  # never under: fal's rounding rule is not published
    assert ep.billed_megapixels(16, 16) == 1


def test_estimate_from_requested_resolution_and_num_images() -> None:
    # text to image: the preset's size, times num_images
    args = ep.validate(LORA_T2I, {**base(LORA_T2I), "image_size": "square_hd", "num_images": 3})
    assert LORA_T2I.estimate(args) == pytest.approx(3 * 0.035)
    args = ep.validate(LORA_T2I, {**base(LORA_T2I), "image_size": {"width": 2048, "height": 2048}})
    assert LORA_T2I.estimate(args) == pytest.approx(4 * 0.035)


def test_estimate_from_input_resolution_for_match_input() -> None:
    args = ep.validate(DEV, {**base(DEV), "num_images": 2})
    assert DEV.estimate(args, input_size=(2000, 1500)) == pytest.approx(2 * 3 * DEV.price)  # 2000x1504 -> 3 MP
    assert DEV.estimate(args, input_size=(512, 512)) == pytest.approx(2 * DEV.price)
    # unknown input size (a URL whose header could not be read): the largest fal takes, 14142 px a side
    assert DEV.estimate(args) == pytest.approx(2 * 191 * DEV.price)
    assert DEV.estimate(ep.validate(DEV, {**base(DEV), "resolution_mode": "auto"})) == pytest.approx(2 * DEV.price)
    auto = ep.validate(DEV, {**base(DEV), "resolution_mode": "16:9"})
    assert DEV.estimate(auto, input_size=(4000, 100)) == pytest.approx(DEV.price)


def test_recorded_cost_from_returned_sizes() -> None:
    assert DEV.cost(2, sizes=[(1024, 1024), (2048, 1024)]) == pytest.approx(3 * DEV.price)
    assert ep.endpoint_for("edit", "max").cost(2, sizes=[(4000, 4000), (10, 10)]) == pytest.approx(0.16)


def test_format_estimate_says_it_is_an_estimate() -> None:
    assert ep.format_price(0.07, estimate=True) == "≈$0.07 (estimate)"
    assert ep.format_price(0.08, estimate=False) == "$0.08"
