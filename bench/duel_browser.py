"""A duel vote's round trip in a real browser: key press → the kernel records the vote → the next pair drawn.

Used by judge_bench.py (``browser_round_trip()``): JupyterLab on loopback with a notebook of its own, the system
Chromium through Playwright, 12 sandbox results in the duel. duel.js stamps ``data-sent-at`` when a key sends a
vote and ``data-shown-at`` when the next pair is drawn (``performance.now()``); the difference is the round trip
a voter sees. Nothing is downloaded: Chromium is /usr/bin/chromium (or KONTEXT_CHROMIUM).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

CELL = (  # the jobs all at once: the offline sandbox takes a second a job, and only the votes are measured
    "import kontext_nb as kx\n"
    "jobs = [kx.generate('a lighthouse', seed=s, wait=False) for s in range(1, RESULTS + 1)]\n"
    "refs = [job.result().ref for job in jobs]\n"
    "view = kx.duel(refs, voter='bench')\nview"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def browser_round_trip(votes: int = 30, warmup: int = 5, results: int = 12) -> list[float]:
    """Milliseconds from each key press to the next pair drawn, for ``votes`` votes after ``warmup``, in a duel of
    ``results`` results."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        root = base / "root"
        root.mkdir()
        source = CELL.replace("RESULTS", str(results))
        cells = [dict(cell_type="code", execution_count=None, id="c0", metadata={}, outputs=[], source=source)]
        kernelspec = {"display_name": "Python 3", "language": "python", "name": "python3"}
        notebook = {"cells": cells, "metadata": {"kernelspec": kernelspec}, "nbformat": 4, "nbformat_minor": 5}
        (root / "duel.ipynb").write_text(json.dumps(notebook))
        env = {k: v for k, v in os.environ.items() if k not in ("FAL_KEY", "KONTEXT_FAL_URL", "KONTEXT_HOME")}
        env.update(JUPYTER_CONFIG_DIR=str(base / "config"), IPYTHONDIR=str(base / "ipython"))
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
                page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(state="attached")
                time.sleep(2)
                page.locator(".jp-Cell .jp-InputArea-editor").first.click()
                page.keyboard.press("Shift+Enter")
                duel = page.locator(".kx-duel")
                duel.wait_for()
                page.wait_for_function("() => document.querySelector('.kx-duel')?.dataset.number === '1'")
                duel.click(position={"x": 5, "y": 5})
                times: list[float] = []
                for k in range(warmup + votes):
                    page.keyboard.press(("ArrowLeft", "ArrowRight", "=")[k % 3])
                    page.wait_for_function(
                        f"() => document.querySelector('.kx-duel').dataset.number === '{k + 2}'", polling="raf"
                    )
                    sent, shown = duel.evaluate("el => [Number(el.dataset.sentAt), Number(el.dataset.shownAt)]")
                    if k >= warmup:
                        times.append(shown - sent)
                browser.close()
            return times
        finally:
            lab.terminate()
            try:
                lab.wait(10)
            except subprocess.TimeoutExpired:
                lab.kill()
            log.close()
