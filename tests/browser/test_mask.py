"""The mask painter in a real JupyterLab, in headless Chromium: paint with the mouse (brush size, erase, undo,
invert twice), press "Use mask", run an inpaint, and check in the kernel that pixels outside the painted mask are
unchanged in the sandbox's result — and that the strokes themselves never reached the kernel."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .conftest import _notebook
from .test_lab import WAIT, cell, error_outputs, open_notebook, outputs, run_cell, save_notebook, show, wait_finished

if TYPE_CHECKING:
    from .conftest import Lab

try:
    from playwright.sync_api import Page, expect
except ImportError:  # the browser fixture fails with the install hint
    Page = Any  # type: ignore[misc,assignment]
    expect = None  # type: ignore[assignment]

pytestmark = pytest.mark.browser

Shot = Callable[[Any, str], Path]
NAME = "mask.ipynb"
CELLS = [
    "import kontext_nb as kx\n"
    "from PIL import Image, ImageDraw\n\n"
    "src = Image.new('RGB', (320, 240), (30, 60, 150))\n"
    "ImageDraw.Draw(src).ellipse((40, 40, 280, 200), fill=(240, 200, 30))\n"
    "painter = kx.mask(src, brush=24)\n"
    "sent = []  # every change of the widget's state the kernel hears of: strokes must not be among them\n"
    "painter.observe(lambda change: sent.append(change.name), names=['mask', 'brush'])\n"
    "painter",
    "import numpy as np\n\n"
    "out = kx.inpaint(src, 'a red hat', mask=painter, seed=3)\n"
    "size = out.images[0].size\n"
    "m = np.asarray(painter.mask_image.resize(size, Image.Resampling.NEAREST)) > 127\n"
    "b = np.asarray(src.resize(size, Image.Resampling.BILINEAR) if size != src.size else src, dtype=int)\n"
    "a = np.asarray(out.images[0].convert('RGB'), dtype=int)\n"
    "print('mask', painter.mask_image.size, '· painted pixels', int(m.sum()),\n"
    "      '· outside unchanged', bool((b[~m] == a[~m]).all()), '· inside changed', bool((b[m] != a[m]).any()),\n"
    "      '· kernel heard', sorted(set(sent)), len(sent))\n"
    "out",
]
REPORT = re.compile(
    r"mask \(320, 240\) · painted pixels (\d+) · outside unchanged True · inside changed True · "
    r"kernel heard \[(.*)\] (\d+)"
)


@pytest.fixture
def mask_notebook(lab: Lab) -> str:
    (lab.root / NAME).write_text(json.dumps(_notebook(CELLS)))
    return NAME


def stroke(page: Page, canvas: Any, points: list[tuple[float, float]]) -> None:
    """Drag the mouse through these points (fractions of the canvas's box)."""
    box = canvas.bounding_box()
    assert box is not None
    xy = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for x, y in xy[1:]:
        page.mouse.move(x, y, steps=8)
    page.mouse.up()


def painted_fraction(canvas: Any) -> float:
    return float(
        canvas.evaluate(
            """c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                     let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] >= 128) n++;
                     return n / (c.width * c.height); }"""
        )
    )


@pytest.mark.parametrize(
    "lab", ["offline"], indirect=True
)  # the view runs in the browser: where jobs go does not change it
def test_paint_a_mask_and_inpaint_only_there(lab: Lab, page: Page, screenshot: Shot, mask_notebook: str) -> None:
    open_notebook(page, lab, mask_notebook)
    first = run_cell(page, 0)
    wait_finished(first)
    painter = outputs(first).locator(".kx-mask")
    expect(painter).to_be_visible(timeout=WAIT)
    canvas = painter.locator("canvas.kx-paint")
    expect(canvas).to_have_attribute("width", "320")  # full resolution: one canvas pixel per source pixel
    expect(canvas).to_have_attribute("height", "240")
    show(painter)
    screenshot(page, "mask-1-painter")

    stroke(page, canvas, [(0.3, 0.3), (0.5, 0.45), (0.7, 0.6)])
    after_one = painted_fraction(canvas)
    assert 0.02 < after_one < 0.5, after_one
    painter.locator("input.kx-size").fill("60")  # a bigger brush
    stroke(page, canvas, [(0.25, 0.7), (0.45, 0.7)])
    assert painted_fraction(canvas) > after_one
    painter.get_by_role("button", name="Undo").click()
    assert painted_fraction(canvas) == pytest.approx(after_one)
    painter.get_by_role("button", name="Erase").click()
    stroke(page, canvas, [(0.68, 0.58), (0.72, 0.62)])
    erased = painted_fraction(canvas)
    assert erased < after_one
    painter.get_by_role("button", name="Invert").click()
    assert painted_fraction(canvas) == pytest.approx(1 - erased, abs=1e-3)
    painter.get_by_role("button", name="Invert").click()
    assert painted_fraction(canvas) == pytest.approx(erased, abs=1e-3)
    screenshot(page, "mask-2-painted")

    painter.get_by_role("button", name="Use mask").click()
    expect(painter.locator(".kx-state")).to_have_text("mask ready: 320x240", timeout=WAIT)

    second = run_cell(page, 1)
    wait_finished(second)
    report = outputs(second).filter(has_text="outside unchanged")
    expect(report).to_have_count(1, timeout=WAIT)
    found = REPORT.search(report.inner_text())
    assert found, report.inner_text()
    painted = int(found.group(1))
    assert abs(painted / (320 * 240) - erased) < 0.02, "the kernel's mask is the one painted"
    # the kernel heard the finished mask once (and the brush size once): never a stroke
    assert found.group(2) == "'brush', 'mask'" and int(found.group(3)) == 2, found.group(0)
    show(second)
    screenshot(page, "mask-3-inpainted")
    assert error_outputs(page) == []
    save_notebook(page, lab, mask_notebook)
    assert cell(page, 1).is_visible()
