"""Issue 14 point 4 for static outputs: a blocking ``%kontext`` run's "full size" and "download" in JupyterLab 4 and
Notebook 7, live and in the saved notebook reopened after the kernel was shut down, with the runs folder outside
the notebook's folder (the file is embedded in the output) and below it (Jupyter serves the file).

"full size" must show the image itself (no JupyterLab page, no ``file://``), "download" must give the JPEG's exact
bytes under its readable name (Playwright's download event). A notebook received from someone else is untrusted:
JupyterLab sanitizes its outputs (no ``data:`` links, no ``download`` attributes); the image and its full size must
still show there.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .test_lab import WAIT, assert_picture, outputs, wait_for_kernel
from .test_panel_views import kernel_call, kernel_of

if TYPE_CHECKING:
    from .conftest import Lab

try:
    from playwright.sync_api import Locator, Page, expect
except ImportError:  # the browser fixture fails with the install hint
    Locator = Page = Any  # type: ignore[misc,assignment]
    expect = None  # type: ignore[assignment]

pytestmark = pytest.mark.browser

Shot = Callable[[Any, str], Path]
FOLDER = "static"
PROMPT = "a red fox in the snow"
NAME = re.compile(r"\d{4}-seed42-a-red-fox-in-the-snow\.jpg")
SETTLE = 2.0  # s after the kernel reports idle: the widget manager and the kernel connection settle


def notebook(runs: Path) -> dict[str, Any]:
    sources = [
        f"import kontext_nb as kx\n\n%load_ext kontext_nb\nkx.configure(runs_dir={str(runs)!r})",
        f"%kontext {PROMPT} --seed 42",
    ]
    cells = [
        {"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {}, "outputs": [], "source": s}
        for i, s in enumerate(sources)
    ]
    kernelspec = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    return {"cells": cells, "metadata": {"kernelspec": kernelspec}, "nbformat": 4, "nbformat_minor": 5}


def url_of(lab: Lab, front: str, name: str) -> str:
    if front == "lab":
        return lab.notebook_url(name)
    return f"{lab.url}/notebooks/{name}?token={lab.token}"


def open_in(page: Page, lab: Lab, front: str, name: str) -> None:
    page.goto(url_of(lab, front, name))
    expect(page.locator(".jp-Notebook .jp-Cell").first).to_be_visible(timeout=WAIT)
    wait_for_kernel(page, lab, name)
    if front == "lab":
        expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_be_attached(timeout=WAIT)
    time.sleep(SETTLE)


def run(page: Page, index: int) -> Locator:
    """Shift+Enter in a cell and wait until its prompt shows a number (it ran)."""
    target = page.locator(".jp-Notebook .jp-Cell").nth(index)
    target.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")
    expect(target.locator(".jp-InputArea-prompt")).to_have_text(re.compile(r"^\[\d+\]:$"), timeout=WAIT)
    return target


def save(page: Page, path: Path) -> None:
    """Ctrl+S, then wait until the file on disk holds the result's output."""
    page.locator(".jp-Notebook .jp-Cell").first.locator(".jp-InputArea-prompt").click()  # command mode
    page.keyboard.press("Control+s")
    deadline = time.monotonic() + WAIT / 1000
    while time.monotonic() < deadline:
        if path.exists() and "kontext-result" in path.read_text():
            return
        time.sleep(0.25)
    pytest.fail(f"{path.name} was not saved with the result's output", pytrace=False)


def result_of(page: Page) -> Locator:
    out = outputs(page.locator(".jp-Notebook .jp-Cell").nth(1)).locator(".kontext-result")
    expect(out).to_have_count(1, timeout=WAIT)
    return out


def data_bytes(uri: str) -> bytes:
    head, _, body = uri.partition(",")
    assert head.startswith("data:image/") and head.endswith(";base64"), uri[:40]
    return base64.b64decode(body)


def check_picture(page: Page, out: Locator) -> None:
    picture = out.locator("img").first
    expect(picture).to_be_visible()
    assert_picture(page, picture)
    expect(out.locator("a[href^='file:']")).to_have_count(0)


def check_full_size(
    page: Page, out: Locator, front: str, where: str, file: Path, shot: Callable[[Page, str], Any]
) -> None:
    """'full size' shows the image itself at its natural size: never a JupyterLab page, never file://."""
    if where == "outside":  # embedded: a <details> that shows the file's own bytes, no navigation
        out.get_by_text("full size").click()
        full = out.locator("details[open] img")
        expect(full).to_be_visible()
        assert data_bytes(str(full.get_attribute("src"))) == file.read_bytes()
        size = full.evaluate("i => [i.naturalWidth, i.clientWidth, i.complete]")
        assert size[2] and size[0] > 100 and size[0] == size[1], f"not at its natural size: {size}"
        out.locator("details summary").evaluate("el => el.scrollIntoView({block: 'start'})")
        shot(page, "full-size")
        out.get_by_text("full size").click()  # and closes again
        expect(out.locator("details[open]")).to_have_count(0)
        return
    link = out.get_by_role("link", name="full size")
    if front == "lab":  # JupyterLab opens a file it serves in its own image viewer, in a tab beside the notebook
        link.click()
        viewer = page.locator(".jp-ImageViewer img")
        expect(viewer).to_be_visible(timeout=WAIT)
        page.wait_for_function("i => i.complete && i.naturalWidth > 100", arg=viewer.element_handle(), timeout=WAIT)
        shot(page, "full-size")
        page.locator(".lm-TabBar-tab.lm-mod-current .lm-TabBar-tabCloseIcon").click()
        expect(viewer).to_have_count(0)
        return
    with page.context.expect_page() as opened:  # Notebook 7: the file itself in a new browser tab
        link.click()
    tab = opened.value
    tab.wait_for_load_state()
    assert re.search(r"/files/.+\.jpg(\?|$)", tab.url), tab.url
    size = tab.evaluate("() => { const i = document.images[0]; return i ? [i.naturalWidth, i.naturalHeight] : null }")
    assert size is not None and size[0] > 100, f"the new tab shows no image: {size}"
    shot(tab, "full-size")
    tab.close()


def check_download(page: Page, out: Locator, file: Path) -> None:
    with page.expect_download() as got:
        out.get_by_role("link", name="download").click()
    assert NAME.fullmatch(got.value.suggested_filename), got.value.suggested_filename
    assert Path(got.value.path()).read_bytes() == file.read_bytes(), "the download is the JPEG as saved"


@pytest.mark.parametrize("where", ["outside", "below"])
@pytest.mark.parametrize("front", ["lab", "notebook7"])
def test_static_full_size_and_download_live_and_reopened(
    lab: Lab, page: Page, browser: Any, screenshot: Shot, front: str, where: str
) -> None:
    if lab.mode != "offline":
        pytest.skip("where the files are does not depend on where jobs go: offline mode covers it")
    folder = lab.root / FOLDER
    folder.mkdir(exist_ok=True)
    runs = (lab.base if where == "outside" else folder) / f"runs-static-{front}-{where}"
    name = f"{FOLDER}/{front}-{where}.ipynb"
    path = lab.root / name
    path.write_text(json.dumps(notebook(runs), indent=1))
    tag = f"14-static-{front}-{where}"

    def shot(target: Page, step: str) -> None:
        screenshot(target, f"{tag}-{stage}-{step}")

    stage = "live"
    open_in(page, lab, front, name)
    run(page, 0)
    run(page, 1)
    out = result_of(page)
    (file,) = (runs / "images").iterdir()
    check_picture(page, out)
    out.scroll_into_view_if_needed()
    shot(page, "output")
    check_download(page, out, file)
    check_full_size(page, out, front, where, file, shot)
    save(page, path)
    kernel_call(lab, "DELETE", kernel_of(lab, name.rpartition("/")[2]))
    page.close()

    stage = "reopened"  # the same notebook, saved, with the kernel gone: nothing is re-run
    reader = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    try:
        reader.goto(url_of(lab, front, name))
        out = result_of(reader)
        check_picture(reader, out)
        shot(reader, "output")
        check_download(reader, out, file)
        check_full_size(reader, out, front, where, file, shot)
    finally:
        reader.context.close()

    stage = "received"  # the notebook as a colleague gets it: its outputs are not trusted, so they are sanitized
    saved = json.loads(path.read_text())
    saved["metadata"]["received"] = True  # changed content: the server's signature no longer matches
    received = f"{FOLDER}/{front}-{where}-received.ipynb"
    (lab.root / received).write_text(json.dumps(saved, indent=1))
    reader = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    try:
        reader.goto(url_of(lab, front, received))
        out = result_of(reader)
        check_picture(reader, out)
        expect(out.locator("a[download]")).to_have_count(0)  # sanitized: what a reader with no trust gets
        check_full_size(reader, out, front, where, file, shot)
        shot(reader, "output")
    finally:
        reader.context.close()
