"""Issue 23 part 3: a model's help is generated from the registry (fields, defaults, ranges, price rule, provenance):
HTML in a notebook, a plain text table in a terminal, through %kontext help MODEL and kx.model(name)."""

from __future__ import annotations

import html

import pytest
from shell import Shell  # tests/shell.py

from kontext_nb import models
from kontext_nb.models.help import allowed, help_html, help_text, price_text

SNAPSHOT = models.registry().endpoint_ids()


@pytest.mark.parametrize("endpoint_id", SNAPSHOT)
def test_every_field_default_range_price_and_source_is_shown(endpoint_id: str) -> None:
    model = models.get(endpoint_id)
    text, page = help_text(model), help_html(model)
    for f in model.inputs:
        row = next(line for line in text.splitlines() if line.startswith(f.name + " "))
        assert f.kind in row and allowed(f)[:30] in row, row
        if f.has_default and f.default not in (None, True, False):
            assert f"  {f.default}  " in row, row
        if f.minimum is not None and f.maximum is not None:
            assert "from" in row and "to" in row
        assert html.escape(f.name) in page and html.escape(" ".join(f.description.split())) in page
    assert model.endpoint_id in text and price_text(model) in text
    assert str(model.provenance["schema"])[:40] in text and str(model.provenance["schema_retrieved"]) in text
    for fact in model.provenance.get("not_published") or ():
        assert str(fact) in text and html.escape(str(fact)) in page
    if model.pricing is None:
        assert "not published" in price_text(model) and "kx.set_price" in price_text(model)
    else:
        assert f"${model.pricing.unit_price:g}" in price_text(model) or "dearest" in price_text(model)
    assert "<script" not in page


def test_price_rules_read_as_words() -> None:
    assert "input + output" in price_text(models.get("flux2-flex-edit"))
    assert "first megapixel" in price_text(models.get("flux2-max-edit"))
    assert "resolution" in price_text(models.get("nano-banana-2-edit"))
    assert price_text(models.get("max")) == "$0.08 per image"


def test_help_magic_shows_html_in_a_notebook_and_text_in_a_terminal(shell: Shell) -> None:
    shown = shell.line("help flux2-flex-edit")
    assert shown == models.get("flux2-flex-edit")  # the model itself: kx.model(name) shows the same
    data, _ = shell.ip.display_formatter.format(shown)
    assert "<table" in data["text/html"] and "image_urls" in data["text/html"]
    assert data["text/plain"] == help_text(shown) and "fal-ai/flux-2-flex/edit" in data["text/plain"]
    message = shell.usage_error("help seedream-v4-edit")
    assert "seedream4-edit" in message  # the registry's did-you-mean, one line
