"""A duel vote in a real browser: key press → the next pair on the screen.

Used by judge_bench.py and views_bench.py (``browser_round_trip()``): JupyterLab on loopback with a notebook of its
own, the system Chromium through Playwright, sandbox results in the duel (``kx.duel``, or the panel's Duel tab).
The time is measured from outside the view, so the same measure runs on any version of it: a capturing keydown
listener on the window notes ``performance.now()`` as the key goes down; the time ends at the first frame in which
the duel says the next pair's number and both its pictures are loaded (``complete``, with a width), read after that
frame (``setTimeout`` in a ``requestAnimationFrame``). ``pythonpath`` puts another checkout's kontext_nb first on
the kernels' path (views_bench.py measures the code at the wave's start that way). Nothing is downloaded: Chromium
is /usr/bin/chromium (or KONTEXT_CHROMIUM).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

MAKE = (  # the jobs all at once: the offline sandbox takes a second a job, and only the votes are measured
    "import kontext_nb as kx\n"
    "print(kx.__file__)\n"
    "jobs = [kx.generate('a lighthouse', seed=s, wait=False) for s in range(1, RESULTS + 1)]\n"
    "refs = [job.result().ref for job in jobs]\n"
)
SHOW = {
    "cell": "view = kx.duel(refs, voter='bench')\nview",
    "panel": "panel = kx.Panel()\npanel.duel.count.value = RESULTS\npanel.tab.selected_index = 4\npanel",
}
KEY_TIME = "() => window.addEventListener('keydown', () => { window.kxKeyAt = performance.now() }, true)"
PAINTED = """expected => new Promise(resolve => {
  const ready = () => {
    const duel = document.querySelector('.kx-duel');
    if (!duel || duel.dataset.number !== expected) return false;
    const imgs = [...duel.querySelectorAll('.kx-duel-stage img')];
    return imgs.length === 2 && imgs.every(i => i.complete && i.naturalWidth > 0);
  };
  const tick = () => ready() ? setTimeout(() => resolve(performance.now() - window.kxKeyAt), 0)
                             : requestAnimationFrame(tick);
  tick();
})"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def browser_round_trip(
    votes: int = 30,
    warmup: int = 5,
    results: int = 12,
    *,
    where: str = "cell",
    pythonpath: str | None = None,
    look: float = 0.4,
) -> list[float]:
    """Milliseconds from each key press to the next pair on the screen, for ``votes`` votes after ``warmup``, in a
    duel of ``results`` results shown ``where`` ("cell": kx.duel; "panel": the panel's Duel tab). Each pair is looked
    at for ``look`` seconds before its key, as a voter does (nobody judges two pictures faster)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        root = base / "root"
        root.mkdir()
        source = (MAKE + SHOW[where]).replace("RESULTS", str(results))
        cells = [dict(cell_type="code", execution_count=None, id="c0", metadata={}, outputs=[], source=source)]
        kernelspec = {"display_name": "Python 3", "language": "python", "name": "python3"}
        notebook = {"cells": cells, "metadata": {"kernelspec": kernelspec}, "nbformat": 4, "nbformat_minor": 5}
        (root / "duel.ipynb").write_text(json.dumps(notebook))
        env = {k: v for k, v in os.environ.items() if k not in ("FAL_KEY", "KONTEXT_FAL_URL", "KONTEXT_HOME")}
        env.update(JUPYTER_CONFIG_DIR=str(base / "config"), IPYTHONDIR=str(base / "ipython"))
        if pythonpath:
            env["PYTHONPATH"] = os.pathsep.join(p for p in (pythonpath, env.get("PYTHONPATH")) if p)
        env.update(JUPYTER_RUNTIME_DIR=str(base / "runtime"), JUPYTERLAB_WORKSPACES_DIR=str(base / "ws"))
        port, token = _free_port(), secrets.token_hex(8)
        command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1"]
        command += [f"--ServerApp.port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"]
        log = (base / "lab.log").open("wb")
        lab = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(240):
                try:
                    if httpx.get(f"{url}/api/status", params={"token": token}, trust_env=False).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.25)
            chromium = os.environ.get("KONTEXT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(120_000)
                page.goto(f"{url}/lab/tree/duel.ipynb?token={token}&reset")
                page.evaluate(KEY_TIME)
                page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(state="attached")
                time.sleep(2)
                duel = page.locator(".kx-duel")
                for attempt in range(3):  # a Shift+Enter pressed while the kernel was still connecting is lost
                    page.locator(".jp-Cell .jp-InputArea-editor").first.click()
                    page.keyboard.press("Shift+Enter")
                    started = page.locator(".jp-Cell .jp-InputArea-prompt", has_text=re.compile(r"\[(\*|\d+)\]"))
                    try:
                        started.first.wait_for(timeout=20_000)
                        break
                    except PlaywrightTimeout:
                        if attempt == 2:
                            raise
                duel.wait_for()
                page.wait_for_function("() => document.querySelector('.kx-duel')?.dataset.number === '1'")
                used = page.locator(".jp-OutputArea-output", has_text="__init__.py").first.inner_text().strip()
                if pythonpath and not used.startswith(pythonpath):
                    raise RuntimeError(f"the kernel imported {used}, not the kontext_nb under {pythonpath}")
                duel.click(position={"x": 5, "y": 5})
                times: list[float] = []
                for k in range(warmup + votes):
                    time.sleep(look)
                    page.keyboard.press(("ArrowLeft", "ArrowRight", "=")[k % 3])
                    took = float(page.evaluate(PAINTED, str(k + 2)))
                    if k >= warmup:
                        times.append(took)
                browser.close()
            return times
        finally:
            lab.terminate()
            try:
                lab.wait(10)
            except subprocess.TimeoutExpired:
                lab.kill()
            log.close()
