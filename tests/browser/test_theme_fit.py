"""Issue 22 points 1-3 in JupyterLab, in headless Chromium: every view (kx.compare, the panel's five tabs, kx.duel,
kx.mask) in JupyterLab Light and Dark at 1400 and 900 px wide.

- Contrast: every piece of text in a view, controls included, against what is behind it, from the page's computed
  styles (WCAG AA: 4.5:1). Disabled controls are exempt, as WCAG exempts them.
- Fit: no control past the output's right edge, no label cut short (``scrollWidth > clientWidth``), no sideways
  scrolling; the compare view at "fit" and the mask painter with its toolbar fit the notebook's height.
Screenshots of each view, theme and width land in test-artifacts/browser/22-*.png.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .test_lab import WAIT, cell, open_notebook, outputs, run_cell, tab, wait_finished
from .test_panel_views import write_notebook

if TYPE_CHECKING:
    from .conftest import Lab

try:
    from playwright.sync_api import Locator, Page, expect
except ImportError:  # the browser fixture fails with the install hint
    Locator = Page = Any  # type: ignore[misc,assignment]
    expect = None  # type: ignore[assignment]

pytestmark = pytest.mark.browser

Shot = Callable[[Any, str], Path]
NAME = "views22.ipynb"
WIDTHS = (1400, 900)
HEIGHT = 860
CELLS = [
    "import kontext_nb as kx\n%load_ext kontext_nb\n"
    "fox = kx.generate('a red fox in the snow', seed=42, aspect_ratio='4:3')\n"
    "blue = kx.edit(fox, 'make the fox blue', seed=7)\n"
    "more = [kx.generate('a red fox in the snow', seed=s, guidance_scale=2 + s) for s in (1, 2)]\n"
    "kx.rate(fox, 4);",
    "kx.compare(fox, blue)",
    "%kontext compare $fox $blue @3 @4",
    # the panel asks before a run above the threshold (the test presses Ctrl+Enter): its question and buttons show
    "kx.configure(confirm_above=0.01)\npanel = kx.Panel()\npanel.compare.add(fox)\npanel.compare.add(blue)\n"
    "panel.create.prompt.value = 'a red fox in the snow at dusk, in the style of an old woodcut print'\npanel",
    "kx.duel([fox, blue, *more], voter='lab')",
    "kx.mask(fox)",
]
COMPARE, COMPARE_FOUR, PANEL, DUEL, MASK = range(1, 6)
PANEL_TABS = ("Create", "Gallery", "Compare", "History", "Duel")

CONTRAST = """root => {
  const canvas = document.createElement('canvas');
  canvas.width = canvas.height = 1;
  const g = canvas.getContext('2d', {willReadFrequently: true});
  const rgba = css => {  // any CSS colour (rgb, color(srgb ...), color-mix results) as [r, g, b, alpha]
    g.clearRect(0, 0, 1, 1);
    g.fillStyle = 'rgba(0, 0, 0, 0)';
    g.fillStyle = css;
    g.fillRect(0, 0, 1, 1);
    const d = g.getImageData(0, 0, 1, 1).data;
    return [d[0], d[1], d[2], d[3] / 255];
  };
  const over = (top, bottom) => [0, 1, 2].map(i => top[i] * top[3] + bottom[i] * (1 - top[3])).concat([1]);
  const lum = c => {
    const [r, gg, b] = c.slice(0, 3).map(v => (v /= 255) <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
    return 0.2126 * r + 0.7152 * gg + 0.0722 * b;
  };
  const backdrop = el => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = rgba(getComputedStyle(e).backgroundColor);
      if (c[3] > 0) layers.push(c);
      if (c[3] >= 0.999) break;
    }
    let bg = document.body.dataset.jpThemeLight === 'false' ? [17, 17, 17, 1] : [255, 255, 255, 1];
    for (const layer of layers.reverse()) bg = over(layer, bg);
    return bg;
  };
  const opacity = el => {
    let o = 1;
    for (let e = el; e; e = e.parentElement) o *= Number(getComputedStyle(e).opacity);
    return o;
  };
  const ownText = el => [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
  const field = 'input:not([type=range]):not([type=checkbox]):not([type=color]):not([type=file]), textarea, select';
  const out = [];
  let checked = 0;
  for (const el of [root, ...root.querySelectorAll('*')]) {
    if (el.closest('[disabled], option, script, style, .lm-mod-hidden')) continue;
    const isField = el.matches(field);
    if (isField ? !el.value : !ownText(el)) continue;
    const r = el.getBoundingClientRect();
    const cs = getComputedStyle(el);
    if (!r.width || !r.height || cs.visibility !== 'visible') continue;
    const bg = backdrop(el);
    const fg = rgba(cs.color);
    fg[3] *= opacity(el);
    const [a, b] = [lum(over(fg, bg)), lum(bg)];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    checked += 1;
    if (ratio < 4.5) {
      const text = (isField ? el.value : el.innerText || '').trim().slice(0, 30);
      out.push(`${ratio.toFixed(2)}:1 "${text}" <${el.tagName.toLowerCase()} class="${el.className}"> `
               + `colour ${cs.color} on ${bg.slice(0, 3).map(Math.round)}`);
    }
  }
  return {checked, failures: out};
}"""

GALLERY_ROWS = """panel => {
  const grid = panel.querySelector('.kontext-gallery-grid');
  const tops = [...grid.querySelectorAll('.kontext-card')].map(c => c.getBoundingClientRect());
  const rows = [...new Set(tops.map(r => Math.round(r.top)))].sort((a, b) => a - b);
  if (grid.scrollHeight <= grid.clientHeight + 1 || rows.length < 2) return null;
  const second = Math.max(...tops.filter(r => Math.round(r.top) === rows[1]).map(r => r.bottom));
  const seen = grid.getBoundingClientRect();
  if (second <= seen.bottom + 1) return null;
  return `the gallery shows less than two rows in its scroll box (${Math.round(seen.height)} px)`;
}"""

FIT = """(root, tall) => {
  const area = root.closest('.jp-OutputArea-output') || root;
  const right = Math.min(window.innerWidth, area.getBoundingClientRect().right);
  const out = [];
  const text = el => (el.innerText || el.value || '').trim().slice(0, 30);
  const name = el => `<${el.tagName.toLowerCase()} class="${el.className}"> "${text(el)}"`;
  const controls = 'button, select, input, label, .widget-label, .kx-name, .kx-labels span, .kx-duel-button';
  for (const el of root.querySelectorAll(controls)) {
    if (el.closest('.lm-mod-hidden') || !el.getClientRects().length) continue;
    const r = el.getBoundingClientRect();
    if (!r.width) continue;
    if (r.right > right + 1)
      out.push(`past the output's right edge (${Math.round(r.right)} > ${Math.round(right)}): ${name(el)}`);
    if (el.matches('button, label, .widget-label, .kx-labels span') && el.scrollWidth > el.clientWidth + 1)
      out.push(`label cut short (${el.scrollWidth} > ${el.clientWidth}): ${name(el)}`);
  }
  const ownText = el => [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
  for (const el of [root, ...root.querySelectorAll('*')]) {
    if (!el.getClientRects().length || el.closest('.lm-mod-hidden')) continue;
    const cs = getComputedStyle(el);
    if (ownText(el) && el.getBoundingClientRect().right > right + 1)
      out.push(`text past the output's right edge: ${name(el)}`);
    if (['auto', 'scroll'].includes(cs.overflowX) && el.scrollWidth > el.clientWidth + 1)
      out.push(`scrolls sideways (${el.scrollWidth} > ${el.clientWidth}): ${name(el)}`);
  }
  if (tall) {
    const scroller = root.closest('.jp-WindowedPanel-outer') || document.scrollingElement;
    const room = scroller.clientHeight;
    const height = root.getBoundingClientRect().height;
    if (height > room + 1) out.push(`taller than the notebook's view (${Math.round(height)} > ${room} px)`);
  }
  return out;
}"""


DROP_IMAGE = """async area => {
  const canvas = document.createElement('canvas');
  canvas.width = 64; canvas.height = 48;
  canvas.getContext('2d').fillRect(0, 0, 32, 48);
  const blob = await new Promise(done => canvas.toBlob(done, 'image/png'));
  const data = new DataTransfer();
  data.items.add(new File([blob], 'dropped.png', {type: 'image/png'}));
  area.dispatchEvent(new DragEvent('dragover', {dataTransfer: data, bubbles: true, cancelable: true}));
  area.dispatchEvent(new DragEvent('drop', {dataTransfer: data, bubbles: true, cancelable: true}));
}"""


def set_theme(page: Page, dark: bool) -> None:
    """Settings > Theme, as a user switches it (JupyterLab keeps the choice: the test switches back after)."""
    name = "JupyterLab Dark" if dark else "JupyterLab Light"
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Settings$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Theme$")).hover()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(rf"^{name}$")).click()
    expect(page.locator(f"body[data-jp-theme-light='{str(not dark).lower()}']")).to_be_attached(timeout=WAIT)
    expect(page.locator(f"body[data-jp-theme-name='{name}']")).to_be_attached(timeout=WAIT)
    time.sleep(0.5)  # the theme's stylesheet applies


def top(view: Locator) -> None:
    """Scroll the notebook so the view's top is at the top of the notebook's view."""
    view.evaluate("el => el.scrollIntoView({block: 'start'})")
    time.sleep(0.3)


def check(page: Page, view: Locator, what: str, problems: list[str], tall: bool = False) -> None:
    top(view)
    found = view.evaluate(CONTRAST)
    assert found["checked"] > 0, f"{what}: no text found to check"
    problems += [f"{what}: contrast {f}" for f in found["failures"]]
    problems += [f"{what}: {f}" for f in view.evaluate(FIT, tall)]


@pytest.mark.parametrize("lab", ["offline"], indirect=True)  # where jobs go does not change how views look
def test_every_view_reads_and_fits_in_light_and_dark_at_1400_and_900(lab: Lab, page: Page, screenshot: Shot) -> None:
    write_notebook(lab, NAME, CELLS)
    page.set_viewport_size({"width": WIDTHS[0], "height": HEIGHT})
    open_notebook(page, lab, NAME)
    for index in range(len(CELLS)):
        wait_finished(run_cell(page, index))
    views = {
        "compare": outputs(cell(page, COMPARE)).locator(".kx-compare"),
        "compare-four": outputs(cell(page, COMPARE_FOUR)).locator(".kx-compare"),
        "panel": outputs(cell(page, PANEL)).locator(".widget-tab"),
        "duel": outputs(cell(page, DUEL)).locator(".kx-duel"),
        "mask": outputs(cell(page, MASK)).locator(".kx-mask"),
    }
    for view in views.values():
        expect(view).to_be_visible(timeout=WAIT)
    expect(views["compare"]).to_have_attribute("data-ready", "true", timeout=WAIT)
    expect(views["compare"]).to_have_attribute("data-mode", "slider")
    expect(views["compare-four"]).to_have_attribute("data-count", "4", timeout=WAIT)
    yes = views["panel"].get_by_role("button", name="Yes, send")
    expect(views["panel"].get_by_role("button", name=re.compile(r"Generate · 1 image"))).to_be_enabled(timeout=WAIT)
    views["panel"].get_by_placeholder("Describe the image, or the edit").click()
    page.keyboard.press("Control+Enter")  # Generate, from the prompt (above the threshold: it asks first)
    expect(yes).to_be_visible(timeout=WAIT)
    expect(cell(page, DUEL).locator(".jp-InputArea-prompt")).to_have_text(re.compile(r"^\[\d+\]:$"))  # not re-run
    views["duel"].locator(".kx-duel-left").click()  # a first click on a picture takes the view in hand: no vote
    expect(views["duel"]).to_have_attribute("data-engaged", "true")
    expect(views["duel"].locator(".kx-duel-head")).to_contain_text("pair 1 · 0 votes")
    page.keyboard.press("ArrowLeft")  # then a key votes: one vote, the pair revealed
    expect(views["duel"].locator(".kx-duel-head")).to_contain_text("pair 2 · 1 votes", timeout=WAIT)
    expect(views["duel"].locator(".kx-duel-reveal-row")).to_be_visible(timeout=WAIT)
    tab(views["panel"], "Compare").click()  # "what changed": the heat map over the pair, not a second image
    views["panel"].get_by_role("button", name="what changed").click()
    expect(views["panel"].locator(".kx-compare .kx-stage img.kx-heat")).to_have_count(1, timeout=WAIT)
    expect(views["panel"].locator(".kontext-changes img")).to_have_count(0)
    problems: list[str] = []
    try:
        for dark in (False, True):
            set_theme(page, dark)
            for width in WIDTHS:
                page.set_viewport_size({"width": width, "height": HEIGHT})
                time.sleep(0.5)
                tag = f"{'dark' if dark else 'light'}-{width}"
                for what in ("compare", "compare-four", "duel", "mask"):
                    check(page, views[what], f"{what} {tag}", problems, tall=what in ("compare", "mask"))
                    screenshot(page, f"22-{what}-{tag}")
                panel = views["panel"]
                for title in PANEL_TABS:
                    tab(panel, title).click()
                    time.sleep(0.4)
                    check(page, panel, f"panel {title} {tag}", problems)
                    if title == "Gallery" and (short := panel.evaluate(GALLERY_ROWS)):
                        problems.append(f"panel Gallery {tag}: {short}")
                    screenshot(page, f"22-panel-{title.lower()}-{tag}")
    finally:
        set_theme(page, False)
    assert problems == [], "\n".join(problems)
    tab(views["panel"], "Create").click()  # ↑ / ↓ in the prompt: the journal's earlier prompts, newest first
    prompt = views["panel"].get_by_placeholder("Describe the image, or the edit")
    prompt.click()
    page.keyboard.press("ArrowUp")
    expect(prompt).to_have_value("a red fox in the snow")
    page.keyboard.press("ArrowUp")
    expect(prompt).to_have_value("make the fox blue")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    expect(prompt).to_have_value("a red fox in the snow at dusk, in the style of an old woodcut print")
    prompt.evaluate(DROP_IMAGE)  # an image file dropped on the form: the source of an edit
    expect(views["panel"].locator("button.widget-toggle-button.mod-active", has_text="edit")).to_be_visible(
        timeout=WAIT
    )


RESTART = [
    "import kontext_nb as kx\n%load_ext kontext_nb",
    "import kontext_nb.sandbox\n\n"
    'kontext_nb.sandbox.control(kx.get_session().info()["url"]).configure(inference_time=60)',
    "%kontext a lighthouse at dawn --bg",
]


@pytest.mark.parametrize("lab", ["offline"], indirect=True)  # the page's side of a restart: where jobs go is moot
def test_a_restart_leaves_no_dead_background_output(lab: Lab, page: Page, screenshot: Shot) -> None:
    """Issue 22 point 4: a --bg output running when the kernel restarts says so, and what collects the job."""
    write_notebook(lab, "restart22.ipynb", RESTART)
    open_notebook(page, lab, "restart22.ipynb")
    for index in range(len(RESTART)):
        wait_finished(run_cell(page, index))
    bg = outputs(cell(page, 2))
    expect(bg.locator(".kontext-status")).to_have_text(re.compile(r"@(\d+) (queued|running)"), timeout=WAIT)
    ref = re.search(r"@\d+", bg.locator(".kontext-status").inner_text())
    assert ref is not None
    expect(bg.get_by_role("button", name=re.compile("Cancel"))).to_be_visible()
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Kernel$")).click()  # as a user restarts it
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Restart Kernel…$")).click()
    page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept", has_text="Restart").click()
    expect(bg.locator(".kontext-status")).to_have_text(
        f"kernel restarted — %kontext resume collects {ref[0]}", timeout=WAIT
    )
    expect(bg.get_by_role("button", name=re.compile("Cancel"))).to_have_count(0)
    screenshot(page, "22-background-after-restart")


@pytest.mark.parametrize("lab", ["offline"], indirect=True)  # where jobs go does not change the view
def test_kx_compare_in_notebook_7(lab: Lab, page: Page, screenshot: Shot) -> None:
    """Issue 22 point 1 in Notebook 7: kx.compare draws the Compare tab's view (the divider on the image) in the
    cell, and the divider moves with a drag."""
    from .test_compare import open_in, run_first_cell
    from .test_compare import write_notebook as write_one

    code = (
        "import kontext_nb as kx\n\n"
        "fox = kx.generate('a red fox in the snow', seed=42, aspect_ratio='4:3')\n"
        "blue = kx.edit(fox, 'make the fox blue', seed=7)\n"
        "kx.compare(fox, blue)"
    )
    write_one(lab, "compare22-nb7.ipynb", code)
    open_in(page, lab, "notebook7", "compare22-nb7.ipynb")
    run_first_cell(page)
    viewer = page.locator(".jp-Notebook .jp-Cell").first.locator(".jp-OutputArea-output .kx-compare")
    expect(viewer).to_have_attribute("data-ready", "true", timeout=WAIT)
    expect(viewer).to_have_attribute("data-mode", "slider")
    stage = viewer.locator(".kx-stage")
    box = stage.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.2, box["y"] + box["height"] / 2, steps=5)
    page.mouse.up()
    expect(viewer).to_have_attribute("data-cut", re.compile(r"^0\.(1[5-9]|2[0-5])"))
    viewer.evaluate("el => el.scrollIntoView({block: 'start'})")
    bottom = viewer.locator(".kx-pair-actions").evaluate("el => el.getBoundingClientRect().bottom")
    assert bottom <= page.viewport_size["height"], f"at fit the view ends at {bottom} px, below the window"  # type: ignore[index]
    screenshot(page, "22-compare-notebook7")
