"""Judging in a real browser: the report opens offline in Chromium with every image shown and no request made;
the duel view in JupyterLab takes ← → and = from the keyboard and records the votes in the kernel's journal."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import kontext_nb as kx
from kontext_nb.result import Result
from kontext_nb.session import Session

if TYPE_CHECKING:
    from .conftest import Lab

try:
    from playwright.sync_api import expect
except ImportError:  # conftest's browser fixture fails the test with the install hint
    expect = None  # type: ignore[assignment]

pytestmark = pytest.mark.browser
WAIT = 60_000
ALL_SHOWN = """() => [...document.images].every(img => img.complete && img.naturalWidth > 0 && img.naturalHeight > 0)"""


def test_the_report_opens_offline_with_every_image_and_no_request(
    make_session: Callable[..., Session], browser: Any, artifacts: Path, tmp_path: Path
) -> None:
    kx.set_session(make_session())
    results = [kx.generate("a lighthouse at dusk", seed=seed) for seed in (1, 2, 3)]
    assert all(isinstance(r, Result) for r in results)
    edit = kx.edit(results[0], "make it winter", seed=4)
    kx.rate(results[0], 5)
    kx.rate(edit, 3)
    kx.vote(results[0], results[1], voter="ada")
    kx.vote(results[2], results[1], voter="grace")
    path = kx.report(kx.history(), tmp_path / "report.html", size=320, title="Lighthouses")

    context = browser.new_context(viewport={"width": 1100, "height": 1400})
    requests: list[str] = []
    context.on("request", lambda request: requests.append(request.url))
    page = context.new_page()
    try:
        page.goto(path.as_uri())
        page.wait_for_load_state("load")
        count = page.locator("img").count()
        assert count >= 4 + 1 + 2  # four results, the edit's heat map, its lineage strip
        page.wait_for_function(ALL_SHOWN, timeout=WAIT)
        expect(page.locator("h1")).to_have_text("Lighthouses")
        expect(page.locator("table.rank tr")).to_have_count(1 + 3)  # the three results someone voted on
        expect(page.locator(".card")).to_have_count(4)
        expect(page.locator(".card", has_text=edit.ref).locator("dd", has_text="pHash")).to_have_count(1)  # type: ignore[union-attr]
        page.screenshot(path=str(artifacts / "report.png"), full_page=True)
        page.emulate_media(media="print")
        page.screenshot(path=str(artifacts / "report-print.png"), full_page=True)
        pdf = page.pdf(format="A4")
        assert pdf.startswith(b"%PDF") and len(pdf) > 10_000
    finally:
        context.close()
    outside = [url for url in requests if not url.startswith(("file://", "data:", "blob:"))]
    assert outside == [], outside
    assert [url for url in requests if url.startswith("file://")] == [path.as_uri()]


@pytest.mark.parametrize(
    "lab", ["offline"], indirect=True
)  # the view runs in the browser: where jobs go does not change it
def test_the_duel_view_takes_keys_in_jupyterlab(lab: Lab, page: Any, screenshot: Callable[[Any, str], Path]) -> None:
    from .test_lab import open_notebook, outputs, run_cell, show, wait_finished

    open_notebook(page, lab, "judging/duel.ipynb")
    wait_finished(run_cell(page, 0))  # three results and the duel over them
    duel = page.locator(".kx-duel")
    expect(duel).to_be_visible(timeout=WAIT)
    expect(duel).to_have_attribute("data-number", "1", timeout=WAIT)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.kx-duel-stage img')].every(i => i.complete && i.naturalWidth > 0)",
        timeout=WAIT,
    )
    stage = duel.locator(".kx-duel-stage").inner_text()
    assert "lighthouse" not in stage and not re.search(r"@\d", duel.inner_text())  # hidden until the vote
    screenshot(page, "duel-1")
    duel.click(position={"x": 5, "y": 5})  # focus the view, as a user clicks into it
    for number, key in ((2, "ArrowLeft"), (3, "="), (4, "ArrowRight")):
        page.keyboard.press(key)
        expect(duel).to_have_attribute("data-number", str(number), timeout=WAIT)
    reveal = duel.locator(".kx-duel-reveal")
    expect(reveal).to_contain_text("a lighthouse", timeout=WAIT)
    expect(reveal).to_contain_text(re.compile(r"@\d+ · winner"))
    duel.scroll_into_view_if_needed()
    screenshot(page, "duel-2")
    target = run_cell(page, 1)  # the votes, read back in the kernel
    wait_finished(target)
    expect(outputs(target)).to_contain_text("votes 3 ties 1")

    wait_finished(run_cell(page, 2))  # a RatingStars: click the fourth star
    stars = page.locator(".kx-stars")
    expect(stars).to_have_attribute("data-value", "0", timeout=WAIT)
    stars.locator(".kx-star[data-n='4']").click()
    expect(stars).to_have_attribute("data-value", "4")
    expect(stars.locator(".kx-star").first).to_have_text("★")
    show(stars)
    screenshot(page, "stars")
    target = run_cell(page, 3)
    wait_finished(target)
    expect(outputs(target)).to_contain_text(re.compile(r"rating \d+ 4"))
