"""Issue 12, point 2 in a real JupyterLab 4: a double click on the panel's Generate sends one job.

The browser fires both clicks of a double click before the kernel has heard of the first, so a guard that lives
only in the kernel cannot stop the second: the button must refuse it in the page. Submits are counted by the sandbox
the jobs go to (its control API, ``GET /_sandbox/stats``): the kernel's own offline sandbox, or the subprocess at
KONTEXT_FAL_URL in keyed mode. Runs in both modes (the keyed sandbox is a separate process, the offline one is not).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest

from .test_lab import PROMPT, WAIT, Shot, button, cell, open_notebook, outputs, run_cell, wait_finished
from .test_panel_views import newest, write_notebook

if TYPE_CHECKING:
    from .conftest import Lab

try:
    from playwright.sync_api import Locator, Page, expect
except ImportError:  # the browser fixture fails with the install hint
    Locator = Page = Any  # type: ignore[misc,assignment]
    expect = None  # type: ignore[assignment]

pytestmark = pytest.mark.browser

NOTEBOOK = "double_click.ipynb"
CELLS = [
    "import kontext_nb as kx\n\npanel = kx.Panel()\npanel",
    # what the sandbox the kernel sends to has accepted (the offline one lives in the kernel)
    "import kontext_nb.sandbox\n\n"
    'print("submits", kontext_nb.sandbox.control(kx.get_session().info()["url"]).stats()["submits"])',
]
GENERATE = re.compile(r"^\W*Generate\b")


def submits(page: Page) -> int:
    """Run the counting cell; it runs after every click message the kernel already had (one shell queue)."""
    target = run_cell(page, 1)
    wait_finished(target)
    text = outputs(target).filter(has_text="submits").inner_text()
    found = re.search(r"submits (\d+)", text)
    assert found is not None, text
    return int(found[1])


def double_click(page: Page, generate: Locator, how: str) -> None:
    """A real double click (its second click may come after the kernel answered the first: the button ignores the
    second click of a double click), or two plain clicks in one turn of the page's event loop: no kernel answer can
    come between them, so only the button's own guard in the page stops the second (as mouse clicks, the kernel
    could answer between them on a loaded machine, and then the second click is rightly a second job)."""
    if how == "dblclick":
        generate.dblclick()
        return
    generate.evaluate("button => { button.click(); button.click(); }")


def test_a_double_click_on_generate_sends_one_job(lab: Lab, page: Page, screenshot: Shot) -> None:
    write_notebook(lab, NOTEBOOK, CELLS)
    open_notebook(page, lab, NOTEBOOK)
    run_cell(page, 0)
    panel = outputs(cell(page, 0)).locator(".widget-tab")
    expect(panel).to_be_visible(timeout=WAIT)
    prompt, seed = panel.get_by_placeholder(PROMPT), panel.get_by_placeholder(re.compile(r"^-1: random"))
    generate = button(panel, GENERATE)
    expect(generate).to_be_enabled(timeout=WAIT)
    before = submits(page)
    runs = [
        ("dblclick", "42", "a red fox, double-clicked, seed 42"),
        ("two clicks", "43", "a red fox, clicked twice, seed 43"),
        ("dblclick", "-1", "a red fox, double-clicked, random seed"),
        ("two clicks", "-1", "a red fox, clicked twice, random seed"),
    ]
    for how, seed_text, text in runs:
        prompt.fill(text)
        seed.fill(seed_text)
        expect(generate).to_be_enabled(timeout=WAIT)
        double_click(page, generate, how)
        result = newest(panel)
        expect(result).to_contain_text(text, timeout=WAIT)
        expect(result).to_contain_text(re.compile(r"@\d+ · seed \d+"), timeout=WAIT)
        if seed_text != "-1":
            expect(result).to_contain_text(f"seed {seed_text}")
        expect(generate).to_be_enabled(timeout=WAIT)  # re-enabled once the submit was accepted
        now = submits(page)
        assert now - before == 1, f"{how} on Generate ({text!r}) sent {now - before} jobs, not one"
        before = now
        cell(page, 0).scroll_into_view_if_needed()
        screenshot(page, f"12-double-click-{how.replace(' ', '-')}-seed{seed_text}")
