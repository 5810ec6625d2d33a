"""Benchmark of the compare view in a real JupyterLab and Chromium: what one divider move costs.

    python bench/compare_bench.py     # about a minute; prints a table and writes bench/compare_results.md
    python bench/compare_bench.py --tiny   # 3 moves each: nothing written (CI runs it)

One notebook makes an edit and its source on the kernel's offline sandbox (1184x880 JPEGs, as fal's are about one
megapixel), then shows the pair twice: with today's design until this change (an ipywidgets slider whose every move
re-renders an HTML block of two 320 px data-URI thumbnails in the kernel; reproduced below as ``LEGACY``, since the
package no longer has it) and with CompareWidget. In the page, 30 moves of each are made one after another: the
slider by its keyboard (ArrowRight on noUiSlider's handle), the new divider by pointer events on the image. For each
move the page records the time from the input event to the animation frame that shows the change; the websocket
frames to and from the kernel are counted by Playwright during the moves. Also: the bytes that reach the page when
each view of the pair is first shown. Measurement only: it never fails on a missed target.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from common import size, write_results
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
MOVES = size(30, 3)
CHROMIUM = os.environ.get("KONTEXT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"

SETUP = """import kontext_nb as kx
kx.configure(runs_dir=RUNS)
fox = kx.generate("a red fox in the snow", seed=42, aspect_ratio="4:3")
blue = kx.edit(fox, "make the fox blue", seed=7)
"""

LEGACY = """import html, ipywidgets as w
from kontext_nb.views import render
from kontext_nb.views.compare import Comparison
SIDE = 320

def shot(item, label):
    image = item.images[0] if hasattr(item, "images") else item
    data, mime = render.thumbnail(image, SIDE)
    return render.data_uri(data, mime), label, image.height / image.width

def pair_html(bottom, top, percent, side=SIDE):  # today's design, as compare_view.pair_html had it
    esc = html.escape
    height = round(side * min(1.6, max(0.4, bottom[2], top[2])))
    clip = round(side * percent / 100)
    img = f"position:absolute;left:0;top:0;width:{side}px;height:{height}px;max-width:none;object-fit:contain"
    return (f'<div class="kontext-before-after"><div style="position:relative;width:{side}px;height:{height}px;'
            f'overflow:hidden"><img src="{bottom[0]}" style="{img}"/><div class="clip" data-clip="{clip}" '
            f'style="position:absolute;left:0;top:0;width:{clip}px;height:{height}px;overflow:hidden;'
            f'border-right:2px solid #fff"><img src="{top[0]}" style="{img}"/></div></div>'
            f'<span>{esc(top[1])} ({percent}%)</span></div>')

pair = Comparison.edit_and_source(blue)
before, after = shot(pair.items[0], "source"), shot(pair.items[1], "edit")
slider = w.IntSlider(value=50, min=0, max=100, description="after %", continuous_update=True)
flicker = w.ToggleButton(description="flicker")
view = w.HTML(pair_html(before, after, 50))
def draw(_=None):
    top, bottom = (before, after) if flicker.value else (after, before)
    view.value = pair_html(bottom, top, slider.value)
slider.observe(draw, "value"); flicker.observe(draw, "value")
w.VBox([w.HBox([slider, flicker]), view])
"""

NEW = """from kontext_nb.widgets.compare_view import CompareView
compare = CompareView()
compare.add(blue)
compare.widget
"""

# in the page: 30 keyboard moves of the legacy slider; each waits for the re-rendered clip, then a frame
LEGACY_MOVES = """async (moves) => {
  const handle = document.querySelector('.widget-slider .noUi-handle');
  const out = [];
  for (let i = 0; i < moves; i++) {
    const clip = () => document.querySelector('.kontext-before-after .clip').dataset.clip;
    const was = clip();
    await new Promise(r => setTimeout(r, Math.random() * 16));  // the input lands anywhere in a frame
    const t0 = performance.now();
    handle.dispatchEvent(new KeyboardEvent('keydown', {key: 'ArrowRight', keyCode: 39, bubbles: true}));
    while (clip() === was) await new Promise(r => setTimeout(r, 0));
    out.push(await new Promise(r => requestAnimationFrame(() => r(performance.now() - t0))));
  }
  return out;
}"""

# in the page: 30 pointer moves dragging the new divider; each waits for the frame that draws it
NEW_MOVES = """async (moves) => {
  const stage = document.querySelector('.kx-compare .kx-stage');
  const root = document.querySelector('.kx-compare');
  const r = stage.getBoundingClientRect();
  const at = (f) => ({clientX: r.left + r.width * f, clientY: r.top + r.height / 2, pointerId: 7, bubbles: true,
                      button: 0, buttons: 1, isPrimary: true, pointerType: 'mouse'});
  stage.dispatchEvent(new PointerEvent('pointerdown', at(0.5)));
  await new Promise(r => requestAnimationFrame(r));
  const out = [];
  for (let i = 1; i <= moves; i++) {
    await new Promise(r => setTimeout(r, Math.random() * 16));  // the input lands anywhere in a frame
    const t0 = performance.now();
    stage.dispatchEvent(new PointerEvent('pointermove', at(0.5 - 0.4 * i / moves)));
    out.push(await new Promise(r => requestAnimationFrame(() => r(performance.now() - t0))));
  }
  stage.dispatchEvent(new PointerEvent('pointerup', at(0.1)));
  return {times: out, cut: root.dataset.cut};
}"""


class Frames:
    def __init__(self, page: Any) -> None:
        self.sent: list[int] = []
        self.received: list[int] = []
        page.on("websocket", self._socket)

    def _socket(self, socket: Any) -> None:
        if "/api/kernels/" in socket.url:
            socket.on("framesent", lambda p: self.sent.append(len(p)))
            socket.on("framereceived", lambda p: self.received.append(len(p)))

    def mark(self) -> tuple[int, int]:
        return len(self.sent), len(self.received)

    def since(self, mark: tuple[int, int]) -> dict[str, int]:
        sent, received = self.sent[mark[0] :], self.received[mark[1] :]
        return {"sent": len(sent), "sent_bytes": sum(sent), "received": len(received), "received_bytes": sum(received)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def notebook(cells: list[str]) -> str:
    return json.dumps(
        {
            "cells": [
                {
                    "cell_type": "code",
                    "execution_count": None,
                    "id": f"c{i}",
                    "metadata": {},
                    "outputs": [],
                    "source": c,
                }
                for i, c in enumerate(cells)
            ],
            "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
            "nbformat": 4,
            "nbformat_minor": 5,
        }
    )


def run_cell(page: Any, index: int) -> None:
    cell = page.locator(".jp-Notebook .jp-Cell").nth(index)
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")
    cell.locator(".jp-InputArea-prompt").filter(has_text="[").first.wait_for()
    page.wait_for_function(
        "i => /^\\[\\d+\\]:$/.test(document.querySelectorAll('.jp-Notebook .jp-Cell')[i]"
        ".querySelector('.jp-InputArea-prompt').textContent.trim())",
        arg=index,
        timeout=120_000,
    )


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def p90(xs: list[float]) -> float:
    return sorted(xs)[max(0, round(0.9 * len(xs)) - 1)]


def main() -> None:
    base = Path(tempfile.mkdtemp(prefix="kx-compare-bench-"))
    root = base / "notebooks"
    root.mkdir()
    runs = base / "runs"
    setup = SETUP.replace("RUNS", repr(str(runs)))
    (root / "bench.ipynb").write_text(notebook([setup, LEGACY, NEW]))
    env = {k: v for k, v in os.environ.items() if k not in ("FAL_KEY", "KONTEXT_FAL_URL", "KONTEXT_HOME")}
    env |= {"JUPYTER_CONFIG_DIR": str(base / "config"), "JUPYTER_RUNTIME_DIR": str(base / "runtime")}
    port, token = free_port(), secrets.token_hex(8)
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1"]
    command += [f"--ServerApp.port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"]
    log = (base / "lab.log").open("wb")
    lab = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                if httpx.get(f"{url}/api/status", params={"token": token}, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        results = measure(url, token)
    finally:
        lab.terminate()
        lab.wait(20)
        log.close()
        shutil.rmtree(base, ignore_errors=True)
    report(results)


def measure(url: str, token: str) -> dict[str, Any]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        frames = Frames(page)
        page.goto(f"{url}/lab/tree/bench.ipynb?token={token}&reset")
        page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(state="attached", timeout=120_000)
        time.sleep(2)
        run_cell(page, 0)
        out: dict[str, Any] = {}
        for name, index, ready in (
            ("legacy", 1, ".kontext-before-after .clip"),
            ("new", 2, ".kx-compare[data-ready='true'] .kx-stage img"),
        ):
            mark = frames.mark()
            run_cell(page, index)
            page.locator(ready).first.wait_for(timeout=120_000)
            time.sleep(1.5)  # every image model and output has arrived
            out[f"{name}_shown"] = frames.since(mark)
        page.locator(".kx-compare .kx-stage").scroll_into_view_if_needed()
        for name, script in (("legacy", LEGACY_MOVES), ("new", NEW_MOVES)):
            time.sleep(1.0)
            mark = frames.mark()
            got = page.evaluate(script, MOVES)
            time.sleep(1.0)  # late echoes from the kernel count too
            out[f"{name}_moves"] = frames.since(mark)
            out[f"{name}_times"] = got if isinstance(got, list) else got["times"]
            if isinstance(got, dict):
                out["new_cut"] = got["cut"]
        browser.close()
    return out


def report(r: dict[str, Any]) -> None:
    lt, nt = r["legacy_times"], r["new_times"]
    lm, nm = r["legacy_moves"], r["new_moves"]
    frame = 1000 / 60
    rows = [
        (
            "kernel messages per divider move (to / from the kernel)",
            f"{nm['sent'] / MOVES:.1f} / {nm['received'] / MOVES:.1f}",
            f"{lm['sent'] / MOVES:.1f} / {lm['received'] / MOVES:.1f}",
            "0",
        ),
        (
            "bytes over the kernel's websocket per divider move",
            f"{(nm['sent_bytes'] + nm['received_bytes']) / MOVES:,.0f}",
            f"{(lm['sent_bytes'] + lm['received_bytes']) / MOVES:,.0f}",
            "0",
        ),
        (
            "input event → the frame showing the move (median / p90)",
            f"{median(nt):.1f} / {p90(nt):.1f} ms",
            f"{median(lt):.1f} / {p90(lt):.1f} ms",
            f"< {frame:.1f} ms",
        ),
        (
            "bytes reaching the page to show the pair (once)",
            f"{r['new_shown']['received_bytes']:,}",
            f"{r['legacy_shown']['received_bytes']:,}",
            "—",
        ),
    ]
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# kontext_nb compare view benchmark",
        "",
        f"{now} · {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.platform()}",
        "",
        "| measure | CompareWidget (browser) | today's slider (kernel) | target |",
        "|---|---|---|---|",
        *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows],
        "",
        f"- {MOVES} moves each in JupyterLab in headless Chromium; the pair: an edit and its source, 1184x880 JPEGs "
        "from the kernel's offline sandbox",
        "- the new view gets both images once at full resolution (the files with their metadata) as binary buffers;"
        " today's slider holds two 320 px thumbnails and re-sends both as base64 in every re-rendered HTML block",
        "- each move comes at a random moment within a frame (as a mouse's do) and is timed until the animation "
        f"frame that draws it: the new view's time is its work plus the wait for the next frame ({frame:.1f} ms apart)",
        f"- the divider ended at {r.get('new_cut')} of the width (moved from 0.5 towards 0.1)",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    write_results(ROOT / "bench" / "compare_results.md", text)


if __name__ == "__main__":
    main()
