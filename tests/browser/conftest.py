"""JupyterLab on loopback and one headless Chromium for the browser tests (``pytest -m browser``).

``lab``: a JupyterLab server, its root a temporary folder holding a copy of notebooks/quickstart.ipynb and the
small notebooks the tests open. It is session-scoped and parametrized, so every test taking it runs in two modes,
all ``offline`` tests first, then all ``keyed`` ones (pytest groups tests by a session fixture's param):

- ``offline``: no fal key and no KONTEXT_FAL_URL in JupyterLab's (hence the kernels') environment, so the kernels
  use kontext_nb's in-kernel offline sandbox.
- ``keyed``: a canary key ``FAL_KEY=kxcanary-<random hex>`` and KONTEXT_FAL_URL pointing at a sandbox started as a
  subprocess for the session (``python -m kontext_nb.sandbox --require-key <canary>``, its output in a log file).
  That sandbox refuses every other key, so each job that succeeds proves the kernels sent the key; the tests then
  check that nothing shows it (test_lab.py's canary test searches every file, log and page the mode left).

``page``: a fresh page (its own context) of one Chromium shared by every test in tests/browser.
``screenshot(page, name)`` saves into test-artifacts/browser/ at the repository root (keyed mode adds ``-keyed`` to
the name).

Nothing is downloaded: Chromium is the system one (Debian's ``chromium``; ``.ci/run`` installs it).
JupyterLab and Playwright come with the ``test`` extra; when one is missing the tests fail, they never skip.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from canary import new_canary

import kontext_nb.sandbox

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
MODES = ("offline", "keyed")
LAB_SETTINGS = {
    # no "get notified about Jupyter news?" toast over the notebook
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    # notebooks are saved when a test saves them (Ctrl+S), never by a timer in between
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    # saved notebooks also hold the widgets' state (the panel's header, cards, ...): more for the canary search
    "@jupyter-widgets/jupyterlab-manager/plugin": {"saveState": True},
}
SUBMIT_PATH = "fal-ai/flux-pro/kontext/max/text-to-image"
INSTALL_HINT = 'pip install -e ".[test]" (the test extra has jupyterlab and playwright)'

# the notebooks the tests open besides the quickstart: {file name: [cell sources]}
NOTEBOOKS = {
    "panel.ipynb": ["import kontext_nb as kx\n\npanel = kx.Panel()\npanel"],
    # in a folder of its own: its checkpoint is not one of the flows' (test_lab's canary test counts those)
    "judging/duel.ipynb": [
        "import kontext_nb as kx\n\n"
        "refs = [kx.generate('a lighthouse', seed=s).ref for s in (1, 2, 3)]\n"
        "view = kx.duel(refs, voter='lab')\nview",
        "votes = kx.get_session().tracker.journal.votes()\n"
        "print('votes', len(votes), 'ties', sum(v.tie for v in votes))",
        # the stars gallery cards and the compare view mount, on their own
        "from kontext_nb.widgets.rating import RatingStars\n\n"
        "stars = RatingStars()\nstars.bind(kx.get_session(), int(refs[0][1:]))\nstars",
        "print('rating', kx.load(refs[0]).journal_id, kx.history(min_rating=1)[0].rating)",
    ],
    "background.ipynb": [
        "import kontext_nb as kx\n\n%load_ext kontext_nb",
        # slow enough to see a background run queued or running while another cell runs: the sandbox the jobs go
        # to, the kernel's own (offline) or the one at KONTEXT_FAL_URL (keyed; the test sets its speed back after)
        "import kontext_nb.sandbox\n\n"
        'kontext_nb.sandbox.control(kx.get_session().info()["url"]).configure(inference_time=4);',
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
    """A running JupyterLab server, in one of the MODES."""

    url: str
    token: str
    root: Path
    log: Path
    process: subprocess.Popen[bytes]
    mode: str = "offline"
    canary: str | None = None
    """keyed: the FAL_KEY in the kernels' environment, the only key the sandbox accepts."""
    sandbox_url: str | None = None
    """keyed: KONTEXT_FAL_URL, the sandbox subprocess."""
    sandbox_log: Path | None = None
    """keyed: the sandbox subprocess's stdout and stderr."""
    sandbox_settings: dict[str, Any] = field(default_factory=dict)
    """keyed: the sandbox's runtime settings as started, for restore_sandbox()."""
    pages: dict[str, str] = field(default_factory=dict)
    """The notebooks the tests ran and saved, each with the page's HTML once saved (the canary test's evidence)."""

    @property
    def base(self) -> Path:
        """The temporary folder of everything this server and its kernels wrote: root, config, logs."""
        return self.root.parent

    @property
    def where(self) -> str:
        """What the page says about where jobs go (the panel's header): never the key."""
        return "offline sandbox" if self.sandbox_url is None else f"via {self.sandbox_url}"

    def submits(self) -> int:
        """keyed: jobs the sandbox subprocess has accepted so far (with the canary key: it accepts no other)."""
        assert self.sandbox_url is not None, "only keyed mode has a sandbox outside the kernels"
        return int(kontext_nb.sandbox.control(self.sandbox_url).stats()["submits"])

    def restore_sandbox(self) -> None:
        """keyed: the sandbox subprocess back to the settings it started with (a notebook may have slowed it)."""
        if self.sandbox_url is not None:
            kontext_nb.sandbox.control(self.sandbox_url).configure(**self.sandbox_settings)

    def notebook_url(self, name: str) -> str:
        """The notebook in a fresh workspace (``reset``): no tabs or dialogs left from an earlier page."""
        return f"{self.url}/lab/tree/{name}?token={self.token}&reset"

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"


@pytest.fixture(scope="session", params=MODES)
def lab(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Lab]:
    """JupyterLab in ``request.param`` mode (see the module's docstring)."""
    mode = request.param
    assert mode in MODES, f"unknown browser-test mode {mode!r}: use one of {MODES}"
    if importlib.util.find_spec("jupyterlab") is None:
        pytest.fail(f"JupyterLab is not installed, and the browser tests need it: {INSTALL_HINT}", pytrace=False)
    base = tmp_path_factory.mktemp(f"lab-{mode}")
    root = base / "notebooks"
    root.mkdir()
    shutil.copy(QUICKSTART, root / QUICKSTART.name)
    for name, sources in NOTEBOOKS.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(json.dumps(_notebook(sources), indent=1))
    # a Jupyter of its own: no user settings, workspaces or IPython startup files from this machine
    config = base / "jupyter-config"
    for plugin, values in LAB_SETTINGS.items():
        path = config / "lab" / "user-settings" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env.update(
        JUPYTER_CONFIG_DIR=str(config),
        JUPYTERLAB_SETTINGS_DIR=str(config / "lab" / "user-settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(base / "workspaces"),
        JUPYTER_RUNTIME_DIR=str(base / "runtime"),
        IPYTHONDIR=str(base / "ipython"),
        PYTHONUNBUFFERED="1",
    )
    sandbox: Sandbox | None = None
    if mode == "keyed":
        sandbox = _start_sandbox(base, new_canary())
        env.update(FAL_KEY=sandbox.canary, KONTEXT_FAL_URL=sandbox.url)
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
    try:
        with log.open("wb") as out:
            process = subprocess.Popen(command, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
        server = Lab(f"http://127.0.0.1:{port}", token, root, log, process, mode)
        if sandbox is not None:
            server.canary, server.sandbox_url, server.sandbox_log = sandbox.canary, sandbox.url, sandbox.log
            server.sandbox_settings = kontext_nb.sandbox.control(sandbox.url).configure()
        try:
            _wait_until_up(server)
            yield server
        finally:
            _stop(process)
    finally:
        if sandbox is not None:
            _stop(sandbox.process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:  # its message holds the command line, which may hold the canary: not raised
        process.kill()
        process.wait(5)


@dataclass
class Sandbox:
    """``python -m kontext_nb.sandbox`` running for a keyed session."""

    process: subprocess.Popen[bytes]
    url: str
    canary: str
    log: Path


def _start_sandbox(base: Path, canary: str) -> Sandbox:
    """A sandbox subprocess that accepts only ``canary``; returns once it said where it listens, checked that it
    refuses another key."""
    log = base / "sandbox.log"
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env["PYTHONUNBUFFERED"] = "1"
    # the key on the command line, as --require-key takes it: visible to ps, never written to a file by the test
    command = [sys.executable, "-m", "kontext_nb.sandbox", "--port", "0", "--require-key", canary]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=base, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = _wait_for_sandbox(process, log)
        refused = httpx.post(
            f"{url}/{SUBMIT_PATH}",
            json={"prompt": "a key check"},
            headers={"Authorization": "Key not-the-canary"},
            timeout=10,
            trust_env=False,
        )
        assert refused.status_code == 401, f"the sandbox accepted a key other than the canary: {refused.status_code}"
    except BaseException:
        _stop(process)
        raise
    return Sandbox(process, url, canary, log)


def _wait_for_sandbox(process: subprocess.Popen[bytes], log: Path) -> str:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        said = log.read_text(errors="replace")
        found = re.search(r"listening on (http://\S+)", said)
        if found:
            return found.group(1)
        if process.poll() is not None:
            pytest.fail(f"the sandbox subprocess exited with {process.returncode}:\n{said[-3000:]}", pytrace=False)
        time.sleep(0.05)
    pytest.fail(f"the sandbox subprocess said nothing within {STARTUP_TIMEOUT:.0f} s", pytrace=False)


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


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """One headless Chromium for every test in tests/browser (the system's, never a downloaded one).

    Package scope, not session: Playwright's sync API leaves its event loop set as the running one in the main
    thread, so a test elsewhere calling asyncio.run() must not run while it is open. Inside tests/browser nothing
    does; one launch there instead of one per module (and mode) saves a Chromium start each."""
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
def screenshot(artifacts: Path, lab: Lab) -> Callable[[Any, str], Path]:
    """``screenshot(page, name)``: test-artifacts/browser/NAME.png, NAME-keyed.png in keyed mode."""
    suffix = "" if lab.mode == "offline" else f"-{lab.mode}"

    def save(page: Any, name: str) -> Path:
        path = artifacts / f"{name}{suffix}.png"
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
