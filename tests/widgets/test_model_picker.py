"""Issue 23 part 1: the Create tab's searchable model picker (Kontext first and the default) and its controls,
generated from each model's schema; the price shown comes from models.bound; switching model keeps prompt and
sources and says what the new model does not take. Driven from Python against the sandbox."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import ipywidgets as w
import pytest
from declared import prices_declared  # tests/declared.py
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from kontext_nb import endpoints, models
from kontext_nb.endpoints import format_cost
from kontext_nb.sandbox import schema
from kontext_nb.session import Session
from kontext_nb.widgets.controls import NO_DEFAULT, SWEEP_FIELDS, InputControls, shown
from kontext_nb.widgets.create import CreateTab
from kontext_nb.widgets.model_picker import options_for, serving

SNAPSHOT = models.registry().all()


def png(size: tuple[int, int] = (1024, 1024)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, "teal").save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def create(session: Session) -> Iterator[CreateTab]:
    tab = CreateTab(session)
    yield tab
    tab.close()


def names(tab: CreateTab) -> list[str]:
    return [v for _, v in tab.model.options]


@pytest.mark.parametrize("mode", endpoints.MODES)
def test_every_model_serving_a_mode_is_offered_kontext_first(mode: str) -> None:
    offered = serving(mode)
    kontext = list(endpoints.models_for(mode))
    assert [v for _, v in options_for(mode)][: len(kontext)] == kontext
    others = {m.endpoint_id for m in SNAPSHOT if m.mode == mode and m.endpoint_id not in endpoints.ENDPOINTS}
    assert others <= {m.endpoint_id for m in offered}


def test_search_by_alias_title_endpoint_id_and_category(create: CreateTab) -> None:
    assert create.model.value == "max" and create.mode.value == "text-to-image"
    create.mode.value = "edit"
    assert names(create)[0] == "max" and create.model.value == "max"
    create.model_search.value = "seedream"
    assert set(names(create)) == {"seedream4-edit", "seedream45-edit"}
    create.model_search.value = "fal-ai/flux-2-flex/edit"
    assert names(create) == ["flux2-flex-edit"] and create.model.value == "flux2-flex-edit"
    create.model_search.value = "FLUX.2 [flex]"  # the title, any case
    assert names(create) == ["flux2-flex-edit"]
    create.model_search.value = "image-to-image kontext"  # a category, and every word must match
    assert names(create)[:3] == ["max", "pro", "dev"] and "seedream4-edit" not in names(create)
    create.model_search.value = "no such model"
    assert "no edit model matches" in create.picker.note.value and names(create)  # something stays to send
    create.mode.value = "text-to-image"
    create.model_search.value = "inpaint"
    assert "inpaint" in create.picker.note.value  # found in another mode: said where


@pytest.mark.parametrize("model", SNAPSHOT, ids=lambda m: m.alias)
def test_controls_are_generated_from_the_schema(model: models.Model) -> None:
    controls = InputControls(model)
    assert list(controls.controls) == [f.name for f in shown(model)]
    for f in shown(model):
        c = controls.controls[f.name]
        assert " ".join(f.description.split()) in c.tooltip
        if f.name in SWEEP_FIELDS:
            assert isinstance(c, w.Text)
        elif f.kind in ("enum", "size") and f.enum:
            listed = f.has_default and str(f.default) in [str(v) for v in f.enum]  # else: fal's default, sent as none
            assert [v for _, v in c.options] == ([] if listed else [NO_DEFAULT]) + [str(v) for v in f.enum]
        elif f.kind == "boolean":
            assert isinstance(c, w.Checkbox) and c.value == bool(f.default if f.has_default else False)
        elif f.kind in ("integer", "float") and f.minimum is not None and f.maximum is not None and f.has_default:
            assert (c.min, c.max, c.value) == (f.minimum, f.maximum, f.default)
            if f.kind == "float":
                assert controls.sliders[f.name].max == f.maximum
    values = controls.values()
    for f in shown(model):
        if f.kind == "loras":
            assert (values[f.name] or []) == list(f.default or []), f.name
        elif f.kind in ("enum", "size") and f.has_default and str(f.default) not in [str(v) for v in f.enum]:
            assert values[f.name] is None, f.name  # a {width, height} default: nothing sent, fal uses it
        elif f.name != "seed" and f.has_default and f.default is not None:
            assert values[f.name] == f.default, f.name
        elif f.name != "seed" and f.kind in ("integer", "float", "string", "enum", "size"):
            assert values[f.name] is None, f.name  # nothing typed: fal's choice, never a 0 or ""
    assert ("seed" in controls.controls) == model.takes_seed


def test_switching_model_keeps_prompt_and_sources_and_says_what_is_left_out(create: CreateTab) -> None:
    create.mode.value = "edit"
    create.prompt.value = "make it winter"
    create.sources.set([png((512, 512))])
    create.inputs.controls["enhance_prompt"].value = True
    create.model.value = "flux2-flex-edit"
    assert create.prompt.value == "make it winter" and len(create.sources.entries) == 1
    assert "does not take enhance_prompt" in create.picker.note.value
    assert "aspect_ratio" not in create.picker.note.value  # left at its default: nothing to say
    assert "image_size" in create.inputs.controls and "enhance_prompt" not in create.inputs.controls
    assert create.sources.multiple  # FLUX.2 [flex] edit takes several sources
    assert create.picker.about.titles[0] == "about flux2-flex-edit: FLUX.2 [flex] Edit"  # its help, one fold away
    unpriced = [m for m in serving("edit") if models.can_price(m) is not None]
    assert unpriced, "every edit model is priced now: this check needs a model fal publishes no price for"
    create.model.value = create.picker.options_name(unpriced[0])
    assert "no price" in create.picker.note.value and "price not published" in create.generate_button.description


def test_the_price_shown_is_the_registrys_bound(create: CreateTab) -> None:
    create.mode.value = "edit"
    create.prompt.value = "make it winter"
    create.sources.set([png((1024, 1024))])
    create.model.value = "flux2-flex-edit"
    model = models.get("fal-ai/flux-2-flex/edit")
    args = {k: v for k, v in create.inputs.values().items() if v is not None and k != "seed"}
    expected = models.bound(model, {"prompt": "make it winter", **args}, [(1024, 1024)])
    assert f"up to {format_cost(expected)}" in create.generate_button.description
    create.model.value = "max"
    assert create.generate_button.description.endswith(f"· {format_cost(0.08)}")


@pytest.fixture
def priced() -> Iterator[None]:
    with prices_declared(0.05, [m.endpoint_id for m in SNAPSHOT]):
        yield


@pytest.mark.parametrize("name", ["flux2-flex-edit", "seedream4-edit"])
def test_other_editors_are_sent_from_the_panel_through_the_sandbox(
    create: CreateTab, sb: Any, priced: None, name: str
) -> None:
    model = models.get(name)
    create.mode.value = "edit"
    create.model.value = name
    create.prompt.value = "make it winter"
    create.sources.set([png((256, 192))])
    [job] = create.generate()
    result = job.result(30)
    assert job.endpoint == model.endpoint_id and result.image.size[0] > 0
    sent = sb.request_info(job.request_id)["arguments"]
    assert set(sent) <= set(model.input_names) and model.source_field is not None and model.source_field.name in sent


IMAGE = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4//8/AAX+Av4N70a4AAAAAElFTkSuQmCC"
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(SNAPSHOT), st.randoms(use_true_random=False)), min_size=1, max_size=4))
def test_whatever_is_switched_and_set_the_controls_send_what_the_schema_accepts(steps: list[Any]) -> None:
    """Property: after any sequence of model switches and choices, the controls are the model's inputs in fal's
    order and what they send passes the model's own validator (the sandbox's, as fal validates)."""
    controls = InputControls(steps[0][0])
    for model, rnd in steps:
        controls.set_endpoint(model)
        assert list(controls.controls) == [f.name for f in shown(model)]
        for name, control in controls.controls.items():  # a choice in every dropdown and checkbox
            if isinstance(control, w.Dropdown):
                control.value = rnd.choice([v for _, v in control.options])
            elif isinstance(control, w.Checkbox) and name != "sync_mode":
                control.value = rnd.random() < 0.5
        values = {k: v for k, v in controls.values().items() if v is not None}
        body: dict[str, Any] = {"prompt": "a lighthouse", **values}
        for f in model.inputs:
            if f.required and f.kind in ("image", "images"):
                body[f.name] = IMAGE if f.kind == "image" else [IMAGE] * max(1, f.min_items or 1)
        _, errors = schema.validate(model.endpoint_id, body)
        assert errors == [], (model.alias, errors)
