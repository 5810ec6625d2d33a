"""Adapters: one intention, each model's request shape; every model's output, one shape."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kontext_nb import models
from kontext_nb.errors import ValidationError
from kontext_nb.models import Intention, adapt, normalise

ALL = models.registry().all()
URL = "https://example.com/a.png"


def test_one_source_or_a_list_sizes_and_counts_by_each_schema() -> None:
    i = Intention("make it winter", [URL], size="16:9", n=2, seed=7, settings={"guidance_scale": 3.0})
    kontext = adapt(models.get("max"), i)
    assert kontext.arguments == {
        "prompt": "make it winter", "image_url": URL, "aspect_ratio": "16:9", "num_images": 2, "seed": 7,
        "guidance_scale": 3.0,
    }  # fmt: skip
    assert kontext.not_taken == () and kontext.reproducible
    seedream = adapt(models.get("seedream4-edit"), i)
    assert seedream.arguments["image_urls"] == [URL] and seedream.arguments["image_size"] == "landscape_16_9"
    assert seedream.not_taken == ("guidance_scale",) and "nearest" in seedream.notes[0]
    lora = adapt(models.get("lora-t2i"), Intention("a fox", size=(1920, 1080)))
    assert lora.arguments["image_size"] == {"width": 1920, "height": 1080}
    nano = adapt(models.get("nano-banana-2-edit"), Intention("x", [URL, URL], size=(1000, 1000)))
    assert nano.arguments["aspect_ratio"] == "1:1" and nano.arguments["image_urls"] == [URL, URL]


def test_masks_references_and_models_without_a_seed() -> None:
    gpt = adapt(models.get("gpt-image-1.5-edit"), Intention("x", [URL], mask="m", size="3:2", seed=1))
    assert gpt.arguments["mask_image_url"] == "m" and gpt.arguments["image_size"] == "1536x1024"
    assert gpt.not_taken == ("seed",) and not gpt.reproducible
    lora = adapt(models.get("lora-inpaint"), Intention("x", [URL], mask="m"))
    assert lora.arguments["mask_url"] == "m" and lora.arguments["reference_image_url"] == URL
    reve = adapt(models.get("reve-fast-edit"), Intention("x", [URL], mask="m"))
    assert reve.not_taken == ("mask",) and not reve.reproducible


def test_what_cannot_be_sent_at_all_is_one_line() -> None:
    with pytest.raises(ValidationError, match=r"fal-ai/flux-pro/kontext/max takes one source image \(image_url\)"):
        adapt(models.get("max"), Intention("x", [URL, URL]))
    with pytest.raises(ValidationError, match=r"takes 2 to 4 source images \(image_urls\), not 5"):
        adapt(models.get("max-multi"), Intention("x", [URL] * 5))
    with pytest.raises(ValidationError, match=r"edits images: give a source image \(image_url\)"):
        adapt(models.get("max"), Intention("x"))
    with pytest.raises(ValidationError, match=r"makes 1 to 4 images per request \(num_images\), not 9"):
        adapt(models.get("max"), Intention("x", [URL], n=9))


SETTING_NAMES = st.sampled_from(["guidance_scale", "num_inference_steps", "output_format", "quality", "strength", "x"])


@settings(max_examples=60, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
@given(
    model=st.sampled_from(ALL),
    sources=st.integers(0, 3),
    mask=st.booleans(),
    size=st.one_of(
        st.none(),
        st.sampled_from(["16:9", "1:1", "landscape_4_3", "1024x1536"]),
        st.tuples(st.integers(64, 4000), st.integers(64, 4000)),
    ),
    seed=st.one_of(st.none(), st.integers(0, 2**31)),
    names=st.lists(SETTING_NAMES, unique=True, max_size=3),
)
def test_nothing_asked_is_dropped_silently(
    model: models.Model, sources: int, mask: bool, size: Any, seed: int | None, names: list[str]
) -> None:
    intention = Intention("p", [URL] * sources, "m" if mask else None, size, None, seed, dict.fromkeys(names, 1))
    try:
        a = adapt(model, intention)
    except ValidationError as exc:  # only for sources the model cannot take
        assert "source image" in str(exc) and "\n" not in str(exc)
        return
    assert set(a.arguments) <= set(model.input_names)
    for name in names:
        assert name in a.arguments or name in a.not_taken
    assert (seed is None) or ("seed" in a.arguments) != ("seed" in a.not_taken)
    assert (not mask) or ("mask" in a.not_taken) != any("mask" in k for k in a.arguments)
    assert (
        (size is None)
        or ("size" in a.not_taken)
        or any(k in a.arguments for k in ("aspect_ratio", "image_size", "resolution_mode"))
    )
    assert a.reproducible == model.takes_seed


def test_outputs_in_one_shape() -> None:
    img = {"url": URL, "width": 8, "height": 8}
    a = normalise({"images": [img, img], "seed": 5, "has_nsfw_concepts": [False, True], "prompt": "p"})
    assert a.seeds == (5, 5) and a.nsfw == (False, True) and a.extra == {"prompt": "p"}
    b = normalise({"image": img, "seeds": [9], "nsfw_content_detected": [True]})
    assert b.images == (img,) and b.seeds == (9,) and b.nsfw == (True,)
    c = normalise({"images": [img], "description": "d"})
    assert c.seeds == (None,) and c.nsfw == (False,) and c.extra == {"description": "d"}
