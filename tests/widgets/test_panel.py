"""The panel driven from Python (values set, buttons clicked) against the sandbox, and %kontext panel."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import ipywidgets as w
import pytest
import waiting  # tests/waiting.py
from IPython.core.error import UsageError
from IPython.testing import globalipapp
from PIL import Image

import kontext_nb as kx
import kontext_nb.sandbox as sandbox
from kontext_nb import endpoints
from kontext_nb.endpoints import format_cost
from kontext_nb.errors import ValidationError
from kontext_nb.result import Result
from kontext_nb.session import Session
from kontext_nb.widgets import panel as panel_module
from kontext_nb.widgets import theme
from kontext_nb.widgets.controls import NO_DEFAULT, SWEEP_FIELDS, InputControls, control_for
from kontext_nb.widgets.create import CreateTab
from kontext_nb.widgets.panel import COMPARE, CREATE, HISTORY, Panel

T2I = endpoints.endpoint_for("text-to-image", "max")
EDIT = endpoints.endpoint_for("edit", "max")


wait_for = partial(waiting.wait_for, timeout=15.0)


def png(size: tuple[int, int] = (64, 48), colour: str = "teal") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


def upload(tab: CreateTab, *files: tuple[str, bytes]) -> None:
    """What the browser sends when files are chosen."""
    value = [
        {"name": name, "type": "image/png", "size": len(data), "content": memoryview(data), "last_modified": 0}
        for name, data in files
    ]
    tab.sources.upload.set_state({"value": value})


def shown_inputs(ep: endpoints.Endpoint) -> list[endpoints.Field]:
    return [f for f in ep.inputs if f.name != "prompt" and f.kind not in ("image", "images")]


@pytest.fixture
def create(session: Session) -> Iterator[CreateTab]:
    tab = CreateTab(session)
    yield tab
    tab.close()


@pytest.fixture
def panel(session: Session) -> Iterator[Panel]:
    p = Panel(session)
    yield p
    p.close()


def card_for(p: Panel, journal_id: int | None) -> Any:
    """The gallery card of a finished job (waits for it)."""
    return wait_for(lambda: next((c for c in p.gallery.cards if c.journal_id == journal_id and c.result), None))


# -- controls from the specs ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("ep", [T2I, EDIT, endpoints.endpoint_for("multi", "pro")], ids=lambda ep: ep.mode)
def test_controls_are_built_from_the_specs(ep: endpoints.Endpoint) -> None:
    controls = InputControls(ep)
    assert list(controls.controls) == [f.name for f in shown_inputs(ep)]
    for f in shown_inputs(ep):
        c = controls.controls[f.name]
        assert f.description in c.tooltip
        if f.name in SWEEP_FIELDS:
            assert isinstance(c, w.Text)
        elif f.kind == "enum":
            values = [v for _, v in c.options]
            assert values == ([] if f.has_default else [NO_DEFAULT]) + list(f.choices)
            assert c.value == (f.default if f.has_default else NO_DEFAULT)
        elif f.kind == "boolean":
            assert isinstance(c, w.Checkbox) and c.value == f.default
        elif f.kind == "integer":
            assert (c.min, c.max, c.value) == (f.minimum, f.maximum, f.default)
    values = controls.values()
    for f in shown_inputs(ep):
        if f.name != "seed":
            assert values[f.name] == (f.default if f.has_default else None), f.name
    assert isinstance(values["seed"], int) and values["seed"] >= ep.field("seed").minimum


def test_typed_numbers_are_checked_against_the_spec_ranges() -> None:
    controls = InputControls(T2I)
    guidance = T2I.field("guidance_scale")
    controls.controls["guidance_scale"].value = f"{guidance.minimum},{guidance.maximum}"
    assert controls.values()["guidance_scale"] == (guidance.minimum, guidance.maximum)
    for text in (str(guidance.maximum + 1), str(guidance.minimum - 0.5), "2,x"):
        controls.controls["guidance_scale"].value = text
        with pytest.raises(ValidationError) as info:
            controls.values()
        assert info.value.field == "guidance_scale"
    controls.controls["guidance_scale"].value = ""
    controls.controls["seed"].value = str(int(T2I.field("seed").minimum) - 2)  # -1 is "random"
    with pytest.raises(ValidationError) as info:
        controls.values()
    assert info.value.field == "seed"
    controls.controls["seed"].value = "1-4"
    assert controls.values()["seed"] == (1, 2, 3, 4)
    with pytest.raises(ValueError):
        control_for(EDIT.field("image_url"))


def test_switching_mode_rebuilds_only_what_differs(create: CreateTab) -> None:
    ratio = create.inputs.controls["aspect_ratio"]
    assert ratio.value == T2I.field("aspect_ratio").default
    create.inputs.controls["num_images"].value = 3
    create.mode.value = "edit"
    edit_ratio = create.inputs.controls["aspect_ratio"]
    assert edit_ratio.value == NO_DEFAULT and edit_ratio.label == "(keep the input's shape)"
    assert create.inputs.values()["aspect_ratio"] is None
    assert create.inputs.controls["num_images"].value == 3  # same spec: kept
    assert create.sources.widget.layout.display != "none"
    edit_ratio.value = "16:9"
    create.mode.value = "text-to-image"
    assert create.inputs.controls["aspect_ratio"].value == "16:9"  # a choice made survives the switch
    assert create.sources.widget.layout.display == "none"


# -- the Generate button --------------------------------------------------------------------------------------------
def test_generate_button_shows_the_cost_live(create: CreateTab) -> None:
    def expected(model: str, n: int) -> str:
        return (
            f"{n} image{'s' if n != 1 else ''} · {format_cost(endpoints.endpoint_for('text-to-image', model).cost(n))}"
        )

    assert expected("max", 1) in create.generate_button.description
    create.inputs.controls["num_images"].value = 2
    assert expected("max", 2) in create.generate_button.description
    create.model.value = "pro"
    assert expected("pro", 2) in create.generate_button.description
    assert "sweep" not in create.generate_button.description
    create.inputs.controls["seed"].value = "1-3"
    create.inputs.controls["guidance_scale"].value = "2,5"
    assert expected("pro", 12) + " (sweep)" in create.generate_button.description


def test_a_click_queues_a_job_and_returns_at_once(panel: Panel, sb: sandbox.SandboxServer, session: Session) -> None:
    sb.configure(inference_time=1.0)
    create = panel.create
    create.prompt.value = "a lighthouse at dusk"
    create.generate_button.click()
    assert len(create.jobs) == 1 and not create.jobs[0].done()  # back before a 1 s job could finish
    assert "queued" in create.status.value or "running" in create.status.value
    job = create.jobs[0]
    assert create.ticking and not create.cancel_button.disabled
    card = card_for(panel, job.journal_id)
    assert isinstance(card.result, Result) and card.result.seed == job.arguments["seed"]
    ids = [c.journal_id for c in panel.gallery.cards]  # the journal's earlier results follow the new one
    assert ids[0] == job.journal_id and ids.count(job.journal_id) == 1  # one card, not two
    assert session.record(job.journal_id).status == "done"
    wait_for(lambda: "done" in create.status.value and "Gallery" in create.status.value)
    wait_for(lambda: not create.ticking, timeout=3)
    assert create.cancel_button.disabled
    assert sb.stats()["submits"] == 1


# -- nothing sent when something is wrong ---------------------------------------------------------------------------
def _bad_guidance(tab: CreateTab) -> Any:
    tab.inputs.controls["guidance_scale"].value = f"2,{T2I.field('guidance_scale').maximum + 5}"
    return tab.inputs.errors["guidance_scale"]


def _empty_prompt(tab: CreateTab) -> Any:
    tab.prompt.value = "   "
    return tab.prompt_error


def _no_source(tab: CreateTab) -> Any:
    tab.mode.value = "edit"
    return tab.sources.error


def _corrupt_upload(tab: CreateTab) -> Any:
    tab.mode.value = "edit"
    upload(tab, ("broken.png", png()[:60]))
    return tab.sources.error


@pytest.mark.parametrize(
    ("spoil", "words"),
    [
        (_bad_guidance, "out of range"),
        (_empty_prompt, "prompt"),
        (_no_source, "choose the image"),
        (_corrupt_upload, "broken.png"),
    ],
    ids=["guidance-list", "empty-prompt", "edit-without-source", "corrupt-upload"],
)
def test_invalid_settings_are_shown_beside_the_field_and_nothing_is_sent(
    create: CreateTab, sb: sandbox.SandboxServer, spoil: Callable[[CreateTab], Any], words: str
) -> None:
    create.prompt.value = "a red fox"
    label = spoil(create)
    create.generate_button.click()
    assert words in label.value and f"color:{theme.ERROR}" in label.value
    assert create.jobs == []
    assert sb.stats()["submits"] == 0


def test_a_budget_stop_is_shown_in_the_tab(make_session: Callable[..., Session], sb: sandbox.SandboxServer) -> None:
    tab = CreateTab(make_session(budget_session=0.01))
    tab.prompt.value = "a red fox"
    tab.generate_button.click()
    assert "budget" in tab.error.value and tab.jobs == []
    assert sb.stats()["submits"] == 0
    tab.close()


def test_sources_from_uploads_and_paths(create: CreateTab, sb: sandbox.SandboxServer, tmp_path: Path) -> None:
    create.prompt.value = "put both on one sofa"
    create.mode.value = "multi"
    assert create.sources.upload.multiple
    upload(create, ("cat.png", png(colour="grey")), ("dog.png", png(colour="brown")))
    assert len(create.sources.preview.children) == 2 and create.sources.error.value == ""
    (job,) = create.generate()
    assert job.endpoint == endpoints.endpoint_for("multi", "max").id and len(job.arguments["image_urls"]) == 2
    create.mode.value = "edit"
    create.generate_button.click()
    assert "2 are chosen" in create.sources.error.value and len(create.jobs) == 1
    path = tmp_path / "photo.png"
    path.write_bytes(png((120, 90), "navy"))
    create.sources.paths.value = str(path)  # in edit mode the latest choice replaces the others
    assert len(create.sources.preview.children) == 1 and create.sources.upload.value == ()
    (edit,) = create.generate()
    assert edit.endpoint == EDIT.id and edit.result(10).inputs[0].size == (120, 90)
    assert job.result(10).journal_id is not None
    assert sb.stats()["submits"] == 2


# -- confirmation, cancel, seeds ------------------------------------------------------------------------------------
def test_a_run_above_the_threshold_asks_first(make_session: Callable[..., Session], sb: sandbox.SandboxServer) -> None:
    tab = CreateTab(make_session(confirm_above=0.05))
    tab.prompt.value = "a red fox"
    tab.generate_button.click()
    assert tab.confirm_row.layout.display != "none"
    assert format_cost(T2I.cost(1)) in tab.confirm_text.value and format_cost(0.05) in tab.confirm_text.value
    assert sb.stats()["submits"] == 0 and tab.jobs == []
    tab.no.click()
    assert tab.confirm_row.layout.display == "none"
    assert sb.stats()["submits"] == 0 and tab.jobs == []
    tab.generate_button.click()
    tab.yes.click()
    assert tab.confirm_row.layout.display == "none"
    assert len(tab.jobs) == 1
    tab.jobs[0].result(10)
    assert sb.stats()["submits"] == 1
    tab.close()


def test_cancel_stops_the_running_job_on_fal(create: CreateTab, sb: sandbox.SandboxServer) -> None:
    sb.configure(inference_time=2.0)
    create.prompt.value = "a slow painting"
    (job,) = create.generate()
    wait_for(lambda: job.state == "running")
    create.cancel_button.click()
    wait_for(job.done, timeout=5)
    assert job.state == "cancelled"
    wait_for(lambda: sb.stats()["cancelled"] == 1, timeout=5)
    wait_for(lambda: "cancelled" in create.status.value)


def test_seed_lock_and_randomize(create: CreateTab) -> None:
    seed = create.inputs.seed
    seed.value = "42"
    create.inputs.randomize.click()
    assert seed.value == "-1"  # -1: each run draws a seed
    create.prompt.value = "a red fox"
    seed.value = "42"
    create.inputs.seed_lock.value = True
    first = create.generate()
    second = create.generate()
    assert [j.arguments["seed"] for j in first + second] == [42, 42]
    assert seed.value == "42"
    create.inputs.seed_lock.value = False
    (third,) = create.generate()
    (fourth,) = create.generate()
    assert third.arguments["seed"] == 42 and fourth.arguments["seed"] != 42  # used, then a new one for the next run
    assert seed.value == str(fourth.arguments["seed"])  # the field shows the seed the last run used
    seed.value = "1,2"
    create.generate()
    assert seed.value == "1,2"  # a sweep's list is never replaced
    for job in create.jobs:
        job.result(10)


# -- the panel's wiring ---------------------------------------------------------------------------------------------
def test_use_as_input_from_a_gallery_card(panel: Panel, session: Session) -> None:
    panel.create.prompt.value = "a red fox"
    (first,) = panel.create.generate()
    card = card_for(panel, first.journal_id)
    panel.tab.selected_index = 1
    card.buttons["use"].click()
    assert panel.tab.selected_index == CREATE
    assert panel.create.mode.value == "edit"
    assert len(panel.create.sources.preview.children) == 1
    assert panel.create.sources.parent_id == first.journal_id
    panel.create.prompt.value = "make it snow"
    (edit,) = panel.create.generate()
    edit.result(10)
    record = session.record(edit.journal_id)
    assert record.parent_id == first.journal_id and record.mode == "edit"
    assert session.lineage(edit.journal_id)[0].id == first.journal_id
    card_for(panel, edit.journal_id).buttons["seed"].click()
    assert panel.create.inputs.seed.value == str(edit.result(0).seed) and panel.create.inputs.seed_lock.value


def test_a_sweep_runs_every_cell_and_shows_the_grid_in_compare(panel: Panel, sb: sandbox.SandboxServer) -> None:
    create = panel.create
    create.prompt.value = "a red fox"
    create.inputs.seed.value = "1,2"
    create.inputs.controls["guidance_scale"].value = "2,5"
    assert "4 images" in create.generate_button.description and "(sweep)" in create.generate_button.description
    jobs = create.generate()
    assert len(jobs) == 4
    assert sorted((j.arguments["seed"], j.arguments["guidance_scale"]) for j in jobs) == [
        (1, 2.0),
        (1, 5.0),
        (2, 2.0),
        (2, 5.0),
    ]
    wait_for(lambda: panel.tab.selected_index == COMPARE)
    assert sb.stats()["submits"] == 4
    shown = compare_html(panel)
    for text in ("seed 1", "seed 2", "guidance_scale"):
        assert text in shown


def compare_html(p: Panel) -> str:
    """Every HTML value inside the Compare tab."""
    out: list[str] = []

    def walk(widget: Any) -> None:
        if isinstance(widget, (w.HTML, w.HTMLMath)):
            out.append(widget.value)
        for child in getattr(widget, "children", ()):
            walk(child)

    walk(p.compare.widget)
    return "\n".join(out)


def test_load_record_fills_everything_back(session: Session, create: CreateTab, tmp_path: Path) -> None:
    source = tmp_path / "source.png"
    source.write_bytes(png((80, 60), "orange"))
    settings = {
        "seed": 7,
        "guidance_scale": 4.5,
        "num_images": 2,
        "output_format": "png",
        "safety_tolerance": "4",
        "enhance_prompt": False,
        "aspect_ratio": "16:9",
    }
    original = session.edit(str(source), "make it a watercolour", model="pro", **settings)
    assert isinstance(original, Result)
    create.load_record(original.journal_id)
    assert (create.mode.value, create.model.value) == ("edit", "pro")
    assert create.prompt.value == "make it a watercolour"
    values = create.inputs.values()
    assert {k: values[k] for k in settings} == settings
    assert create.inputs.seed_lock.value
    assert len(create.sources.images()) == 1 and len(create.sources.preview.children) == 1
    (again,) = create.generate()
    assert again.result(10).cached  # the same endpoint, inputs and image: the journal answers


def test_history_load_and_compare_buttons_switch_tabs(panel: Panel, session: Session) -> None:
    result = session.generate("a red fox", seed=3, aspect_ratio="4:3")
    assert isinstance(result, Result)
    card = card_for(panel, result.journal_id)
    card.buttons["compare"].click()
    assert panel.tab.selected_index == COMPARE and len(panel.compare.items) == 1
    other = session.generate("a blue fox", seed=4)
    assert isinstance(other, Result)
    panel.history.refresh()
    panel.history.page.act("compare", result.journal_id)
    assert panel.tab.selected_index == COMPARE and len(panel.compare.items) == 1  # waits for a second row
    panel.tab.selected_index = HISTORY
    panel.history.page.act("compare", other.journal_id)
    assert panel.tab.selected_index == COMPARE
    assert [r.journal_id for r in panel.compare.items] == [result.journal_id, other.journal_id]  # exactly those two
    panel.history.page.act("load", result.journal_id)
    assert panel.tab.selected_index == CREATE
    assert panel.create.prompt.value == "a red fox" and panel.create.inputs.seed.value == "3"
    assert panel.create.inputs.controls["aspect_ratio"].value == "4:3"


# -- one panel at a time --------------------------------------------------------------------------------------------
def test_a_new_panel_closes_the_previous_one(session: Session, sb: sandbox.SandboxServer) -> None:
    first = Panel(session)
    second = Panel(session)
    assert first.closed and not second.closed
    assert len(session._listeners) == 3  # only the second panel follows the session: gallery, header, newest result
    second.create.prompt.value = "a red fox"
    (job,) = second.create.generate()
    card_for(second, job.journal_id)
    assert first.gallery.cards == []
    assert [c.journal_id for c in second.gallery.cards].count(job.journal_id) == 1  # (after the journal's others)
    assert first.create.jobs == [] and not first.create.ticking
    assert sb.stats()["submits"] == 1
    second.close()
    assert session._listeners == [] and panel_module._current is None


def test_panel_rejects_unknown_arguments_and_displays_as_its_tab(panel: Panel) -> None:
    with pytest.raises(TypeError, match="colour"):
        Panel(panel.session, colour="red")
    assert not panel.closed
    assert list(panel.tab.titles) == ["Create", "Gallery", "Compare", "History", "Duel"]
    bundle = panel._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == panel.widget.model_id
    assert panel.widget.children[1] is panel.tab


# -- %kontext panel -------------------------------------------------------------------------------------------------
def test_kontext_panel_magic(
    make_session: Callable[..., Session], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    globalipapp.start_ipython()
    ip = globalipapp.get_ipython()
    monkeypatch.chdir(tmp_path)
    session = make_session()
    kx.set_session(session)
    ip.run_line_magic("load_ext", "kontext_nb")
    try:
        ip.magics_manager.registry["Kontext"].terminal = False  # as in a notebook (the test shell has no kernel)
        p = ip.run_line_magic("kontext", "panel")
        assert isinstance(p, Panel) and p.session is session
        with pytest.raises(UsageError, match="no arguments"):
            ip.run_line_magic("kontext", "panel now")
        p.close()
    finally:
        ip.run_line_magic("unload_ext", "kontext_nb")
        ip.config.pop("Kontext", None)


def test_header_says_where_jobs_go_and_what_was_spent(make_session) -> None:
    from kontext_nb.widgets.panel import Panel

    session = make_session()
    panel = Panel(session)
    try:
        assert "spent $0.00 this session" in panel.header.value and "via http://127.0.0.1" in panel.header.value
        session.generate("counted", seed=1)
        deadline = time.monotonic() + 5  # the header hears of the job's end on the engine thread, just after
        while "spent $0.08" not in panel.header.value and time.monotonic() < deadline:
            time.sleep(0.01)
        assert "spent $0.08 this session" in panel.header.value
        assert "test-key" not in panel.header.value
    finally:
        panel.close()


def test_the_compare_tab_exports_grids_into_the_configured_runs_folder(
    make_session: Callable[..., Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A grid whose cells all failed has no files to say where the runs folder is: the session's runs_dir decides,
    not KONTEXT_HOME or the current folder."""
    from kontext_nb.sweep import build_sweep
    from kontext_nb.views.grid import Grid

    monkeypatch.setenv("KONTEXT_HOME", str(tmp_path / "elsewhere"))
    session = make_session(runs_dir=str(tmp_path / "configured"))
    panel = Panel(session)
    try:
        sweep = build_sweep("a {cat|fox}", {"seed": "1"})
        panel.compare.show_grid(Grid(sweep, [RuntimeError("failed"), RuntimeError("failed")]))
        [saved] = panel.compare.export_grid()
        assert saved.parent == tmp_path / "configured" / "grids"
    finally:
        panel.close()


def test_a_rerun_from_a_card_is_kept_in_the_panels_record(panel: Panel, session: Session) -> None:
    """The saved notebook's record holds what was made in the panel: a Gallery card's "rerun" too, not only Create's
    Generate; a job made outside the panel (a magic, kx.generate) is not in it."""
    outside = session.generate("a lighthouse made in a cell", seed=5)
    card = card_for(panel, outside.journal_id)
    job = card.rerun()
    assert job is not None
    wait_for(lambda: [r.journal_id for r in panel.made] == [job.journal_id])
    assert outside.journal_id not in [r.journal_id for r in panel.made]


def test_a_result_that_ends_while_the_panel_is_shown_is_in_its_record(
    panel: Panel, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job ending on the engine's thread while the panel is being displayed: its result was added after the record
    was drawn but before the display handle was kept, so the saved record said "nothing yet" (a CI run's browser
    test). Here that thread adds it in the middle of the record's display."""
    import IPython.display

    result = session.generate("ends while the panel shows", seed=6)
    shown: list[str] = []
    adder: list[threading.Thread] = []

    class Handle:
        def update(self, obj: Any) -> None:
            shown.append(obj.data)

    def display(obj: Any, **kwargs: Any) -> Any:
        if not kwargs.get("display_id"):
            return None
        adder.append(threading.Thread(target=panel._add_to_record, args=(result,)))
        adder[0].start()
        adder[0].join(0.3)  # unlocked, it has finished by now; locked, it waits for the handle below
        shown.append(obj.data)
        return Handle()

    monkeypatch.setattr(panel_module, "_in_notebook", lambda: True)
    monkeypatch.setattr(IPython.display, "display", display)
    panel._ipython_display_()
    adder[0].join(10)
    assert "ends while the panel shows" in shown[-1] or f"@{result.journal_id}" in shown[-1], shown
