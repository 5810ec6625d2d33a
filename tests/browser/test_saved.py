"""Issue 14: a saved notebook keeps the images. Run a panel and a --bg cell in JupyterLab, save, shut the kernel
down, drop the widget state (a reader who has neither), reopen in Chromium: the images are still there."""

from __future__ import annotations

import json
import re
import time
from typing import TYPE_CHECKING, Any

import pytest

from .test_lab import WAIT, WIDGET_STATE, Shot, assert_picture, cell, open_notebook, outputs, run_cell, save_notebook
from .test_panel_views import kernel_call, kernel_of, make_one, write_notebook

if TYPE_CHECKING:
    from .conftest import Lab

try:
    from playwright.sync_api import Page, expect
except ImportError:  # the browser fixture fails with the install hint
    Page = Any  # type: ignore[misc,assignment]
    expect = None  # type: ignore[assignment]

pytestmark = pytest.mark.browser

NAME = "saved.ipynb"
CELLS = [
    "import kontext_nb as kx\n\n%load_ext kontext_nb\npanel = kx.Panel()\npanel",
    "%kontext a lighthouse at night --seed 3 --bg -o night",
]


def test_save_shut_down_reopen_keeps_the_images(lab: Lab, page: Page, browser: Any, screenshot: Shot) -> None:
    if lab.mode != "offline":
        pytest.skip("what a saved notebook keeps does not depend on where jobs go: offline mode covers it")
    write_notebook(lab, NAME, CELLS)
    open_notebook(page, lab, NAME)
    run_cell(page, 0)
    panel = outputs(cell(page, 0)).locator(".widget-tab")
    expect(panel).to_be_visible(timeout=WAIT)
    made = make_one(page, panel, "a red fox in the snow, watercolor")
    seed = re.search(r"seed (\d+)", made.inner_text())
    assert seed is not None
    record = outputs(cell(page, 0)).locator(".kontext-record")
    expect(record).to_contain_text(f"seed {seed[1]}", timeout=WAIT)  # the record below the panel, as jobs finish

    bg = run_cell(page, 1)
    expect(outputs(bg).locator("img[src^='data:image/']")).to_have_count(1, timeout=WAIT)
    expect(outputs(bg).locator(".jupyter-widgets")).to_have_count(0)  # the Cancel widget is gone
    save_notebook(page, lab, NAME)
    kernel_call(lab, "DELETE", kernel_of(lab, NAME))

    saved = json.loads((lab.root / NAME).read_text())
    saved["metadata"].pop("widgets", None)  # a reader with no widget state
    (lab.root / NAME).write_text(json.dumps(saved, indent=1))
    assert WIDGET_STATE not in json.dumps(saved)

    reader = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        reader.goto(lab.notebook_url(NAME))
        expect(reader.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").first).to_be_visible(timeout=WAIT)
        time.sleep(2.0)
        kept = outputs(cell(reader, 0)).locator(".kontext-record img[src^='data:image/']")
        expect(kept).to_have_count(1, timeout=WAIT)
        assert_picture(reader, kept.first)
        expect(outputs(cell(reader, 0)).locator(".kontext-record")).to_contain_text(f"seed {seed[1]}")
        shown = cell(reader, 0).inner_text()
        assert "VBox(" not in shown and "needs a running kernel" in shown  # a sentence, not a widget's repr
        night = outputs(cell(reader, 1)).locator("img[src^='data:image/']")
        assert_picture(reader, night.first)
        expect(outputs(cell(reader, 1))).to_contain_text("seed 3")
        expect(outputs(cell(reader, 1))).not_to_contain_text("Error displaying widget")
        screenshot(reader, "14-saved-reopened-without-kernel")
    finally:
        reader.close()
