"""Issue 14 point 5, seen at 1400 px: each row of choices in Create (mode, model) is one row of buttons, not three
buttons and one left alone on a second row. (Edit mode's four models with their prices are wider than the form's
column at 1400 px and still take two rows.)"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from .test_lab import WAIT, Shot, cell, open_notebook, outputs, pane, run_cell
from .test_panel_views import write_notebook

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
    expect(groups).to_have_count(2, timeout=WAIT)
    mode, model = groups.nth(0), groups.nth(1)
    assert len(rows(mode)) == 1, f"the modes wrap onto {len(rows(mode))} rows"
    assert len(rows(model)) == 1, f"the models wrap onto {len(rows(model))} rows"
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
