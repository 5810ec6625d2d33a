"""Issue 14 point 5, seen at 1400 px: Create's modes are one row of buttons, not three buttons and one left alone on
a second row, and the model picker (a searchable dropdown since issue 23) stays inside the form's column."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from waiting import wait_for  # tests/waiting.py

from .test_compare import FRONTS, open_in, run_first_cell
from .test_compare import write_notebook as write_one
from .test_lab import WAIT, Shot, button, cards, cell, open_notebook, outputs, pane, run_cell, tab
from .test_panel_views import narrow, no_sideways_scroll, write_notebook

if TYPE_CHECKING:
    from .conftest import Lab

try:
    from playwright.sync_api import Locator, Page, expect
except ImportError:  # the browser fixture fails with the install hint
    Locator = Page = Any  # type: ignore[misc,assignment]
    expect = None  # type: ignore[assignment]

pytestmark = pytest.mark.browser


def rows(group: Locator) -> list[float]:
    """The distinct tops of a ToggleButtons group's buttons."""
    tops = group.locator("button.widget-toggle-button").evaluate_all(
        "els => els.map(e => Math.round(e.getBoundingClientRect().top))"
    )
    return sorted(set(tops))


def test_mode_and_model_choices_sit_on_one_row(lab: Lab, page: Page, screenshot: Shot) -> None:
    if lab.mode != "offline":
        pytest.skip("the layout does not depend on where jobs go: offline mode covers it")
    write_notebook(lab, "layout.ipynb", ["import kontext_nb as kx\n\npanel = kx.Panel()\npanel"])
    open_notebook(page, lab, "layout.ipynb")
    run_cell(page, 0)
    panel = outputs(cell(page, 0)).locator(".widget-tab")
    expect(panel).to_be_visible(timeout=WAIT)
    groups = pane(panel).locator(".widget-toggle-buttons")
    expect(groups).to_have_count(1, timeout=WAIT)  # the models are a searchable dropdown (issue 23)
    mode, model = groups.nth(0), pane(panel).locator("select").first
    assert len(rows(mode)) == 1, f"the modes wrap onto {len(rows(mode))} rows"
    form_right = mode.evaluate("el => el.parentElement.getBoundingClientRect().right")
    model_right = model.evaluate("e => e.getBoundingClientRect().right")
    assert model_right <= form_right + 1, f"the model picker reaches {model_right}px, past the form at {form_right}px"
    screenshot(page, "14-create-choices-one-row")


def test_the_record_below_the_panel_keeps_each_caption_on_its_lines(lab: Lab, page: Page, screenshot: Shot) -> None:
    """'@1 · seed 1343134043' is one line under its thumbnail (it broke after 'seed'), and so are its links."""
    if lab.mode != "offline":
        pytest.skip("the layout does not depend on where jobs go: offline mode covers it")
    code = (
        "import kontext_nb as kx\n\npanel = kx.Panel()\npanel.create.prompt.value = 'a red fox in the snow'\n"
        "panel.create.set_seed(4294967295)\n[job.result(60) for job in panel.create.generate()]\npanel"
    )
    write_notebook(lab, "record-layout.ipynb", [code])
    open_notebook(page, lab, "record-layout.ipynb")
    run_cell(page, 0)
    caption = outputs(cell(page, 0)).locator(".kontext-record figcaption")
    expect(caption).to_have_count(1, timeout=WAIT)
    expect(caption).to_contain_text("seed 4294967295")
    lines = caption.evaluate(
        """el => { const r = document.createRange(); r.selectNodeContents(el);
                   return new Set([...r.getClientRects()].map(x => Math.round(x.top))).size }"""
    )
    assert lines == 2, f"the caption takes {lines} lines: '@ref · seed' and 'full size · download', one each"
    caption.scroll_into_view_if_needed()
    screenshot(page, "14-record-caption")


# the four edges of an element's outline (or box-shadow ring) and whether each lies inside what its nearest
# clipping ancestor shows (that box's padding box, less its scrollbars)
OUTLINE_EDGES = """el => {
    const s = getComputedStyle(el);
    const ring = s.outlineStyle !== 'none' ? parseFloat(s.outlineWidth) + parseFloat(s.outlineOffset) : 0;
    const r = el.getBoundingClientRect();
    let box = el.parentElement;
    while (box && getComputedStyle(box).overflowX === 'visible' && getComputedStyle(box).overflowY === 'visible')
        box = box.parentElement;
    const b = box.getBoundingClientRect();
    const left = b.left + box.clientLeft, top = b.top + box.clientTop;
    return {ring, left: r.left - ring >= left, top: r.top - ring >= top,
            right: r.right + ring <= left + box.clientWidth, bottom: r.bottom + ring <= top + box.clientHeight};
}"""

# how wide a textarea's placeholder is on one line, and how wide the textarea's text area is
PLACEHOLDER_FIT = """el => {
    const s = getComputedStyle(el), c = document.createElement('canvas').getContext('2d');
    c.font = `${s.fontStyle} ${s.fontWeight} ${s.fontSize} ${s.fontFamily}`;
    return {text: Math.ceil(c.measureText(el.placeholder).width),
            room: el.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight)};
}"""

# a button's width, and the width its label (icon and text) needs with the button's padding and borders
BUTTON_FIT = """el => {
    const s = getComputedStyle(el), range = document.createRange();
    range.selectNodeContents(el);
    const needs = range.getBoundingClientRect().width + parseFloat(s.paddingLeft) + parseFloat(s.paddingRight)
        + parseFloat(s.borderLeftWidth) + parseFloat(s.borderRightWidth);
    return {width: el.getBoundingClientRect().width, needs: Math.ceil(needs)};
}"""

# each filter: its width, where its label ends within it and the gap from the label to its field
LABEL_EDGES = """(el, names) => names.map(name => {
    const label = [...el.querySelectorAll('.widget-label')].find(l => l.textContent.trim() === name);
    const r = label.getBoundingClientRect(), field = label.nextElementSibling.getBoundingClientRect();
    const whole = label.parentElement.getBoundingClientRect();
    return {name, width: Math.round(whole.width), right: Math.round(r.right - whole.left),
            gap: Math.round(field.left - r.right)};
})"""


def layout_notebook(runs: Path) -> str:
    """Two results from the journal and one made in the panel (a new card): a gallery with a full row."""
    return (
        "import kontext_nb as kx\n\n"
        f"kx.configure(runs_dir={str(runs)!r})\n"
        "kx.generate('an old lighthouse', seed=1)\nkx.generate('a quiet harbour', seed=2)\n"
        "panel = kx.Panel()\npanel.create.prompt.value = 'a red fox in the snow'\n"
        "[job.result(60) for job in panel.create.generate()]\n"
        "panel.tab.selected_index = 1\npanel"
    )


@pytest.mark.parametrize("lab", ["offline"], indirect=True)  # where jobs go does not change the layout
@pytest.mark.parametrize("front", FRONTS)
def test_gallery_create_compare_and_history_fit_their_columns(
    lab: Lab, page: Page, screenshot: Shot, front: str
) -> None:
    """Issue 14 point 5, the walkthrough's defects: a new card's outline shows on all four sides; at 900 px two
    cards share a row; the model picker (Kontext's four first) is inside the form's column and the sources'
    placeholder fits its field; Compare's "clear" is as wide as its label; History's filter labels line up."""
    name = f"layout-{front}.ipynb"
    write_one(lab, name, layout_notebook(lab.base / f"runs-layout-{front}"))
    open_in(page, lab, front, name)
    run_first_cell(page)
    panel = outputs(page.locator(".jp-Notebook .jp-Cell").first).locator(".widget-tab")
    expect(panel).to_be_visible(timeout=WAIT)
    expect(cards(panel)).to_have_count(3, timeout=WAIT)
    new = panel.locator(".kontext-card.kontext-new")
    expect(new).to_have_count(1, timeout=WAIT)
    edges = new.evaluate(OUTLINE_EDGES)
    screenshot(page, f"14-layout-gallery-{front}-1400")
    assert edges["ring"] > 0 and all(edges[s] for s in ("left", "top", "right", "bottom")), (
        f"the new card's outline is clipped by the grid: {edges}"
    )

    tab(panel, "Create").click()
    pane(panel).locator("button.widget-toggle-button[data-value='edit']").click()
    model = pane(panel).locator("select").first  # the model picker (issue 23): Kontext's four first
    expect(model).to_have_value(re.compile(r"^max · "), timeout=WAIT)
    first_four = r"els => els.slice(0, 4).map(e => e.textContent.split(/\s·\s/)[0])"
    edit_models = ["max", "pro", "dev", "lora"]  # text-to-image's list (no [dev]) shows until the switch lands
    wait_for(lambda: model.locator("option").evaluate_all(first_four) == edit_models, timeout=WAIT / 1000)
    mode = pane(panel).locator(".widget-toggle-buttons").first
    form_right = mode.evaluate("el => el.parentElement.getBoundingClientRect().right")
    model_right = model.evaluate("e => e.getBoundingClientRect().right")
    paths = pane(panel).get_by_placeholder(re.compile("one per line")).locator("visible=true")
    fit = paths.evaluate(PLACEHOLDER_FIT)
    screenshot(page, f"14-layout-create-edit-{front}-1400")
    assert model_right <= form_right + 1, f"the models reach {model_right}px, past the form's column at {form_right}px"
    assert fit["text"] <= fit["room"], f"the sources' placeholder needs {fit['text']}px, its field has {fit['room']}"

    tab(panel, "Compare").click()
    clear = button(pane(panel), "clear")
    expect(clear).to_be_visible()
    size = clear.evaluate(BUTTON_FIT)
    screenshot(page, f"14-layout-compare-{front}-1400")
    assert size["width"] <= size["needs"] + 2, f"'clear' is {size['width']}px wide for a label needing {size['needs']}"

    tab(panel, "History").click()
    expect(pane(panel).locator(".kx-history-row")).to_have_count(3, timeout=WAIT)
    labels = pane(panel).evaluate(LABEL_EDGES, ["search", "seed", "model", "tag", "since"])
    screenshot(page, f"14-layout-history-{front}-1400")
    for key in ("width", "right", "gap"):  # columns as wide, labels ending at one place in each: they line up
        values = [lb[key] for lb in labels]
        assert max(values) - min(values) <= 1, f"the filters differ in {key}: {labels}"

    narrow(page, panel)
    no_sideways_scroll(panel)
    screenshot(page, f"14-layout-history-{front}-900")
    tab(panel, "Gallery").click()
    expect(cards(panel)).to_have_count(3)
    tops = cards(panel).evaluate_all("els => els.map(e => Math.round(e.getBoundingClientRect().top))")
    screenshot(page, f"14-layout-gallery-{front}-900")
    widths = cards(panel).first.evaluate(
        "e => [e.closest('.kontext-gallery-grid').clientWidth, Math.round(e.getBoundingClientRect().width)]"
    )
    assert tops[0] == tops[1], f"at 900 px one card per row (card tops {tops}; grid and card widths {widths})"
    no_sideways_scroll(panel)
    for name_ in ("Create", "Compare"):
        tab(panel, name_).click()
        no_sideways_scroll(panel)
        screenshot(page, f"14-layout-{name_.lower()}-{front}-900")
