"""Issue 14: the Create tab shows its newest result beside the form; controls people expect from other tools."""

from __future__ import annotations

import io
from collections.abc import Iterator
from functools import partial

import ipywidgets as w
import pytest
import waiting  # tests/waiting.py
from PIL import Image

import kontext_nb.sandbox as sandbox
from kontext_nb import endpoints
from kontext_nb.result import Result
from kontext_nb.session import Session
from kontext_nb.widgets.controls import NO_DEFAULT, InputControls
from kontext_nb.widgets.create import CreateTab
from kontext_nb.widgets.panel import COMPARE, CREATE, Panel

T2I = endpoints.endpoint_for("text-to-image", "max")
wait_for = partial(waiting.wait_for, timeout=15.0)


def png(colour: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), colour).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def panel(session: Session) -> Iterator[Panel]:
    p = Panel(session)
    yield p
    p.close()


def walk(widget: w.Widget) -> Iterator[w.Widget]:
    yield widget
    for child in getattr(widget, "children", ()):
        yield from walk(child)


# -- the newest result beside the form -------------------------------------------------------------------------------
def test_the_newest_result_shows_beside_the_form(panel: Panel) -> None:
    create = panel.create
    assert create.result_view.widget in create.widget.children  # beside the form, not in another tab
    create.prompt.value = "a red fox"
    create.inputs.controls["num_images"].value = 2
    (job,) = create.generate()
    result = job.result(10)
    wait_for(lambda: create.result_view.result is not None)
    view = create.result_view
    assert len(view.images.children) == 2  # every image, not only the first
    assert f"seed {result.seed}" in view.caption.value
    assert set(view.buttons) >= {"use", "seed", "rerun", "compare"}
    assert "download" in view.links.value
    view.buttons["seed"].click()
    assert create.inputs.seed.value == str(result.seed) and create.inputs.seed_lock.value
    view.buttons["compare"].click()
    assert panel.tab.selected_index == COMPARE
    view.buttons["use"].click()
    assert panel.tab.selected_index == CREATE and create.mode.value == "edit"
    (again,) = view.rerun()
    assert again.arguments["prompt"] == "a red fox" and again.arguments["seed"] != result.seed
    wait_for(lambda: view.result is not None and view.result.journal_id == again.journal_id)


def test_a_huge_result_is_one_line_in_the_panel(panel: Panel, sb: sandbox.SandboxServer) -> None:
    """A result of 13000x13000 (the sandbox's 'huge' media fault): the newest view and the gallery card show no
    picture, and the view says in one line why and where the file is; nothing is decoded whole."""
    sb.set_faults([{"route": "media", "kind": "huge", "count": 1}])
    create = panel.create
    create.prompt.value = "a picture that decodes to 680 MB"
    (job,) = create.generate()
    result = job.result(60)
    wait_for(lambda: create.result_view.result is not None)
    (line,) = create.result_view.images.children
    assert isinstance(line, w.HTML) and "13000x13000 (169 megapixels)" in line.value
    assert "no preview; the file is" in line.value and str(result.files[0]) in line.value
    card = next(c for c in panel.gallery.cards if c.journal_id == result.journal_id)
    wait_for(lambda: card.result is not None)
    assert "Traceback" not in create.error.value + create.status.value and not create.error.value
    assert result._decoded is None  # never decoded whole


# -- controls ------------------------------------------------------------------------------------------------------
def test_the_seed_field_shows_the_seed_the_last_job_used(session: Session) -> None:
    create = CreateTab(session)
    try:
        seed = create.inputs.seed
        assert seed.value == "-1"  # random, as in AUTOMATIC1111
        create.prompt.value = "a red fox"
        (first,) = create.generate()
        assert seed.value == str(first.arguments["seed"])  # the seed used, not the next random one
        (second,) = create.generate()  # unlocked: a new random seed each run
        assert second.arguments["seed"] != first.arguments["seed"]
        assert seed.value == str(second.arguments["seed"])
        seed.value = "42"
        create.inputs.seed_lock.value = True
        runs = create.generate() + create.generate()
        assert [j.arguments["seed"] for j in runs] == [42, 42]
        create.inputs.randomize.click()
        assert seed.value == "-1" and not create.inputs.seed_lock.value
        for job in create.jobs:
            job.result(10)
    finally:
        create.close()


def test_guidance_is_a_slider_with_its_number() -> None:
    controls = InputControls(T2I)
    slider = controls.sliders["guidance_scale"]
    assert isinstance(slider, w.FloatSlider)
    slider.value = 6.5
    assert controls.controls["guidance_scale"].value == "6.5" and controls.values()["guidance_scale"] == 6.5
    controls.controls["guidance_scale"].value = "2.5"
    assert slider.value == 2.5
    controls.controls["guidance_scale"].value = "2,5"  # a sweep still types a list
    assert controls.values()["guidance_scale"] == (2.0, 5.0)


def test_aspect_ratio_shows_its_shape_and_sync_mode_is_advanced() -> None:
    controls = InputControls(T2I)
    controls.controls["aspect_ratio"].value = "16:9"
    assert "width:32px;height:18px" in controls.shape.value
    controls.controls["aspect_ratio"].value = "9:16"
    assert "width:18px;height:32px" in controls.shape.value
    advanced = controls.advanced
    assert isinstance(advanced, w.Accordion) and advanced.titles == ("advanced",)
    assert any(c is controls.controls["sync_mode"] for c in walk(advanced))
    assert not any(c is controls.controls["sync_mode"] for row in controls.widget.children[:-1] for c in walk(row))


def test_switching_to_edit_leaves_the_aspect_ratio_unset(session: Session) -> None:
    create = CreateTab(session)
    try:
        create.inputs.controls["aspect_ratio"].value = "16:9"
        create.mode.value = "edit"
        assert create.inputs.controls["aspect_ratio"].value == NO_DEFAULT  # fal keeps the input's shape
    finally:
        create.close()


def test_a_multi_reference_source_can_be_removed_and_is_not_added_twice(panel: Panel, session: Session) -> None:
    a = session.generate("a cat", seed=1)
    b = session.generate("a sofa", seed=2)
    assert isinstance(a, Result) and isinstance(b, Result)
    create = panel.create
    create.mode.value = "multi"
    create.use_as_input(a)
    create.use_as_input(b)
    create.use_as_input(a)
    assert [e.label for e in create.sources.entries] == [a.ref, b.ref]
    assert "already" in create.sources.error.value
    create.sources.remove(0)
    assert [e.label for e in create.sources.entries] == [b.ref]
    assert len(create.sources.preview.children) == 1


def test_the_prompt_recalls_earlier_prompts_newest_first(session: Session) -> None:
    """Issue 22 point 6: ↑ / ↓ in the prompt bring back the journal's prompts (the browser steps through them)."""
    for prompt in ("an old lighthouse", "a quiet harbour", "an old lighthouse"):
        session.generate(prompt, seed=1)
    tab = CreateTab(session)
    try:
        assert tab.recall.prompts[:2] == ["an old lighthouse", "a quiet harbour"], "newest first, each once"
        tab.prompt.value = "a red fox in the snow"
        sent = tab.generate()
        assert sent and tab.recall.prompts[0] == "a red fox in the snow"
    finally:
        tab.close()


def test_the_newest_result_follows_magics_sweeps_and_kx_generate(session: Session) -> None:
    """Issue 22 point 6: a result made outside the Create tab (kx.generate here) shows beside the form too."""
    panel = Panel(session)
    try:
        made = session.generate("a lighthouse made from code", seed=5)
        assert isinstance(made, Result)
        waiting.wait_for(lambda: panel.create.result_view.result is not None)
        assert panel.create.result_view.result.journal_id == made.journal_id  # type: ignore[union-attr]
    finally:
        panel.close()


def test_a_dropped_or_pasted_image_becomes_the_source(session: Session) -> None:
    """Issue 22 point 6: an image file dropped on Create (or pasted) is the source of the next edit."""
    create = CreateTab(session)
    try:
        out = io.BytesIO()
        Image.new("RGB", (64, 48), (200, 30, 30)).save(out, "PNG")
        create.drop._message(create.drop, {"type": "image", "name": "red.png"}, [memoryview(out.getvalue())])
        assert create.mode.value == "edit" and len(create.sources.entries) == 1
        create.drop._message(create.drop, {"type": "image", "name": "notes.txt"}, [memoryview(b"not an image")])
        assert len(create.sources.entries) == 1, "a file that is not an image is refused, the source stays"
    finally:
        create.close()


def test_a_run_says_how_long_runs_of_its_model_usually_take(session: Session) -> None:
    """Issue 22 point 6: a progress estimate from the journal's own timings for the endpoint."""
    for seed in (1, 2, 3):
        session.generate("a timed lighthouse", seed=seed)
    tab = CreateTab(session)
    try:
        tab.prompt.value = "a lighthouse, timed again"
        (job,) = tab.generate()
        assert tab._batch is not None and tab._batch.estimate.startswith("usually")
        job.result(30)
    finally:
        tab.close()
