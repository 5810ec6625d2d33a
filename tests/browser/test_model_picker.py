"""Issue 23 part 1 in real Chromium: Create's model picker searched by endpoint id, the controls the chosen model's
schema gives, and an edit sent through the offline sandbox with Seedream v4 edit and with FLUX.2 [flex] edit; the
form in light and dark at 1400 and 900 px (screenshots in test-artifacts/browser/23-*.png)."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

import pytest

from .test_lab import WAIT, Shot, assert_picture, cell, open_notebook, outputs, pane, run_cell
from .test_panel_views import NARROW, narrow, no_sideways_scroll, write_notebook
from .test_theme_fit import set_theme

if TYPE_CHECKING:
    from .conftest import Lab

try:
    from playwright.sync_api import Locator, Page, expect
except ImportError:  # the browser fixture fails with the install hint
    Locator = Page = Any  # type: ignore[misc,assignment]
    expect = None  # type: ignore[assignment]

pytestmark = pytest.mark.browser

NAME = "models-panel.ipynb"
CODE = (
    "import kontext_nb as kx\nfrom PIL import Image, ImageDraw\n\n"
    "img = Image.new('RGB', (256, 192), (30, 60, 150))\n"
    "ImageDraw.Draw(img).ellipse((30, 30, 220, 160), fill=(240, 200, 30))\nimg.save('harbour.png')\n"
    "for name in ('seedream4-edit', 'flux2-flex-edit'):  # a price declared where fal publishes none\n"
    "    if kx.model(name).pricing is None:\n        kx.set_price(name, 0.03)\n"
    "panel = kx.Panel()\npanel.create.mode.value = 'edit'\npanel.create.sources.set(['harbour.png'])\npanel"
)
SEARCH = "search models: alias, title, endpoint id or category"
CONTROLS = {
    "seedream4-edit": ("enhance prompt mode", "max images", "image size"),
    "flux2-flex-edit": ("guidance scale", "num inference steps", "safety tolerance", "image size"),
}
ENDPOINTS = {"seedream4-edit": "fal-ai/bytedance/seedream/v4/edit", "flux2-flex-edit": "fal-ai/flux-2-flex/edit"}


def labels(panel: Locator) -> list[str]:
    return [t.strip() for t in pane(panel).locator(".widget-label").all_inner_texts() if t.strip()]


def choose(panel: Locator, alias: str) -> None:
    """Type the endpoint id into the search; the picker narrows to the one model and takes it."""
    search = pane(panel).get_by_placeholder(SEARCH)
    search.fill(ENDPOINTS[alias])
    expect(pane(panel).locator("select").first).to_have_value(re.compile(rf"^{re.escape(alias)} · "), timeout=WAIT)
    for name in CONTROLS[alias]:
        expect(pane(panel).locator(".widget-label", has_text=re.compile(rf"^{name}$"))).to_be_visible(timeout=WAIT)


def send(page: Page, panel: Locator, prompt: str) -> None:
    pane(panel).get_by_placeholder("Describe the image, or the edit").fill(prompt)
    generate = pane(panel).get_by_role("button", name=re.compile(r"Generate · 1 image"))
    expect(generate).to_be_enabled(timeout=WAIT)
    generate.click()
    result = panel.locator(".kontext-newest")
    expect(result).to_contain_text(prompt, timeout=WAIT)
    assert_picture(page, result.locator("img.widget-image").first)


@pytest.mark.parametrize("lab", ["offline"], indirect=True)  # where jobs go does not change the picker
def test_pick_seedream_and_flux2_flex_edit_see_their_controls_and_send(lab: Lab, page: Page, screenshot: Shot) -> None:
    write_notebook(lab, NAME, [CODE])
    open_notebook(page, lab, NAME)
    run_cell(page, 0)
    panel = outputs(cell(page, 0)).locator(".widget-tab")
    expect(panel).to_be_visible(timeout=WAIT)
    select = pane(panel).locator("select").first
    expect(select).to_have_value(re.compile(r"^max · "), timeout=WAIT)  # Kontext first, and the default
    problems: list[str] = []
    try:
        for alias in ("seedream4-edit", "flux2-flex-edit"):
            choose(panel, alias)
            names = labels(panel)
            assert "aspect ratio" not in names and "enhance prompt" not in names, names  # Kontext's are gone
            send(page, panel, f"make it winter with {alias}")
            for dark in (False, True):
                set_theme(page, dark)
                for size in ({"width": 1400, "height": 1000}, NARROW):
                    narrow(page, panel, size)
                    panel.evaluate("el => el.scrollIntoView({block: 'start'})")
                    time.sleep(0.3)
                    try:
                        no_sideways_scroll(panel)
                    except AssertionError as exc:
                        problems.append(f"{alias} {dark=} {size['width']}: {exc}")
                    screenshot(page, f"23-create-{alias}-{'dark' if dark else 'light'}-{size['width']}")
            set_theme(page, False)
            narrow(page, panel, {"width": 1400, "height": 1000})
    finally:
        set_theme(page, False)
    assert problems == [], "\n".join(problems)
