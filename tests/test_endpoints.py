"""Endpoint specs: every input of fal's pages, good and bad values, before any request."""

from __future__ import annotations

import math

import pytest

from kontext_nb import endpoints as ep
from kontext_nb.errors import ValidationError

T2I = ep.endpoint_for("text-to-image", "max")
EDIT = ep.endpoint_for("edit", "max")
MULTI = ep.endpoint_for("multi", "pro")
URL = "https://example.org/cat.png"


def check(endpoint: ep.Endpoint, **args: object) -> dict:
    base = {"prompt": "a fox"}
    if endpoint.mode == "edit":
        base["image_url"] = URL
    if endpoint.mode == "multi":
        base["image_urls"] = [URL, URL]
    return ep.validate(endpoint, {**base, **args})


def rejected(endpoint: ep.Endpoint, **args: object) -> str:
    with pytest.raises(ValidationError) as info:
        check(endpoint, **args)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_the_family_has_ten_endpoints_with_fal_ids_and_prices() -> None:
    assert set(ep.ENDPOINTS) == {
        "fal-ai/flux-kontext/dev",
        "fal-ai/flux-kontext-lora",
        "fal-ai/flux-kontext-lora/text-to-image",
        "fal-ai/flux-kontext-lora/inpaint",
        "fal-ai/flux-pro/kontext/max/text-to-image",
        "fal-ai/flux-pro/kontext/max",
        "fal-ai/flux-pro/kontext/max/multi",
        "fal-ai/flux-pro/kontext/text-to-image",
        "fal-ai/flux-pro/kontext",
        "fal-ai/flux-pro/kontext/multi",
    }
    assert {e.id: e.price_per_image for e in ep.ENDPOINTS.values()}["fal-ai/flux-pro/kontext"] == 0.04
    assert T2I.price_per_image == 0.08 and T2I.cost(3) == pytest.approx(0.24)
    assert ep.endpoint_for("edit", "pro").id == "fal-ai/flux-pro/kontext"


def test_defaults_are_fals_defaults() -> None:
    out = check(T2I)
    assert out == {
        "prompt": "a fox",
        "guidance_scale": 3.5,
        "sync_mode": False,
        "num_images": 1,
        "output_format": "jpeg",
        "safety_tolerance": "2",
        "enhance_prompt": False,
        "aspect_ratio": "1:1",
    }
    assert "aspect_ratio" not in check(EDIT), "edits keep the input's aspect unless asked"
    assert check(EDIT)["image_url"] == URL


def test_inputs_of_the_seed_pages_are_all_there() -> None:
    names = {f.name for f in T2I.inputs}
    assert names == {
        "prompt", "seed", "guidance_scale", "sync_mode", "num_images", "output_format",
        "safety_tolerance", "enhance_prompt", "aspect_ratio",
    }  # fmt: skip
    assert {f.name for f in EDIT.inputs} == names | {"image_url"}
    assert [o.name for o in ep.OUTPUTS] == ["images", "timings", "seed", "has_nsfw_concepts", "prompt"]
    assert ep.IMAGE_OUTPUT_FIELDS == ("url", "width", "height", "content_type")


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("seed", 0, 0),
        ("seed", 2**31, 2**31),
        ("guidance_scale", 1, 1.0),
        ("guidance_scale", 20.0, 20.0),
        ("num_images", 4, 4),
        ("output_format", "png", "png"),
        ("safety_tolerance", "6", "6"),
        ("safety_tolerance", 1, "1"),
        ("enhance_prompt", True, True),
        ("sync_mode", True, True),
        ("aspect_ratio", "21:9", "21:9"),
        ("aspect_ratio", "9:21", "9:21"),
    ],
)
def test_good_values_are_accepted_and_normalised(field: str, value: object, expected: object) -> None:
    out = check(T2I, **{field: value})
    assert out[field] == expected and type(out[field]) is type(expected)


def test_numpy_numbers_are_accepted() -> None:
    import numpy as np

    out = check(T2I, seed=np.int64(7), guidance_scale=np.float32(2.5))
    assert out["seed"] == 7 and type(out["seed"]) is int and out["guidance_scale"] == 2.5


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("prompt", "", "must not be empty"),
        ("prompt", "   ", "must not be empty"),
        ("prompt", 12, "must be a string"),
        ("seed", -1, "out of range"),
        ("seed", 1.0, "float is not an integer"),
        ("seed", True, "bool is not an integer"),
        ("seed", "7", "str is not an integer"),
        ("guidance_scale", 0.99, "from 1 to 20"),
        ("guidance_scale", 20.5, "from 1 to 20"),
        ("guidance_scale", math.nan, "finite"),
        ("guidance_scale", math.inf, "finite"),
        ("guidance_scale", True, "not bool"),
        ("guidance_scale", "3", "not str"),
        ("num_images", 0, "from 1 to 4"),
        ("num_images", 5, "from 1 to 4"),
        ("num_images", 2.0, "float is not an integer"),
        ("num_images", False, "bool is not an integer"),
        ("output_format", "webp", "jpeg, png"),
        ("safety_tolerance", 7, "1, 2, 3, 4, 5, 6"),
        ("safety_tolerance", "0", "1, 2, 3, 4, 5, 6"),
        ("safety_tolerance", True, "1, 2, 3, 4, 5, 6"),
        ("enhance_prompt", "yes", "True or False"),
        ("enhance_prompt", 1, "True or False"),
        ("sync_mode", 0, "True or False"),
        ("aspect_ratio", "16x9", "did you mean '16:9'"),
        ("aspect_ratio", 1.0, "21:9, 16:9"),
    ],
)
def test_bad_values_name_field_value_and_what_is_allowed(field: str, value: object, words: str) -> None:
    message = rejected(T2I, **{field: value})
    assert message.startswith(f"{field}=")
    assert repr(value)[:20] in message
    assert words in message


def test_misspelt_names_and_enums_get_a_did_you_mean() -> None:
    assert "did you mean 'guidance_scale'" in rejected(T2I, guidence_scale=3)
    assert "did you mean 'num_images'" in rejected(T2I, num_image=2)
    assert "did you mean 'jpeg'" in rejected(T2I, output_format="jpg")
    assert "did you mean '3:2'" in rejected(T2I, aspect_ratio="16:10")
    assert "did you mean '16:9'" in rejected(T2I, aspect_ratio="1920:1080")


def test_inputs_of_another_mode_say_where_they_belong() -> None:
    assert "belongs to edit" in rejected(T2I, image_url=URL)
    assert "belongs to multi" in rejected(EDIT, image_urls=[URL, URL])


def test_required_images_and_their_counts() -> None:
    with pytest.raises(ValidationError, match="image_url is required"):
        ep.validate(EDIT, {"prompt": "x"})
    assert "has 1 images" in rejected(MULTI, image_urls=[URL])
    assert "has 5 images" in rejected(MULTI, image_urls=[URL] * 5)
    assert "http(s) URL or a data URI" in rejected(EDIT, image_url="cat.png")
    assert check(MULTI, image_urls=(URL, URL, URL, URL))["image_urls"] == [URL] * 4


def test_unknown_model_mode_and_endpoint() -> None:
    with pytest.raises(ValidationError, match="model='ultra' is not allowed: choose one of max, pro"):
        ep.endpoint_for("text-to-image", "ultra")
    with pytest.raises(ValidationError, match="did you mean 'max'"):
        ep.endpoint_for("edit", "mx")
    with pytest.raises(ValidationError, match="endpoint="):
        ep.get_endpoint("fal-ai/flux/dev")


def test_aspect_sizes_are_about_one_megapixel_in_the_right_shape() -> None:
    for ratio in ep.ASPECT_RATIOS:
        w, h = ep.aspect_size(ratio)
        a, b = (int(x) for x in ratio.split(":"))
        assert abs(w / h - a / b) < 0.03
        assert 0.9e6 < w * h < 1.15e6 and w % 16 == 0 and h % 16 == 0


def test_describe_lists_every_input_with_its_range() -> None:
    text = ep.describe(T2I)
    for f in T2I.inputs:
        assert f.name in text
    assert "from 1 to 20" in text and "$0.08" in text


def test_errors_show_the_value_as_given_not_as_normalised() -> None:
    assert rejected(T2I, guidance_scale=25).startswith("guidance_scale=25 is out of range")
    assert rejected(T2I, safety_tolerance=9).startswith("safety_tolerance=9 is not allowed")


def test_overview_lists_each_endpoint_and_each_input_once() -> None:
    text = ep.overview()
    for e in ep.ENDPOINTS.values():
        assert e.id in text
    lines = [line for line in text.splitlines() if line.startswith("  ") and " per " not in line]
    inputs = [line.split(":")[0].split(" (")[0].strip() for line in lines]
    assert set(inputs) == {f.name for e in ep.ENDPOINTS.values() for f in e.inputs}
    # one line per input and allowed range: the same name may allow different values on [dev]/LoRA
    assert len(inputs) == len({(f.name, f.allowed()) for e in ep.ENDPOINTS.values() for f in e.inputs})
    assert "default '1:1' for max text-to-image" in text and "image_url (edit, inpaint)" in text
