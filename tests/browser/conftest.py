"""JupyterLab on loopback and one headless Chromium for the browser tests (``pytest -m browser``).

``lab``: a JupyterLab server for the session, its root a temporary folder holding a copy of
notebooks/quickstart.ipynb and the small notebooks the tests open; no fal key in its environment,
so the kernels use kontext_nb's offline sandbox. ``page``: a fresh page of a browser shared by the
session. ``screenshot(page, name)`` saves into test-artifacts/browser/ at the repository root.

Nothing is downloaded: Chromium is the system one (Debian's ``chromium``; ``.ci/run`` installs it).
JupyterLab and Playwright come with the ``test`` extra; when one is missing the tests fail, they never skip.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "browser"
QUICKSTART = REPO / "notebooks" / "quickstart.ipynb"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 1000}
STARTUP_TIMEOUT = 60.0
# variables that would send the kernels to fal, to another server or to another runs folder
UNSET = ("FAL_KEY", "FAL_KEY_ID", "FAL_KEY_SECRET", "KONTEXT_FAL_URL", "KONTEXT_HOME")
INSTALL_HINT = 'pip install -e ".[test]" (the test extra has jupyterlab and playwright)'

# the notebooks the tests open besides the quickstart: {file name: [cell sources]}
NOTEBOOKS = {
    "panel.ipynb": ["import kontext_nb as kx\n\npanel = kx.Panel()\npanel"],
    "background.ipynb": [
        "import kontext_nb as kx\n\n%load_ext kontext_nb",
        # slow enough to see a background run queued or running while another cell runs
        "kx.get_session().engine\nkx.get_session()._sandbox.configure(inference_time=4);",
        "%kontext a lighthouse --bg -o bg",
        "1 + 1",
    ],
}


def _notebook(sources: list[str]) -> dict[str, Any]:
    cells = [
        {"cell_type": "code", "execution_count": None, "id": f"cell-{i}", "metadata": {}, "outputs": [], "source": src}
        for i, src in enumerate(sources)
    ]
    kernelspec = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    return {"cells": cells, "metadata": {"kernelspec": kernelspec}, "nbformat": 4, "nbformat_minor": 5}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Lab:
    """A running JupyterLab server."""

    url: str
    token: str
    root: Path
    log: Path
    process: subprocess.Popen[bytes]

    def notebook_url(self, name: str) -> str:
        """The notebook in a fresh workspace (``reset``): no tabs or dialogs left from an earlier page."""
        return f"{self.url}/lab/tree/{name}?token={self.token}&reset"

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if importlib.util.find_spec("jupyterlab") is None:
        pytest.fail(f"JupyterLab is not installed, and the browser tests need it: {INSTALL_HINT}", pytrace=False)
    base = tmp_path_factory.mktemp("lab")
    root = base / "notebooks"
    root.mkdir()
    shutil.copy(QUICKSTART, root / QUICKSTART.name)
    for name, sources in NOTEBOOKS.items():
        (root / name).write_text(json.dumps(_notebook(sources), indent=1))
    # a Jupyter of its own: no user settings, workspaces or IPython startup files from this machine
    config = base / "jupyter-config"
    settings = config / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    # no "get notified about Jupyter news?" toast over the notebook
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env.update(
        JUPYTER_CONFIG_DIR=str(config),
        JUPYTERLAB_SETTINGS_DIR=str(config / "lab" / "user-settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(base / "workspaces"),
        JUPYTER_RUNTIME_DIR=str(base / "runtime"),
        IPYTHONDIR=str(base / "ipython"),
        PYTHONUNBUFFERED="1",
    )
    port, token = _free_port(), secrets.token_hex(16)
    log = base / "jupyterlab.log"
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--allow-root",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Lab(f"http://127.0.0.1:{port}", token, root, log, process)
    try:
        _wait_until_up(server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _wait_until_up(server: Lab) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"JupyterLab exited with {server.process.returncode}:\n{server.log_tail()}", pytrace=False)
        try:
            answer = httpx.get(f"{server.url}/api/status", params={"token": server.token}, timeout=2, trust_env=False)
            if answer.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    pytest.fail(f"JupyterLab did not answer within {STARTUP_TIMEOUT:.0f} s:\n{server.log_tail()}", pytrace=False)


def _chromium() -> str:
    found = os.environ.get("KONTEXT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(found).exists():
        pytest.fail(
            f"no Chromium at {found}: install the system one (apt-get install chromium, as .ci/run does) "
            "or point KONTEXT_CHROMIUM at one",
            pytrace=False,
        )
    return found


@pytest.fixture(scope="module")  # Playwright's sync API keeps an event loop running: stop it with the module
def browser() -> Iterator[Any]:
    """One headless Chromium for the session (the system's, never a downloaded one)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(
            f"Playwright for Python is not installed, and the browser tests need it: {INSTALL_HINT}", pytrace=False
        )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=_chromium(), headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """test-artifacts/browser/ at the repository root, emptied of the last run's screenshots."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    return ARTIFACTS


@pytest.fixture
def screenshot(artifacts: Path) -> Callable[[Any, str], Path]:
    def save(page: Any, name: str) -> Path:
        path = artifacts / f"{name}.png"
        page.screenshot(path=str(path))
        return path

    return save


@pytest.fixture
def page(browser: Any, artifacts: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh page (its own context) for each test; a failing test leaves a screenshot of it."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(60_000)
    tab = context.new_page()
    try:
        yield tab
    finally:
        report = request.node.stash.get(CALL_REPORT, None)
        if report is not None and report.failed:
            try:
                tab.screenshot(path=str(artifacts / f"FAILED-{request.node.name}.png"))
            except Exception as exc:  # the page may be gone: the test's own error matters more
                print(f"no screenshot of the failure: {exc}")
        context.close()


CALL_REPORT = pytest.StashKey[pytest.TestReport]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[CALL_REPORT] = report
    return report
