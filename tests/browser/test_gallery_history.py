"""Issue 14, point 2, in a real JupyterLab 4 and Notebook 7: the Gallery scrolls to a new card and flashes it
(inside its own scrolling grid, never moving the notebook), at once on the Gallery tab and when the user comes
back to it from Create; History rows carry their thumbnail and their use / compare / load actions, and two rows'
"compare" open a comparison of exactly those two (an old result beside a new one).

Offline mode only: none of this depends on where jobs go (the keyed mode runs the other flows)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .test_compare import FRONTS, open_in, run_first_cell, write_notebook
from .test_lab import WAIT, Shot, assert_picture, button, cards, outputs, pane, tab
from .test_panel_views import make_one, narrow, no_sideways_scroll

if TYPE_CHECKING:
    from .conftest import Lab

try:
    from playwright.sync_api import Locator, Page, expect
except ImportError:  # the browser fixture fails with the install hint
    Locator = Page = Any  # type: ignore[misc,assignment]
    expect = None  # type: ignore[assignment]

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("lab", ["offline"], indirect=True)]

MANY = 10  # more cards than the grid's height shows at 1400 x 1000: it scrolls

# true once the element lies within the visible part of its nearest scrolling ancestor (and that one is shown)
IN_SCROLLER = """el => {
    let box = el.parentElement;
    while (box && !(box.scrollHeight > box.clientHeight + 1 && getComputedStyle(box).overflowY !== 'visible'))
        box = box.parentElement;
    if (!box || !el.getClientRects().length) return false;
    const r = el.getBoundingClientRect(), b = box.getBoundingClientRect();
    return r.top >= b.top - 1 && r.bottom <= b.bottom + 1;
}"""


@pytest.fixture(params=FRONTS)
def front(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def notebook(runs: Path, prompts: list[str], tab_index: int) -> str:
    made = "".join(f"kx.generate({p!r}, seed={40 + i})\n" for i, p in enumerate(prompts))
    return (
        "import kontext_nb as kx\n\n"
        f"kx.configure(runs_dir={str(runs)!r})\n"
        f"{made}"
        "panel = kx.Panel()\n"
        f"panel.tab.selected_index = {tab_index}\n"
        "panel"
    )


def grid_of(panel: Locator) -> Locator:
    return panel.locator(".kontext-gallery-grid")


def to_bottom(grid: Locator) -> None:
    grid.evaluate("el => { el.scrollTop = el.scrollHeight }")
    assert grid.evaluate("el => el.scrollTop") > 100, "the grid scrolled down"


def outer_scroll(grid: Locator) -> list[int]:
    """scrollTop of every element around the grid: the notebook's own scrolling."""
    return list(
        grid.evaluate("el => { const out = []; while ((el = el.parentElement)) out.push(el.scrollTop); return out }")
    )


def in_view(page: Page, card: Locator) -> None:
    """Wait until the card is inside the visible part of the grid (it may scroll smoothly there)."""
    page.wait_for_function(IN_SCROLLER, arg=card.element_handle(), timeout=WAIT)


def test_the_gallery_scrolls_to_new_cards(lab: Lab, page: Page, screenshot: Shot, front: str) -> None:
    name = f"reveal-{front}.ipynb"
    write_notebook(
        lab, name, notebook(lab.base / f"runs-reveal-{front}", [f"a lighthouse, study {i}" for i in range(MANY)], 1)
    )
    open_in(page, lab, front, name)
    run_first_cell(page)
    panel = outputs(page.locator(".jp-Notebook .jp-Cell").first).locator(".widget-tab")
    expect(panel).to_be_visible(timeout=WAIT)
    expect(cards(panel)).to_have_count(MANY, timeout=WAIT)  # read back from the journal
    grid = grid_of(panel)
    assert grid.evaluate("el => el.scrollHeight > el.clientHeight + 200"), "enough cards that the grid scrolls"

    # on the Gallery tab, at the bottom of the grid: "rerun" makes a new card at the top, the grid goes to it
    to_bottom(grid)
    last = cards(panel).last
    expect(last).to_contain_text("a lighthouse, study 0")
    rerun = button(last, "rerun")
    rerun.scroll_into_view_if_needed()
    page_scroll = outer_scroll(grid)
    rerun.click()
    new = grid.locator(".kontext-card.kontext-new")
    expect(new).to_have_count(1, timeout=WAIT)
    expect(new).to_contain_text("a lighthouse, study 0")
    in_view(page, new)
    expect(panel.locator(".kx-reveal")).to_have_attribute("data-revealed", re.compile(r"^kx-card-\d+$"))
    revealed = panel.locator(".kx-reveal").get_attribute("data-revealed")
    expect(new).to_have_class(re.compile(rf"\b{revealed}\b"))
    assert outer_scroll(grid) == page_scroll, "the grid scrolled, the notebook around it did not"
    expect(new).to_contain_text(re.compile(r"@\d+ · done"), timeout=WAIT)
    screenshot(page, f"14-gallery-scrolled-to-new-{front}-1400")

    # on Create: nothing moves; back on the Gallery, the grid goes to what was made meanwhile
    to_bottom(grid)
    tab(panel, "Create").click()
    make_one(page, panel, "a red fox made on Create")
    expect(tab(panel, "Gallery")).to_have_text(re.compile(r"Gallery · 1 new"))
    tab(panel, "Gallery").click()
    made = grid.locator(".kontext-card.kontext-new").filter(has_text="a red fox made on Create")
    expect(made).to_have_count(1, timeout=WAIT)
    in_view(page, made)
    assert_picture(page, made.locator("img.widget-image").first)
    screenshot(page, f"14-gallery-revealed-on-return-{front}-1400")
    no_sideways_scroll(panel)
    narrow(page, panel)
    no_sideways_scroll(panel)
    screenshot(page, f"14-gallery-{front}-900")


def test_history_rows_with_thumbnails_and_compare(lab: Lab, page: Page, screenshot: Shot, front: str) -> None:
    name = f"history-{front}.ipynb"
    prompts = ["an old lighthouse at dawn", "a quiet harbour", "a new lighthouse at night <b>bold</b>"]
    write_notebook(lab, name, notebook(lab.base / f"runs-history-{front}", prompts, 3))
    open_in(page, lab, front, name)
    run_first_cell(page)
    panel = outputs(page.locator(".jp-Notebook .jp-Cell").first).locator(".widget-tab")
    expect(panel).to_be_visible(timeout=WAIT)
    rows = pane(panel).locator(".kx-history-row")
    expect(rows).to_have_count(len(prompts), timeout=WAIT)
    for i in range(len(prompts)):  # each row holds its own thumbnail, its seed and its actions
        row = rows.nth(i)
        expect(row.locator("img")).to_have_count(1)
        assert_picture(page, row.locator("img").first)
        expect(row).to_contain_text(re.compile(rf"@\d+.*seed {40 + len(prompts) - 1 - i}", re.S))
        for action in ("use", "compare", "load"):
            expect(button(row, action)).to_be_enabled()
    expect(rows.first).to_contain_text("<b>bold</b>")  # a prompt is text, never markup
    no_sideways_scroll(panel)
    screenshot(page, f"14-history-rows-{front}-1400")

    old = rows.filter(has_text=prompts[0])
    new = rows.filter(has_text="a new lighthouse")
    button(old, "compare").click()
    expect(old).to_have_class(re.compile(r"kx-history-picked"))
    expect(tab(panel, "History")).to_have_class(re.compile(r"lm-mod-current"))  # waits for the second one
    screenshot(page, f"14-history-compare-picked-{front}-1400")
    button(new, "compare").click()
    expect(tab(panel, "Compare")).to_have_class(re.compile(r"lm-mod-current"), timeout=WAIT)
    viewer = pane(panel).locator(".kx-compare")
    expect(viewer).to_have_attribute("data-ready", "true", timeout=WAIT)
    viewer.locator("button.kx-mode[data-mode='side by side']").click()
    figures = viewer.locator(".kx-figure")
    expect(figures).to_have_count(2)
    expect(figures.nth(0)).to_contain_text("seed 40")
    expect(figures.nth(1)).to_contain_text("seed 42")
    screenshot(page, f"14-history-compare-opened-{front}-1400")

    tab(panel, "History").click()
    button(old, "details").click()  # the job's settings and lineage, beside the list
    expect(old).to_have_class(re.compile(r"kx-history-current"), timeout=WAIT)
    expect(pane(panel)).to_contain_text("request id", timeout=WAIT)
    no_sideways_scroll(panel)
    screenshot(page, f"14-history-details-{front}-1400")
    narrow(page, panel)
    expect(rows.first.locator("img")).to_have_count(1)
    no_sideways_scroll(panel)
    screenshot(page, f"14-history-rows-{front}-900")


def history_cells(runs: Path) -> list[str]:
    """Four jobs (one rated) in a runs folder of the test's own (other tests' jobs share the lab's default one)."""
    return [
        "import kontext_nb as kx\n"
        f"kx.configure(runs_dir={str(runs)!r})\n"
        "made = [kx.generate(p, seed=s) for s, p in enumerate(['a lighthouse at dawn', 'a quiet harbour at night',"
        " 'a red fox in the snow, ' * 12, 'an old map <b>bold</b>'], 60)]\n"
        "kx.rate(made[1], 4)\n"
        "panel = kx.Panel()\npanel.tab.selected_index = 3\npanel",
    ]


def test_history_page_keys_stars_and_themes(lab: Lab, page: Page, screenshot: Shot) -> None:
    """Issue 22 point 10: History's page is one anywidget. Keys move between rows and act on them, stars rate, the
    rating filter narrows the list; in JupyterLab Light and Dark at 1400 and 900 px every text reads (WCAG AA) and
    nothing is cut or scrolls sideways."""
    from .test_lab import cell, open_notebook, run_cell, wait_finished
    from .test_panel_views import write_notebook as write_cells
    from .test_theme_fit import CONTRAST, FIT, HEIGHT, set_theme

    write_cells(lab, "history22.ipynb", history_cells(lab.base / "runs-history22"))
    page.set_viewport_size({"width": 1400, "height": HEIGHT})
    open_notebook(page, lab, "history22.ipynb")
    wait_finished(run_cell(page, 0))
    panel = outputs(cell(page, 0)).locator(".widget-tab")
    history = pane(panel).locator(".kx-history")
    rows = history.locator(".kx-history-row")
    expect(rows).to_have_count(4, timeout=WAIT)
    for i in range(4):
        assert_picture(page, rows.nth(i).locator(".kx-h-thumb img"))
    expect(rows.first).to_contain_text("an old map <b>bold</b>")  # a prompt is text, never markup
    expect(rows.nth(2).locator(".kx-h-stars")).to_have_attribute("title", "4 of 5 stars")

    rows.first.click(position={"x": 80, "y": 8})  # the row takes the keys
    page.keyboard.press("ArrowDown")
    second = rows.nth(1)
    expect(second).to_be_focused()
    page.keyboard.press("3")  # three stars, kept in the journal: the row shows them from the kernel's answer
    expect(second.locator(".kx-h-stars")).to_have_attribute("title", "3 of 5 stars", timeout=WAIT)
    page.keyboard.press("c")  # picked for comparing; Esc takes it back
    expect(second).to_have_class(re.compile(r"kx-history-picked"), timeout=WAIT)
    expect(history.locator(".kx-history-pickbar")).to_be_visible()
    screenshot(page, "22-history-picked-light-1400")
    page.keyboard.press("Escape")
    expect(second).not_to_have_class(re.compile(r"kx-history-picked"), timeout=WAIT)
    page.keyboard.press("Enter")  # details, beside the list
    expect(second).to_have_class(re.compile(r"kx-history-current"), timeout=WAIT)
    expect(pane(panel)).to_contain_text("request id", timeout=WAIT)
    rows.first.locator(".kx-h-star").nth(4).click()  # five stars by a click
    expect(rows.first.locator(".kx-h-stars")).to_have_attribute("title", "5 of 5 stars", timeout=WAIT)
    rating = pane(panel).locator(".widget-dropdown", has_text="rating").locator("select")
    rating.select_option(label="★★★★ or more")
    expect(rows).to_have_count(2, timeout=WAIT)  # the two rated ones
    rating.select_option(label="any")
    expect(rows).to_have_count(4, timeout=WAIT)

    problems: list[str] = []
    try:
        for dark in (False, True):
            set_theme(page, dark)
            for width in (1400, 900):
                narrow(page, panel, {"width": width, "height": HEIGHT})
                tag = f"{'dark' if dark else 'light'}-{width}"
                pane(panel).evaluate("el => el.scrollIntoView({block: 'start'})")
                found = pane(panel).evaluate(CONTRAST)
                assert found["checked"] > 20, f"history {tag}: too little text found to check"
                problems += [f"history {tag}: contrast {f}" for f in found["failures"]]
                problems += [f"history {tag}: {f}" for f in pane(panel).evaluate(FIT, False)]
                screenshot(page, f"22-history-{tag}")
    finally:
        set_theme(page, False)
    assert problems == [], "\n".join(problems)
