"""Sweeps: values parsed and checked against endpoints, prompt groups expanded, cells in a stable order."""

from __future__ import annotations

import pytest

from kontext_nb import endpoints
from kontext_nb.errors import ValidationError
from kontext_nb.sweep import MAX_CELLS, MAX_VALUES, Axis, build_sweep, expand_prompt, parse_values

SEED_ALLOWED = endpoints.endpoint_for("text-to-image", "max").field("seed").allowed()  # from the spec


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("seed", "1,2,3", (1, 2, 3)),
        ("seed", "1-4", (1, 2, 3, 4)),
        ("seed", " 7 , 10-12 ", (7, 10, 11, 12)),
        ("seed", "0:20:10", (0, 10, 20)),
        ("num_images", "1-4", (1, 2, 3, 4)),
        ("guidance_scale", "2,3.5,5", (2.0, 3.5, 5.0)),
        ("guidance_scale", "2:5:0.5", (2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0)),
        ("guidance_scale", "1:2:0.1", tuple(round(1 + i / 10, 10) for i in range(11))),
        ("guidance_scale", "2:3:0.4", (2.0, 2.4, 2.8)),
        ("aspect_ratio", "16:9,1:1", ("16:9", "1:1")),
        ("aspect_ratio", "21:9", ("21:9",)),
        ("output_format", "jpeg,png", ("jpeg", "png")),
        ("safety_tolerance", "1,6", ("1", "6")),
        ("enhance_prompt", "true,false", (True, False)),
        ("enhance_prompt", "On,OFF", (True, False)),
        ("enhance_prompt", "1,0", (True, False)),
        ("model", "max,pro", ("max", "pro")),
    ],
)
def test_parse_values(name: str, text: str, expected: tuple) -> None:
    values = parse_values(name, text)
    assert values == expected
    assert [type(v) for v in values] == [type(v) for v in expected]


@pytest.mark.parametrize(
    ("name", "text", "piece", "allowed"),
    [
        ("seed", "1,x", "'x'", SEED_ALLOWED),
        ("seed", "-1", "-1", SEED_ALLOWED),
        ("seed", "1.5", "'1.5'", SEED_ALLOWED),
        ("num_images", "5", "5", "an integer from 1 to 4"),
        ("num_images", "1-9", "'1-9'", "an integer from 1 to 4"),
        ("guidance_scale", "abc", "'abc'", "a number from 1 to 20"),
        ("guidance_scale", "25", "25", "a number from 1 to 20"),
        ("guidance_scale", "nan", "'nan'", "a number from 1 to 20"),
        ("guidance_scale", "2:30:1", "'2:30:1'", "a number from 1 to 20"),
        ("aspect_ratio", "16:10", "'16:10'", "one of 21:9, 16:9"),
        ("output_format", "gif", "'gif'", "one of jpeg, png"),
        ("safety_tolerance", "7", "'7'", "one of 1, 2, 3, 4, 5, 6"),
        ("enhance_prompt", "maybe", "'maybe'", "true/false, on/off or 1/0"),
        ("model", "ultra", "'ultra'", "max, pro"),
    ],
)
def test_bad_values_name_option_piece_and_allowed(name: str, text: str, piece: str, allowed: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_values(name, text)
    message = str(info.value)
    assert "\n" not in message
    assert name in message and piece in message and allowed in message, message


@pytest.mark.parametrize(
    ("name", "text", "why"),
    [
        ("seed", "", "no values"),
        ("seed", "1,,2", "empty value"),
        ("seed", "1,2,", "empty value"),
        ("seed", "5-1", "reversed"),
        ("guidance_scale", "5:2:0.5", "reversed"),
        ("guidance_scale", "2:5:0", "step"),
        ("guidance_scale", "2:5", "start:stop:step"),
        ("seed", "0-1000", f"at most {MAX_VALUES}"),
        ("seed", ",".join(str(i) for i in range(MAX_VALUES + 1)), f"more than {MAX_VALUES}"),
        ("sync_mode", "true", "cannot be swept"),
        ("prompt", "a,b", "cannot be swept"),
    ],
)
def test_malformed_values(name: str, text: str, why: str) -> None:
    with pytest.raises(ValidationError, match=why) as info:
        parse_values(name, text)
    assert "\n" not in str(info.value)


def test_enums_and_ranges_come_from_endpoints() -> None:
    ratios = endpoints.endpoint_for("text-to-image", "max").field("aspect_ratio").choices
    assert parse_values("aspect_ratio", ",".join(ratios)) == ratios
    assert parse_values("model", ",".join(endpoints.MODELS)) == endpoints.MODELS
    steps = parse_values("num_inference_steps", "10-12")  # the family's inputs sweep too
    assert steps == (10, 11, 12)


def test_expand_prompt_groups_in_row_major_order() -> None:
    prompts, axes = expand_prompt("a {cat|fox} in {snow|rain}")
    assert prompts == ["a cat in snow", "a cat in rain", "a fox in snow", "a fox in rain"]
    assert axes == [Axis("prompt", ("cat", "fox"), ("cat", "fox")), Axis("prompt", ("snow", "rain"), ("snow", "rain"))]


def test_expand_prompt_leaves_plain_braces_and_honours_escapes() -> None:
    assert expand_prompt("a {name} at {time}") == (["a {name} at {time}"], [])
    prompts, axes = expand_prompt(r"\{x|y\} a {red|blue} {thing}")
    assert prompts == ["{x|y} a red {thing}", "{x|y} a blue {thing}"]
    assert len(axes) == 1
    assert expand_prompt("a } b { c") == (["a } b { c"], [])
    assert expand_prompt("no groups | here") == (["no groups | here"], [])


def test_expand_prompt_empty_alternative() -> None:
    prompts, axes = expand_prompt("a {big|} cat")
    assert prompts == ["a big cat", "a cat"]
    assert axes[0].values == ("big", "") and axes[0].labels == ("big", "(none)")


@pytest.mark.parametrize("prompt", ["a {cat|fox", "a cat|fox} b", "{a|b} {c|d"])
def test_expand_prompt_unbalanced(prompt: str) -> None:
    with pytest.raises(ValidationError, match="unbalanced") as info:
        expand_prompt(prompt)
    assert "\n" not in str(info.value)


def test_build_sweep_order_and_coordinates() -> None:
    sweep = build_sweep("a {cat|fox}", {"seed": (1, 2, 3), "guidance_scale": "2,5"}, base={"aspect_ratio": "16:9"})
    assert [a.name for a in sweep.axes] == ["prompt", "seed", "guidance_scale"]
    assert sweep.axes[2].labels == ("2", "5")
    assert sweep.count() == 12
    assert [c.coords for c in sweep.cells[:3]] == [(0, 0, 0), (0, 0, 1), (0, 1, 0)]
    last = sweep.cells[-1]
    assert last.coords == (1, 2, 1)
    assert last.prompt == "a fox"
    assert last.arguments == {"aspect_ratio": "16:9", "seed": 3, "guidance_scale": 5.0}
    assert last.model == "max"


def test_fixed_seeds_are_shared_across_cells() -> None:
    sweep = build_sweep("a {cat|fox}", {"seed": "10,20", "guidance_scale": "2,5"})
    for cell in sweep.cells:
        assert cell.arguments["seed"] == (10, 20)[cell.coords[1]]
    drawn = build_sweep("a {cat|fox}", {"guidance_scale": "2,5"})
    assert len({c.arguments["seed"] for c in drawn.cells}) == 1


def test_single_values_are_fixed_not_axes() -> None:
    sweep = build_sweep("a cat", {"seed": (7,), "model": ("pro",), "guidance_scale": "4"})
    assert sweep.axes == ()
    assert sweep.count() == 1
    assert sweep.cells[0].model == "pro"
    assert sweep.cells[0].arguments == {"seed": 7, "guidance_scale": 4.0}
    assert sweep.describe() == "1 image · $0.04"


def test_values_given_directly_are_checked() -> None:
    with pytest.raises(ValidationError, match="seed=-1"):
        build_sweep("a cat", {"seed": (1, -1)})
    with pytest.raises(ValidationError, match="cannot be swept"):
        build_sweep("a cat", {"colour": (1, 2)})


def test_count_images_cost_describe_with_mixed_models() -> None:
    sweep = build_sweep("a {cat|fox}", {"seed": "1-3", "guidance_scale": "2,3.5,5"})
    assert sweep.describe() == "2 prompts × 3 seeds × 3 guidance_scale values = 18 images · $1.44"
    mixed = build_sweep("a cat", {"model": "max,pro", "seed": "1,2"}, base={"num_images": 2})
    assert mixed.count() == 4 and mixed.images() == 8
    assert mixed.cost() == pytest.approx(2 * 2 * (endpoints.PRICE_PER_IMAGE["max"] + endpoints.PRICE_PER_IMAGE["pro"]))
    assert mixed.describe() == "2 models × 2 seeds × 2 images each = 8 images · $0.48"
    swept = build_sweep("a cat", {"num_images": "1-2", "seed": (1,)}, model="pro")
    assert swept.images() == 3 and swept.cost() == pytest.approx(0.12)


def test_two_prompt_groups_describe() -> None:
    sweep = build_sweep("a {cat|fox} in {snow|rain|fog}", {"seed": (1,)})
    assert sweep.describe() == "2 × 3 prompt alternatives = 6 images · $0.48"


def test_cell_cap() -> None:
    with pytest.raises(ValidationError, match=str(MAX_CELLS)):
        build_sweep("a cat", {"seed": "0-99", "guidance_scale": "1:20:1", "model": "max,pro"})
    assert build_sweep("a cat", {"seed": "0-99", "guidance_scale": "1:20:1"}).count() == MAX_CELLS
