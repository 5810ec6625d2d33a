"""Point 3: kx.changes on edits: heat map, changed fraction, SSIM outside the changed area or the mask, pHash."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image, ImageDraw

import kontext_nb as kx
from kontext_nb.errors import ValidationError
from kontext_nb.judging.changes import SCORERS, compute
from kontext_nb.result import Result


def photo(size: tuple[int, int] = (512, 384), seed: int = 1) -> Image.Image:
    """A textured picture (SSIM and pHash need structure, not flat colour)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (size[1] // 16, size[0] // 16, 3), dtype=np.uint8)
    return Image.fromarray(small).resize(size, Image.BICUBIC)


def with_box(image: Image.Image, box: tuple[int, int, int, int], colour: str = "red") -> Image.Image:
    out = image.copy()
    ImageDraw.Draw(out).rectangle(box, fill=colour)
    return out


def test_a_local_edit_changes_its_area_and_keeps_the_rest() -> None:
    before = photo()
    after = with_box(before, (100, 100, 227, 227))  # 128 x 128 of 512 x 384
    found = compute(before, after)
    assert found.changed_fraction == pytest.approx(128 * 128 / (512 * 384), rel=0.25)
    assert found.ssim_outside > 0.97
    assert isinstance(found.image, Image.Image) and found.image.size == after.size
    heat = np.asarray(found.image).astype(int)
    inside, outside = heat[150:180, 150:180], heat[300:380, 400:500]
    assert (inside[..., 0] - inside[..., 1]).mean() > 150  # red where it changed
    assert abs(outside[..., 0] - outside[..., 1]).mean() < 10  # grey where it did not
    assert 0 < found.phash_distance <= 64


def test_identical_images_have_no_change() -> None:
    before = photo()
    found = compute(before, before.copy())
    assert found.changed_fraction == 0 and found.phash_distance == 0
    assert found.ssim_outside == pytest.approx(1.0)


def test_a_new_picture_changes_everything() -> None:
    found = compute(photo(seed=1), photo(seed=2))
    assert found.changed_fraction > 0.8 and found.phash_distance > 10
    assert math.isnan(found.ssim_outside) or found.ssim_outside < 0.5


def test_outside_the_mask_for_an_inpaint() -> None:
    before = photo()
    after = with_box(before, (100, 100, 227, 227))
    after = with_box(after, (300, 250, 500, 370), "blue")  # a change outside what the mask allowed
    mask = Image.new("L", before.size, 0)
    ImageDraw.Draw(mask).rectangle((90, 90, 240, 240), fill=255)
    damaged = compute(before, after, mask).ssim_outside
    clean = compute(before, with_box(before, (100, 100, 227, 227)), mask).ssim_outside
    assert clean > 0.99 and damaged < 0.95
    assert compute(before, after).ssim_outside > 0.97  # without the mask only the unchanged area counts


def test_different_sizes_are_compared_at_the_edit_size() -> None:
    before = photo((512, 384))
    after = photo((512, 384)).resize((1024, 768), Image.BICUBIC)
    found = compute(before, after)
    assert found.image.size == (1024, 768) and found.changed_fraction < 0.05


def test_kx_changes_on_a_journal_edit_fills_history(made: Callable[..., list[Result]]) -> None:
    (source,) = made(1)
    edit = kx.edit(source, "make it night", seed=3)
    assert isinstance(edit, Result)
    found = kx.changes(edit)
    assert 0 <= found.changed_fraction <= 1 and found.label == edit.ref
    row = {r["id"]: r for r in kx.history().rows()}[edit.journal_id]
    assert row["changed_fraction"] == pytest.approx(found.changed_fraction)
    assert row["phash_distance"] == found.phash_distance
    df = kx.history().to_pandas()
    assert str(df["changed_fraction"].dtype) == "Float64"
    assert "changed" in found._repr_mimebundle_()["text/html"]
    with pytest.raises(ValidationError, match="no source image"):
        kx.changes(source)


def test_a_plug_in_score_is_added_with_its_users_function(made: Callable[..., list[Result]]) -> None:
    calls: list[tuple[tuple[int, int], tuple[int, int]]] = []

    def mean_brightness_change(source: Image.Image, edit: Image.Image, mask: Image.Image | None) -> float:
        calls.append((source.size, edit.size))
        return float(np.asarray(edit.convert("L")).mean() - np.asarray(source.convert("L")).mean())

    kx.register_score("brightness", mean_brightness_change)
    try:
        before = photo()
        found = compute(before, with_box(before, (0, 0, 200, 200), "white"))
        assert found.scores["brightness"] > 0 and calls == [(before.size, before.size)]
        assert found.as_dict()["brightness"] == found.scores["brightness"]
    finally:
        kx.register_score("brightness", None)
    assert "brightness" not in SCORERS
    for bad in ("not a name", "ssim_outside"):
        with pytest.raises(ValidationError, match=repr(bad)):
            kx.register_score(bad, mean_brightness_change)
