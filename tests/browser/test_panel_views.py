"""Issue 14 in a real JupyterLab 4 and Notebook 7 (offline mode): the newest result beside the Create form, a
Gallery filled from the journal after a kernel restart, and the panel's layout at 1400 and 900 px wide."""

from __future__ import annotations

import json
import re
import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from .test_lab import (
    PROMPT,
    SETTLE,
    WAIT,
    Shot,
    assert_picture,
    button,
    cards,
    cell,
    open_notebook,
    outputs,
    pane,
    run_cell,
    tab,
    wait_finished,
)

if TYPE_CHECKING:
    from .conftest import Lab

try:
    from playwright.sync_api import Locator, Page, expect
except ImportError:  # the browser fixture fails with the install hint
    Locator = Page = Any  # type: ignore[misc,assignment]
    expect = None  # type: ignore[assignment]

pytestmark = pytest.mark.browser

NARROW = {"width": 900, "height": 1000}
EARLIER = "a lighthouse from an earlier kernel"
CELLS = [
    f'import kontext_nb as kx\n\nkx.generate("{EARLIER}", seed=5);',
    "import kontext_nb as kx\n\npanel = kx.Panel()\npanel",
]


def write_notebook(lab: Lab, name: str, sources: list[str]) -> None:
    cells = [
        {"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {}, "outputs": [], "source": s}
        for i, s in enumerate(sources)
    ]
    kernelspec = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    nb = {"cells": cells, "metadata": {"kernelspec": kernelspec}, "nbformat": 4, "nbformat_minor": 5}
    (lab.root / name).write_text(json.dumps(nb, indent=1))


def kernel_of(lab: Lab, name: str) -> str:
    sessions = httpx.get(f"{lab.url}/api/sessions", params={"token": lab.token}, timeout=10, trust_env=False).json()
    (kernel,) = [s["kernel"]["id"] for s in sessions if s["path"].endswith(name)]
    return str(kernel)


def kernel_call(lab: Lab, method: str, path: str) -> None:
    answer = httpx.request(method, f"{lab.url}/api/kernels/{path}", params={"token": lab.token}, timeout=30)
    assert answer.status_code in (200, 204), answer.text


def no_sideways_scroll(target: Locator) -> None:
    """Nothing inside the panel is wider than the panel (no stray horizontal scrollbar)."""
    wide = target.evaluate(
        """el => [el, ...el.querySelectorAll('*')]
            .filter(e => e.offsetParent !== null && getComputedStyle(e).overflowX !== 'visible'
                     && e.scrollWidth > e.clientWidth + 1)
            .map(e => e.scrollWidth + '>' + e.clientWidth + ' ' + (e.innerText || '').slice(0, 40))"""
    )
    assert wide == [], f"horizontal scrolling inside the panel: {wide}"


def narrow(page: Page, panel: Locator, size: dict[str, int] = NARROW) -> None:
    """The viewport at ``size``, once the panel has been laid out inside it again (JupyterLab lays out on later
    animation frames; a fixed sleep after the resize was too short on a busy machine)."""
    page.set_viewport_size(size)
    fits = "el => el.getBoundingClientRect().right <= window.innerWidth + 1 && window.innerWidth === %d"
    page.wait_for_function(fits % size["width"], arg=panel.element_handle(timeout=WAIT), timeout=WAIT)
    page.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")


def newest(panel: Locator) -> Locator:
    return panel.locator(".kontext-newest")


def make_one(page: Page, panel: Locator, prompt: str) -> Locator:
    """Fill the prompt, Generate, and wait for the newest result beside the form."""
    panel.get_by_placeholder(PROMPT).fill(prompt)
    button(panel, re.compile(r"^\W*Generate\b")).click()
    result = newest(panel)
    expect(result).to_contain_text(re.compile(r"@\d+ · seed \d+"), timeout=WAIT)
    expect(result).to_contain_text(prompt)
    assert_picture(page, result.locator("img.widget-image").first)
    return result


def test_newest_result_beside_create_and_gallery_after_restart(lab: Lab, page: Page, screenshot: Shot) -> None:
    if lab.mode != "offline":
        pytest.skip("the layout does not depend on where jobs go: offline mode covers it")
    write_notebook(lab, "views.ipynb", CELLS)
    open_notebook(page, lab, "views.ipynb")
    wait_finished(run_cell(page, 0))
    kernel_call(lab, "POST", f"{kernel_of(lab, 'views.ipynb')}/restart")  # a new kernel, the same runs folder
    expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_be_attached(timeout=WAIT)
    time.sleep(2.0)
    run_cell(page, 1)
    panel = outputs(cell(page, 1)).locator(".widget-tab")
    expect(panel).to_be_visible(timeout=WAIT)

    # Gallery: the earlier kernel's result is there, from the journal
    panel.locator(".lm-TabBar-tab", has_text="Gallery").click()
    old = cards(panel).filter(has_text=EARLIER)
    expect(old).to_have_count(1, timeout=WAIT)
    expect(old).to_contain_text("from the journal")
    assert_picture(page, old.locator("img.widget-image").first)
    screenshot(page, "14-gallery-from-the-journal-after-restart")

    # Create: the newest result, large, beside the form, with what to do next
    tab(panel, "Create").click()
    result = make_one(page, panel, "a red fox in the snow, watercolor")
    for name in ("use", "reuse seed", "rerun", "compare"):
        expect(button(result, name)).to_be_enabled()
    expect(result.get_by_role("link", name="download")).to_be_visible()
    seed = re.search(r"seed (\d+)", result.inner_text())
    assert seed is not None
    expect(panel.get_by_role("textbox", name="seed")).to_have_value(seed[1])  # the seed the job used
    form, beside = panel.locator(".widget-textarea").first.bounding_box(), result.bounding_box()
    assert form is not None and beside is not None and beside["x"] >= form["x"] + form["width"] - 8, "beside the form"
    no_sideways_scroll(panel)
    screenshot(page, "14-create-newest-result-1400")

    # the Gallery outlines the new card and its tab says so
    expect(panel.locator(".lm-TabBar-tab", has_text=re.compile(r"Gallery · \d+ new"))).to_be_visible(timeout=WAIT)
    panel.locator(".lm-TabBar-tab", has_text="Gallery").click()
    expect(cards(panel).first).to_contain_text("a red fox in the snow")
    expect(cards(panel).first).to_have_class(re.compile(r"kontext-new"))
    screenshot(page, "14-gallery-new-card")

    # 900 px wide: the result goes below the form, nothing scrolls sideways
    tab(panel, "Create").click()
    narrow(page, panel)
    no_sideways_scroll(panel)
    beside = newest(panel).bounding_box()
    assert beside is not None
    screenshot(page, "14-create-newest-result-900")

    # edit mode: the aspect ratio is left to the input's shape; sync_mode sits under "advanced"
    pane(panel).locator("button.widget-toggle-button[data-value='edit']").click()
    expect(panel.get_by_role("combobox", name="aspect ratio")).to_have_value("(keep the input's shape)")
    headers = pane(panel).locator(".jupyter-widget-Collapse-header, .p-Collapse-header, .lm-Collapse-header")
    expect(headers.filter(has_text="advanced")).to_be_visible()  # not the first: "about <model>" comes before it
    screenshot(page, "14-create-edit-mode-900")


def test_panel_in_notebook_7(lab: Lab, page: Page, screenshot: Shot) -> None:
    if lab.mode != "offline":
        pytest.skip("the layout does not depend on where jobs go: offline mode covers it")
    write_notebook(lab, "nb7.ipynb", ["import kontext_nb as kx\n\npanel = kx.Panel()\npanel"])
    page.goto(f"{lab.url}/notebooks/nb7.ipynb?token={lab.token}")
    expect(page.locator(".jp-Notebook .jp-Cell").first).to_be_visible(timeout=WAIT)
    expect(page.locator("#jp-title, .jp-NotebookKernelStatus, #jp-top-panel").first).to_be_visible(timeout=WAIT)
    expect(page.get_by_text(re.compile(r"Idle|Kernel status: Idle|\| Idle"))).not_to_have_count(0, timeout=WAIT)
    time.sleep(SETTLE)  # the kernel is up (idle, waited for above); its widget manager connects
    target = cell(page, 0)
    target.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")
    panel = outputs(target).locator(".widget-tab")
    expect(panel).to_be_visible(timeout=WAIT)
    make_one(page, panel, "a lighthouse in Notebook 7")
    no_sideways_scroll(panel)
    screenshot(page, "14-notebook7-create-newest-result")
