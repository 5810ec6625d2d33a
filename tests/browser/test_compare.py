"""The compare view and the file links in a real JupyterLab and Notebook 7, in headless Chromium.

An edit is compared with its source in the panel's Compare tab, with the runs folder outside the notebook's folder.
While the divider is dragged on the image, the view zoomed with the wheel and the buttons, and flickered by itself
and with a key, the test counts the frames the page sends on the kernel's websocket: there must be none. A click that
does ask the kernel (a gallery card's download) is counted too, so the counter is known to work. Downloads must be
the image files' own bytes under readable names; "open full size" must show the image in a new tab.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from waiting import wait_for  # tests/waiting.py: tests/ is on sys.path

from .test_lab import WAIT, assert_picture, button, cards, open_notebook, outputs, pane, run_cell, tab, wait_for_kernel

if TYPE_CHECKING:
    from .conftest import Lab

try:
    from playwright.sync_api import Locator, Page, expect
except ImportError:  # the browser fixture fails with the install hint
    Locator = Page = Any  # type: ignore[misc,assignment]
    expect = None  # type: ignore[assignment]

pytestmark = pytest.mark.browser

Shot = Callable[[Any, str], Path]
FRONTS = ("lab", "notebook7")
SETTLE = 2.0
FOLDER = "compare"


def source(runs: Path) -> str:
    return (
        "import kontext_nb as kx\n\n"
        f"kx.configure(runs_dir={str(runs)!r})  # outside the notebook's folder\n"
        "panel = kx.Panel()  # its gallery shows the jobs that follow\n"
        'fox = kx.generate("a red fox in the snow", seed=42, aspect_ratio="4:3")\n'
        'blue = kx.edit(fox, "make the fox blue", seed=7)\n'
        "panel.compare.add(blue)\n"
        "panel.tab.selected_index = 2\n"
        "panel"
    )


class Frames:
    """Frames the page sends to and gets from kernels (``/api/kernels/.../channels`` websockets)."""

    def __init__(self, page: Page) -> None:
        self.sent: list[Any] = []
        self.received: list[Any] = []
        page.on("websocket", self._socket)

    def _socket(self, socket: Any) -> None:
        if "/api/kernels/" in socket.url:
            socket.on("framesent", lambda payload: self.sent.append(payload))
            socket.on("framereceived", lambda payload: self.received.append(payload))

    def mark(self) -> tuple[int, int]:
        return len(self.sent), len(self.received)

    def since(self, mark: tuple[int, int]) -> tuple[int, int]:
        return len(self.sent) - mark[0], len(self.received) - mark[1]

    def quiet(self, page: Page, seconds: float = 1.0) -> None:
        """Until no frame has gone either way for ``seconds`` (the kernel's last replies to a cell are in): a
        fixed sleep was too short when the machine was busy. Bounded by WAIT."""
        deadline, last, still_since = time.monotonic() + WAIT / 1000, self.mark(), time.monotonic()
        while time.monotonic() - still_since < seconds:
            assert time.monotonic() < deadline, f"kernel frames never stopped: {self.mark()}"
            page.wait_for_timeout(100)  # lets Playwright deliver the frame events meanwhile
            if self.mark() != last:
                last, still_since = self.mark(), time.monotonic()


def open_in(page: Page, lab: Lab, front: str, name: str) -> None:
    """The notebook open with its kernel started: on a loaded machine (a JupyterLab just started, as for the first
    keyed test) the page may ask which kernel to start, and nothing runs until that is answered (wait_for_kernel)."""
    name = f"{FOLDER}/{name}"
    if front == "lab":
        open_notebook(page, lab, name)
        return
    page.goto(f"{lab.url}/notebooks/{name}?token={lab.token}")
    expect(page.locator(".jp-Notebook .jp-Cell").first).to_be_visible(timeout=WAIT)
    wait_for_kernel(page, lab, name)
    expect(page.locator("#jp-top-bar, .jp-NotebookPanel-toolbar").first).to_be_visible(timeout=WAIT)
    expect(page.get_by_text(re.compile(r"Idle|Kernel status: Idle|\| Idle"))).not_to_have_count(0, timeout=WAIT)
    time.sleep(SETTLE)


def run_first_cell(page: Page) -> Locator:
    """Shift+Enter in the first cell, and it is seen queued or running (a lost key press fails here, not later)."""
    return run_cell(page, 0)


def within(viewer: Locator, query: str) -> Any:
    return viewer.evaluate(query)


def data(viewer: Locator, key: str) -> str:
    return str(viewer.get_attribute(f"data-{key}") or "")


@pytest.fixture(params=FRONTS)
def front(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_compare_and_files_in_the_browser(lab: Lab, page: Page, screenshot: Shot, front: str) -> None:
    tag = f"compare-{front}"
    runs = lab.base / f"runs-{front}"  # beside the server's root, not below it
    name = f"{tag}.ipynb"
    write_notebook(lab, name, source(runs))
    frames = Frames(page)
    open_in(page, lab, front, name)
    run_first_cell(page)
    out = outputs(page.locator(".jp-Notebook .jp-Cell").first)
    viewer = out.locator(".kx-compare")
    expect(viewer).to_have_attribute("data-ready", "true", timeout=WAIT)
    expect(viewer).to_have_attribute("data-mode", "slider")
    stage = viewer.locator(".kx-stage")
    expect(stage.locator("img.kx-layer")).to_have_count(2)
    for img in stage.locator("img.kx-layer").all():
        assert_picture(page, img)
    expect(viewer.locator(".kx-labels")).to_contain_text("source")
    stage.scroll_into_view_if_needed()
    frames.quiet(page)  # the kernel has finished its replies to the cell: from now on it should hear nothing
    screenshot(page, f"{tag}-1-slider")

    # drag the divider on the image itself: 30 moves, no frame to the kernel
    mark = frames.mark()
    box = stage.bounding_box()
    assert box is not None and box["width"] > 300, f"the stage is too small: {box}"
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.5, y)
    page.mouse.down()
    for k in range(1, 31):
        page.mouse.move(box["x"] + box["width"] * (0.5 - 0.3 * k / 30), y)
    page.mouse.up()
    expect(viewer).to_have_attribute("data-cut", re.compile(r"^0\.(19|20|21)"), timeout=WAIT)
    divider = viewer.locator(".kx-divider")
    left = float(divider.evaluate("el => parseFloat(el.style.left)"))
    assert abs(left - box["width"] * 0.2) < 3, f"the divider is at {left}px, not at 20% of {box['width']}px"
    screenshot(page, f"{tag}-2-divider-dragged")

    # zoom: the wheel over the image, then the buttons (100% = one image pixel per screen pixel, and beyond)
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.4)
    page.mouse.wheel(0, -400)
    expect(viewer).not_to_have_attribute("data-zoom", "1.0000", timeout=WAIT)
    zoomed = float(data(viewer, "zoom"))
    assert zoomed > 1.5, f"the wheel zoomed to {zoomed}"
    scales = stage.locator("img.kx-layer").evaluate_all("els => els.map(e => e.style.transform)")
    assert len(set(scales)) == 1, f"both images must move together: {scales}"
    viewer.locator(".kx-actual").click()
    expect(viewer.locator(".kx-zoom-label")).to_have_text("100%")
    viewer.locator(".kx-zoom-in").click()
    expect(viewer.locator(".kx-zoom-label")).to_have_text("150%")
    page.mouse.move(box["x"] + box["width"] * 0.7, y)  # shift+drag pans both images
    page.keyboard.down("Shift")
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, y - 40, steps=10)
    page.mouse.up()
    page.keyboard.up("Shift")
    expect(viewer).to_have_attribute("data-cut", re.compile(r"^0\.(19|20|21)"))  # panning left the divider alone
    screenshot(page, f"{tag}-3-zoomed-150")

    # flicker: by itself at 8 per second, and with the f key
    viewer.locator(".kx-rate").select_option("8")
    viewer.locator(".kx-play").click()
    expect(viewer).to_have_attribute("data-mode", "flicker")
    seen: set[str] = set()

    def both_shown() -> bool:  # sampled until each image was seen, not for a fixed time
        seen.add(data(viewer, "shown"))
        return len(seen) >= 2

    wait_for(both_shown, timeout=WAIT / 1000, interval=0.03)
    assert seen == {"0", "1"}, f"flicker showed {seen}"
    viewer.locator(".kx-play").click()  # stop
    before = data(viewer, "shown")
    viewer.focus()
    page.keyboard.press("f")
    expect(viewer).not_to_have_attribute("data-shown", before)
    screenshot(page, f"{tag}-4-flicker")
    sent, received = frames.since(mark)
    assert sent == 0, f"dragging, zooming and flickering sent {sent} frames to the kernel"
    assert received == 0, f"the kernel sent {received} frames meanwhile"

    # the difference, computed in the browser
    viewer.locator("button.kx-mode[data-mode='difference']").click()
    expect(viewer.locator("img.kx-diff")).to_have_count(1, timeout=WAIT)
    assert float(data(viewer, "difference")) > 1.0, "an edit differs from its source"
    screenshot(page, f"{tag}-5-difference")

    # side by side at equal size, each with its caption; the zoom applies to both
    viewer.locator("button.kx-mode[data-mode='side by side']").click()
    expect(viewer.locator(".kx-figure")).to_have_count(2)
    expect(viewer.locator(".kx-figure").nth(1)).to_contain_text("seed 7")
    sizes = viewer.locator(".kx-figure .kx-stage").evaluate_all("els => els.map(e => [e.clientWidth, e.clientHeight])")
    assert sizes[0] == sizes[1], f"side by side at equal size: {sizes}"
    screenshot(page, f"{tag}-6-side-by-side")

    # download and open full size, from the bytes the view holds
    images = runs / "images"
    on_disk = {p.read_bytes(): p for p in images.iterdir()}
    with page.expect_download() as got:
        viewer.locator(".kx-figure").nth(1).locator(".kx-download").click()
    download = got.value
    assert re.fullmatch(r"\d{4}-seed7-make-the-fox-blue\.jpg", download.suggested_filename), download.suggested_filename
    body = Path(download.path()).read_bytes()
    assert body[:2] == b"\xff\xd8" and body in on_disk, "the download is the edit's JPEG as saved in the runs folder"
    with page.context.expect_page() as opened:
        viewer.locator(".kx-figure").nth(1).locator(".kx-open").click()
    check_image_tab(opened.value, tag, screenshot)
    sent, _ = frames.since(mark)
    assert sent == 0, "the compare view's own download and open sent nothing to the kernel"

    # a gallery card's links: the panel's FileServer fetches the file once (this does talk to the kernel)
    panel = out.locator(".widget-tab")
    tab(panel, "Gallery").click()
    card = cards(panel).filter(has_text="make the fox blue").first
    link = card.locator("a[data-kx-action='download']")
    expect(link).to_be_visible(timeout=WAIT)
    expect(card.locator("a[href^='file:']")).to_have_count(0)
    with page.expect_download() as got:
        link.click()
    assert re.fullmatch(r"\d{4}-seed7-make-the-fox-blue\.jpg", got.value.suggested_filename)
    assert Path(got.value.path()).read_bytes() == body
    assert frames.since(mark)[0] > 0, "the counter sees the messages a fetch sends"
    with page.context.expect_page() as opened:
        card.locator("a[data-kx-action='open']").click()
    check_image_tab(opened.value, f"{tag}-card", screenshot)
    screenshot(page, f"{tag}-7-gallery-links")
    expect(button(pane(panel), "compare").first).to_be_visible()


def check_image_tab(tab_page: Page, tag: str, screenshot: Shot) -> None:
    """A new tab showing the image itself (a blob: URL), not a JupyterLab page."""
    tab_page.wait_for_url(re.compile(r"^blob:"), timeout=WAIT)  # a card's tab opens at once, then gets the file
    tab_page.wait_for_load_state()
    size = tab_page.evaluate(
        "() => { const i = document.images[0]; return i ? [i.naturalWidth, i.naturalHeight] : null }"
    )
    assert size is not None and size[0] > 100, f"the new tab shows no image: {size}"
    assert tab_page.locator(".jp-LabShell, #main").count() == 0
    screenshot(tab_page, f"{tag}-open-full-size")
    tab_page.close()


@pytest.mark.parametrize(
    "lab", ["offline"], indirect=True
)  # the view runs in the browser: where jobs go does not change it
def test_several_results_side_by_side_with_what_differs(lab: Lab, page: Page, screenshot: Shot) -> None:
    name = "compare-several.ipynb"
    code = (
        "import kontext_nb as kx\n"
        "from kontext_nb.widgets import CompareView\n\n"
        f"kx.configure(runs_dir={str(lab.base / 'runs-several')!r})\n"
        "view = CompareView()\n"
        'view.add(kx.generate("a red fox in the snow", seed=1))\n'
        'view.add(kx.generate("a red fox in the rain", seed=2))\n'
        'view.add(kx.generate("a red fox in the rain <img src=x onerror=alert(1)>", seed=2, guidance_scale=6))\n'
        "view.widget"
    )
    write_notebook(lab, name, code)
    frames = Frames(page)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    open_in(page, lab, "lab", name)
    run_first_cell(page)
    viewer = outputs(page.locator(".jp-Notebook .jp-Cell").first).locator(".kx-compare")
    expect(viewer).to_have_attribute("data-ready", "true", timeout=WAIT)
    expect(viewer).to_have_attribute("data-mode", "side by side")  # three results open side by side
    figures = viewer.locator(".kx-figure")
    expect(figures).to_have_count(3)
    sizes = figures.locator(".kx-stage").evaluate_all("els => els.map(e => [e.clientWidth, e.clientHeight])")
    assert len({tuple(s) for s in sizes}) == 1, f"not at equal size: {sizes}"
    expect(figures.nth(1).locator("mark")).to_have_text("rain")
    expect(figures.nth(0).locator("mark")).to_have_text("snow")
    expect(figures.nth(2)).to_contain_text("rain <img src=x onerror=alert(1)>")  # a prompt is text, never markup
    expect(figures.nth(2).locator("img")).to_have_count(1)
    assert dialogs == []
    hot = viewer.locator("td.kx-hot")
    expect(hot).to_have_count(3)  # seed 2 twice, guidance 6 once
    expect(viewer.locator("tr", has=page.locator("th", has_text="guidance_scale")).locator("td.kx-hot")).to_have_text(
        "6.0"
    )
    viewer.scroll_into_view_if_needed()
    frames.quiet(page)
    mark = frames.mark()
    box = figures.nth(0).locator(".kx-stage").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -500)
    expect(viewer).not_to_have_attribute("data-zoom", "1.0000")
    transforms = figures.locator("img.kx-layer").evaluate_all("els => els.map(e => e.style.transform)")
    assert len(set(transforms)) == 1, f"all three zoom together: {transforms}"
    screenshot(page, "compare-several-side-by-side-zoomed")
    viewer.locator(".kx-pick-b").select_option("2")  # overlay the first and the third
    viewer.locator("button.kx-mode[data-mode='slider']").click()
    expect(viewer.locator(".kx-labels")).to_contain_text(re.compile(r"@\d+ ▶"))
    screenshot(page, "compare-several-slider-first-and-third")
    assert frames.since(mark)[0] == 0, "zooming and picking the pair stay in the browser"


def write_notebook(lab: Lab, name: str, code: str) -> None:
    """A notebook of one cell in compare/ below the server's root (its checkpoints stay apart from test_lab's)."""
    folder = lab.root / FOLDER
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(json.dumps(one_cell_notebook(code)))


def one_cell_notebook(code: str) -> dict[str, Any]:
    kernelspec = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    cell = {"cell_type": "code", "execution_count": None, "id": "c0", "metadata": {}, "outputs": [], "source": code}
    return {"cells": [cell], "metadata": {"kernelspec": kernelspec}, "nbformat": 4, "nbformat_minor": 5}
