"""The recorded cost of a model priced by input and output megapixels, when fal sends no billable units."""

from __future__ import annotations

import pytest

from kontext_nb import endpoints
from kontext_nb.fal.collect import billed_cost
from kontext_nb.images import ImageInput


def _source(size: tuple[int, int] | None) -> ImageInput:
    return ImageInput("photo.png", url="https://example.com/photo.png", size=size)


def test_the_sources_megapixels_are_billed_too() -> None:
    ep = endpoints.get_endpoint("fal-ai/flux-2-flex/edit")
    arguments = {"prompt": "winter", "image_urls": [_source((1024, 1024)), _source((2048, 1024))]}
    # fal's rule: $0.05 a megapixel of every input and of the output (1 + 2 + 1 MP)
    assert billed_cost(ep, [(1024, 1024)], None, arguments) == pytest.approx(0.05 * 4)


def test_a_source_of_unknown_size_is_never_billed_under() -> None:
    ep = endpoints.get_endpoint("fal-ai/flux-2-flex/edit")
    known = billed_cost(ep, [(1024, 1024)], None, {"prompt": "p", "image_urls": [_source((1024, 1024))]})
    unknown = billed_cost(ep, [(1024, 1024)], None, {"prompt": "p", "image_urls": [_source(None)]})
    assert unknown > known


def test_fals_units_win_when_sent() -> None:
    ep = endpoints.get_endpoint("fal-ai/flux-2-flex/edit")
    arguments = {"prompt": "winter", "image_urls": [_source(None)]}
    assert billed_cost(ep, [(1024, 1024)], 3.0, arguments) == pytest.approx(0.15)
