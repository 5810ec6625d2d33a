"""kontext_nb in a real JupyterLab, driven through headless Chromium as a user would, in two modes (conftest.py):

- ``offline``: no fal key; the kernels use their own offline sandbox, and the page says so.
- ``keyed``: a canary FAL_KEY and KONTEXT_FAL_URL at a sandbox subprocess that accepts only that key; the page
  says jobs go "via" that URL and never mentions the offline sandbox, and the jobs reach that sandbox.

Each flow test asserts on what the page shows (text, images, widget states), never on kernel internals, saves a
screenshot per step into test-artifacts/browser/, and saves its notebook (Ctrl+S) so the .ipynb holds the outputs.
``test_canary_key_appears_nowhere`` runs in keyed mode only, after the keyed flows (pytest runs the tests of each
mode together, offline first): it re-opens the saved notebooks and searches every file under the server's folder
(notebooks, checkpoints, the runs folder's journal and images, config, the JupyterLab and sandbox logs) and each
page's HTML for the canary in every form. Run them alone with ``pytest -m browser``.
"""

from __future__ import annotations

import base64
import io
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from canary import leaks
from PIL import Image

import kontext_nb.journal.metadata
from kontext_nb.journal.db import DB_NAME
from kontext_nb.journal.folder import RESULTS, THUMBS

if TYPE_CHECKING:
    from .conftest import Lab

try:
    from playwright.sync_api import Locator, Page, expect
except ImportError:  # the browser fixture fails with the install hint
    Locator = Page = Any  # type: ignore[misc,assignment]
    expect = None  # type: ignore[assignment]

pytestmark = pytest.mark.browser

Shot = Callable[[Any, str], Path]
WAIT = 60_000  # ms: every wait for something the page should show
SETTLE = 2.0  # s after the kernel first reports idle, before the first cell runs (the widget manager connects)
PROMPT = "Describe the image, or the edit"
DONE_PROMPT = re.compile(r"^\[\d+\]:$")
STARTED_PROMPT = re.compile(r"^\[(\*|\d+)\]:$")
NO_KEY_NOTICE = re.compile(r"no fal[ _]key found", re.IGNORECASE)
# the notebooks the flow tests run and save, and how many images each makes (the canary test checks they exist)
FLOWS = {"quickstart.ipynb": 6, "panel.ipynb": 2, "background.ipynb": 1}
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"

# true once an <img> has loaded a picture that is not blank or a flat placeholder
VARIED_PICTURE = """img => {
    if (!img.complete || !img.naturalWidth) return false;
    const canvas = document.createElement('canvas');
    canvas.width = canvas.height = 24;
    const g = canvas.getContext('2d');
    g.drawImage(img, 0, 0, 24, 24);
    const px = g.getImageData(0, 0, 24, 24).data;
    let lo = 765, hi = 0;
    for (let i = 0; i < px.length; i += 4) {
        const v = px[i] + px[i + 1] + px[i + 2];
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
    }
    return hi - lo > 60;
}"""


# -- JupyterLab as a user drives it ----------------------------------------------------------------
def open_notebook(page: Page, lab: Lab, name: str) -> None:
    page.goto(lab.notebook_url(name))
    expect(page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").first).to_be_visible(timeout=WAIT)
    wait_for_kernel(page, lab, name)
    expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_be_attached(timeout=WAIT)
    time.sleep(SETTLE)


def wait_for_kernel(page: Page, lab: Lab, name: str) -> None:
    """Until the server has a kernel session for the notebook. On a loaded machine Lab may open the notebook
    before it knows the kernel specs and ask which kernel to start: the default is the right one."""
    import httpx

    deadline = time.monotonic() + WAIT / 1000
    chooser = page.locator(".jp-Dialog", has_text="Select Kernel")
    while time.monotonic() < deadline:
        if chooser.count():
            chooser.get_by_role("button", name="Select").click()
        sessions = httpx.get(f"{lab.url}/api/sessions", params={"token": lab.token}, timeout=10, trust_env=False)
        if any(s["path"].endswith(name) and s.get("kernel") for s in sessions.json()):
            return
        time.sleep(0.25)
    pytest.fail(f"no kernel started for {name} within {WAIT / 1000:.0f} s", pytrace=False)


def cell(page: Page, index: int) -> Locator:
    return page.locator(".jp-Notebook .jp-Cell").nth(index)


def prompt_of(target: Locator) -> Locator:
    return target.locator(".jp-InputArea-prompt")


def run_cell(page: Page, index: int) -> Locator:
    """Click into the cell, Shift+Enter, and wait until Lab shows it queued or run."""
    target = cell(page, index)
    target.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")
    expect(prompt_of(target)).to_have_text(STARTED_PROMPT, timeout=WAIT)
    return target


def wait_finished(target: Locator) -> None:
    expect(prompt_of(target)).to_have_text(DONE_PROMPT, timeout=WAIT)


def outputs(target: Locator | Page) -> Locator:
    return target.locator(".jp-OutputArea-output")


def error_outputs(page: Page) -> list[str]:
    """Tracebacks and anything else written to stderr (Lab renders both as application/vnd.jupyter.stderr)."""
    found = page.locator(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'],"
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']"
    )
    return [text[:500] for text in found.all_inner_texts()]


def assert_picture(page: Page, img: Locator) -> None:
    """Wait until this <img> shows a loaded, non-blank picture."""
    img.scroll_into_view_if_needed()
    page.wait_for_function(VARIED_PICTURE, arg=img.element_handle(), timeout=WAIT)


def show(target: Locator) -> None:
    """Scroll the notebook so all of this element is in the screenshot."""
    target.evaluate("el => el.scrollIntoView({block: 'center'})")


def save_notebook(page: Page, lab: Lab, name: str) -> None:
    """Ctrl+S as a user saves, then wait until Lab no longer marks the tab dirty; keep the page's HTML."""
    dirty = page.locator("#jp-main-dock-panel .lm-TabBar-tab.jp-mod-dirty")
    expect(dirty).to_have_count(1)  # the cells run changed the notebook: there is something to save
    page.keyboard.press("Control+s")
    expect(dirty).to_have_count(0, timeout=WAIT)
    lab.pages[name] = page.content()


def assert_no_offline_notice(page: Page) -> None:
    """keyed: no output says the offline sandbox is used or that no key was found."""
    expect(outputs(page).filter(has_text="offline sandbox")).to_have_count(0)
    expect(outputs(page).filter(has_text=NO_KEY_NOTICE)).to_have_count(0)


# -- the panel ----------------------------------------------------------------------------------------
def tab(panel: Locator, title: str) -> Locator:
    """A tab by its title ("Gallery · 2 new" is the Gallery too)."""
    return panel.locator(".widget-tab-bar .lm-TabBar-tab", has_text=re.compile(rf"^{title}( · \d+ new)?$"))


def pane(panel: Locator) -> Locator:
    """The tab page shown now."""
    return panel.locator(".widget-tab-contents > .widget-box:not(.lm-mod-hidden)")


def button(scope: Locator, name: str | re.Pattern[str]) -> Locator:
    """A button by its label; an ipywidgets icon adds a glyph before the label in the accessible name."""
    if isinstance(name, str):
        name = re.compile(rf"^\W*{re.escape(name)}$")
    return scope.get_by_role("button", name=name)


def cards(panel: Locator) -> Locator:
    """The Gallery's cards, newest first: a box whose first child is the thumbnail."""
    return pane(panel).locator(".widget-vbox:has(> img.widget-image)")


def wait_card_done(page: Page, card: Locator) -> None:
    """A finished card: its seed badge holds a number, it says done, its buttons work, its thumbnail is a picture."""
    expect(card.locator(".widget-html-content", has_text=re.compile(r"^seed \d+"))).to_be_visible(timeout=WAIT)
    expect(card).to_contain_text(re.compile(r"@\d+ · done"), timeout=WAIT)
    for name in ("use", "seed", "rerun", "compare", "info"):
        expect(button(card, name)).to_be_enabled(timeout=WAIT)
    assert_picture(page, card.locator("img.widget-image").first)


# -- the tests ------------------------------------------------------------------------------------------
def test_quickstart_runs_in_jupyterlab(lab: Lab, page: Page, screenshot: Shot) -> None:
    submitted = lab.submits() if lab.mode == "keyed" else 0
    open_notebook(page, lab, "quickstart.ipynb")
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()

    code_prompts = page.locator(".jp-Notebook .jp-CodeCell .jp-InputArea-prompt")
    n = code_prompts.count()
    assert n >= 10, f"the quickstart should have its code cells, Lab shows {n}"
    for i in range(n):  # in order: each waits at most a minute
        expect(code_prompts.nth(i)).to_have_text(DONE_PROMPT, timeout=WAIT)
    expect(page.locator(".jp-Notebook .jp-InputArea-prompt", has_text="*")).to_have_count(0)

    assert error_outputs(page) == [], "the quickstart shows errors"
    if lab.mode == "offline":
        notice = outputs(page).filter(has_text="offline sandbox")
        expect(notice.first).to_contain_text("no fal key found")
    else:
        assert_no_offline_notice(page)
        # fox, clay, other seed, lighthouse, rerun: the repeat is answered from the journal
        jobs = lab.submits() - submitted
        assert jobs >= 5, f"the quickstart's jobs should reach the sandbox at KONTEXT_FAL_URL: it got {jobs}"
    images = page.locator(".jp-OutputArea-output img[src^='data:image/']")
    assert images.count() >= 5, f"expected the results' embedded images, found {images.count()}"
    assert_picture(page, images.first)  # the fox, shown in the page
    expect(outputs(page).filter(has_text="same seed, same image: True")).to_have_count(1)
    screenshot(page, "1-quickstart-run-all")
    save_notebook(page, lab, "quickstart.ipynb")


def test_panel_create_gallery_edit_compare(lab: Lab, page: Page, screenshot: Shot) -> None:
    submitted = lab.submits() if lab.mode == "keyed" else 0
    open_notebook(page, lab, "panel.ipynb")
    run_cell(page, 0)
    panel = outputs(cell(page, 0)).locator(".widget-tab")
    expect(panel).to_be_visible(timeout=WAIT)
    header = outputs(cell(page, 0)).first
    expect(header).to_contain_text(lab.where)  # offline sandbox, or via KONTEXT_FAL_URL
    if lab.mode == "keyed":
        expect(header).not_to_contain_text("offline sandbox")

    # Create: a prompt and Generate
    expect(tab(panel, "Create")).to_have_class(re.compile(r"lm-mod-current"))
    prompt = panel.get_by_placeholder(PROMPT)
    prompt.fill("a red fox in the snow, watercolor")
    generate = button(panel, re.compile(r"^\W*Generate\b"))
    expect(generate).to_have_text(re.compile(r"Generate · 1 image · \$0\.08"))
    screenshot(page, "2a-panel-create")
    generate.click()
    expect(pane(panel)).to_contain_text(re.compile(r"@\d+ (queued|running|done)"), timeout=WAIT)

    # Gallery: the card gets its thumbnail and seed
    tab(panel, "Gallery").click()  # newest first; the journal's earlier results (the quickstart's) follow
    first = cards(panel).first
    expect(first).to_contain_text(re.compile(r"@\d+ · (queued|running|done)"), timeout=WAIT)
    wait_card_done(page, first)
    expect(first).to_contain_text("a red fox in the snow, watercolor")
    screenshot(page, "2b-panel-gallery-first-card")

    # "use" it: Create in edit mode with the source shown
    button(first, "use").click()
    expect(tab(panel, "Create")).to_have_class(re.compile(r"lm-mod-current"), timeout=WAIT)
    expect(pane(panel).locator("button.widget-toggle-button.mod-active[data-value='edit']")).to_be_visible()
    assert_picture(page, pane(panel).locator("img.widget-image").first)
    prompt.fill("make it claymation")
    expect(generate).to_have_text(re.compile(r"Generate · 1 image · \$0\.08"))
    screenshot(page, "2c-panel-edit-with-source")
    generate.click()
    expect(pane(panel)).to_contain_text(re.compile(r"@\d+ (queued|running|done)"), timeout=WAIT)

    # the edit's card, newest first
    tab(panel, "Gallery").click()
    edit = cards(panel).first
    expect(edit).to_contain_text("make it claymation")
    wait_card_done(page, edit)
    screenshot(page, "2d-panel-gallery-edit-card")

    # Compare: the edit over its source, in the browser (tests/browser/test_compare.py drags, zooms and flickers it)
    button(edit, "compare").click()
    expect(tab(panel, "Compare")).to_have_class(re.compile(r"lm-mod-current"), timeout=WAIT)
    view = pane(panel).locator(".kx-compare")
    expect(view).to_have_attribute("data-ready", "true", timeout=WAIT)
    for img in view.locator(".kx-stage img").all():
        assert_picture(page, img)
    expect(view.locator(".kx-labels")).to_contain_text("source")
    show(view)
    screenshot(page, "2e-panel-compare-before-after")
    view.locator("button.kx-mode[data-mode='side by side']").click()
    expect(view.locator(".kx-figure")).to_have_count(2)
    screenshot(page, "2f-panel-compare-side-by-side")
    if lab.mode == "keyed":
        assert_no_offline_notice(page)
        assert lab.submits() - submitted == 2, "the panel's jobs should reach the sandbox at KONTEXT_FAL_URL"
    save_notebook(page, lab, "panel.ipynb")


def test_background_run_keeps_the_kernel_free(
    lab: Lab, page: Page, screenshot: Shot, request: pytest.FixtureRequest
) -> None:
    request.addfinalizer(lab.restore_sandbox)  # keyed: the slowed sandbox is shared with the tests that follow
    submitted = lab.submits() if lab.mode == "keyed" else 0
    open_notebook(page, lab, "background.ipynb")
    wait_finished(run_cell(page, 0))
    if lab.mode == "offline":
        expect(outputs(cell(page, 0)).first).to_contain_text("offline sandbox")
    wait_finished(run_cell(page, 1))  # the sandbox now takes 4 s per image

    bg = run_cell(page, 2)
    status = outputs(bg).locator(".kontext-status")
    expect(status).to_have_text(re.compile(r"@\d+ (queued|running)"), timeout=WAIT)
    expect(button(outputs(bg), "Cancel")).to_be_visible()
    wait_finished(bg)  # --bg returns at once

    other = run_cell(page, 3)
    expect(outputs(other)).to_have_text("2", timeout=WAIT)
    shown = status.inner_text()
    assert re.search(r"(queued|running)", shown) and "done" not in shown, (
        f"the background run should still be going while 1 + 1 answers, it shows {shown!r}"
    )
    screenshot(page, "3a-background-running-while-1+1")

    expect(status).to_contain_text(re.compile(r"done in \d+\.\d s · 1 image · \$0\.08"), timeout=WAIT)
    expect(button(outputs(bg), "Cancel")).to_be_hidden()
    picture = outputs(bg).locator("img[src^='data:image/']").first
    assert_picture(page, picture)
    assert error_outputs(page) == []
    if lab.mode == "keyed":
        assert_no_offline_notice(page)
        assert lab.submits() - submitted == 1, "the background run should reach the sandbox at KONTEXT_FAL_URL"
    screenshot(page, "3b-background-done")
    save_notebook(page, lab, "background.ipynb")


# -- the canary key, searched for everywhere -------------------------------------------------------------------
DATA_URI = re.compile(rb"data:image/[a-z+.-]+;base64,([A-Za-z0-9+/=]+)")


def embedded_images(data: bytes) -> list[bytes]:
    """The images inside a notebook or a page: data URIs, a notebook's image outputs and its widgets' buffers."""
    found = [base64.b64decode(m.group(1) + b"=" * (-len(m.group(1)) % 4)) for m in DATA_URI.finditer(data)]
    try:
        notebook = json.loads(data) if data.startswith(b"{") else None
    except ValueError:
        notebook = None
    if not isinstance(notebook, dict) or "cells" not in notebook:
        return found
    for each in notebook["cells"]:
        for output in each.get("outputs", []):
            for mime, value in output.get("data", {}).items():
                if mime.startswith("image/") and mime != "image/svg+xml":
                    found.append(base64.b64decode("".join(value) if isinstance(value, list) else value))
    widgets = notebook.get("metadata", {}).get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    for model in widgets.values():
        found += [base64.b64decode(b["data"]) for b in model.get("buffers", []) if b.get("encoding") == "base64"]
    return found


def image_texts(data: bytes) -> str:
    """Everything an image says about itself: kontext_nb's metadata, and each text chunk, Exif tag and info key."""
    texts = []
    try:
        texts.append(json.dumps(kontext_nb.journal.metadata.read(data), default=str))
    except Exception as exc:  # not one of ours, or no metadata: the raw bytes are still searched
        texts.append(f"(no kontext_nb metadata: {type(exc).__name__})")
    try:
        with Image.open(io.BytesIO(data)) as img:
            texts.append(repr(img.info))
            texts.append(repr(dict(img.getexif())))
    except Exception as exc:
        texts.append(f"(not an image: {type(exc).__name__})")
    return "\n".join(texts)


def canary_forms(canary: str, label: str, data: bytes) -> list[str]:
    """Where the canary is in data, by form: the bytes themselves, each embedded image, each image's metadata."""
    found = [f"{label}: {form}" for form in leaks(data, canary)]
    if data.startswith((b"\x89PNG", b"\xff\xd8", b"RIFF")):  # an image file: also what its metadata says
        found += [f"{label} metadata: {form}" for form in leaks(image_texts(data), canary)]
    for i, image in enumerate(embedded_images(data)):
        found += [f"{label}, image {i}: {form}" for form in leaks(image, canary)]
        found += [f"{label}, image {i} metadata: {form}" for form in leaks(image_texts(image), canary)]
    return found


@pytest.mark.parametrize("lab", ["keyed"], indirect=True)
def test_canary_key_appears_nowhere(lab: Lab, page: Page) -> None:
    assert lab.canary and lab.sandbox_log and lab.sandbox_url, "the canary test needs the keyed mode"
    missing = sorted(set(FLOWS) - set(lab.pages))
    assert not missing, (
        f"the keyed flow tests must run and save their notebooks first, in the same session (pytest -m browser "
        f"orders them so); not saved: {missing}"
    )
    # what they left, so the search below has something to find if the key were shown
    runs = lab.root / "kontext-runs"
    images = [p for p in (runs / RESULTS).rglob("*") if p.is_file()]
    assert len(images) >= sum(FLOWS.values()), f"the keyed flows made {sum(FLOWS.values())} images: {len(images)}"
    for name in FLOWS:
        saved = json.loads((lab.root / name).read_text())
        shown = [o for c in saved["cells"] for o in c.get("outputs", [])]
        assert shown, f"the saved {name} holds no outputs"
    panel = json.loads((lab.root / "panel.ipynb").read_text())["metadata"].get("widgets", {}).get(WIDGET_STATE, {})
    assert panel.get("state"), "the saved panel.ipynb holds no widget state (conftest's LAB_SETTINGS save it)"
    checkpoints = sorted(p.name for p in (lab.root / ".ipynb_checkpoints").glob("*.ipynb"))
    # a checkpoint per saved flow notebook (other keyed tests may save theirs too: every file is searched below)
    assert {f"{Path(name).stem}-checkpoint.ipynb" for name in FLOWS} <= set(checkpoints), checkpoints

    # each notebook re-opened, as a user would see it again
    for name in FLOWS:
        open_notebook(page, lab, name)
        expect(outputs(page).first).to_be_visible(timeout=WAIT)
        assert_no_offline_notice(page)
        lab.pages[f"{name}, re-opened"] = page.content()

    # everything under the server's folder: root (notebooks, checkpoints, runs folder), config, IPython, logs
    files = sorted(p for p in lab.base.rglob("*") if p.is_file())
    for log in (lab.log, lab.sandbox_log):
        assert log in files and log.stat().st_size > 0, f"{log.name} is missing or empty"
    assert runs / DB_NAME in files, f"no journal at {runs / DB_NAME}"
    assert any((runs / THUMBS) in p.parents for p in files), "no thumbnails in the runs folder"

    found = []
    for path in files:
        try:
            data = path.read_bytes()
        except FileNotFoundError:  # a temporary file renamed or removed since the listing
            continue
        found += canary_forms(lab.canary, str(path.relative_to(lab.base)), data)
    for label, html in lab.pages.items():
        found += canary_forms(lab.canary, f"page {label}", html.encode())
    assert found == [], f"the canary key was found ({len(files)} files and {len(lab.pages)} pages searched):\n" + (
        "\n".join(found)
    )
