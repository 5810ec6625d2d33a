"""Shared fixtures. ``sandbox``: the URL of a running fal-compatible sandbox with fast settings."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import background  # tests/background.py
import budget  # tests/budget.py
import pytest
from hypothesis import settings
from postgres import PostgresServer, start_server  # tests/postgres.py
from shell import Shell  # tests/shell.py

import kontext_nb
import kontext_nb.sandbox
from kontext_nb.config import RetryPolicy, Settings
from kontext_nb.session import Session

# hypothesis tests that set no budget of their own: 25 examples, 100 with KONTEXT_HYPOTHESIS=deep (tests/budget.py);
# on top of the profile hypothesis chose itself ("ci" when it detects CI: derandomized, so CI never flakes on a draw)
_chosen = settings.get_profile(settings.get_current_profile_name())
settings.register_profile("kontext", _chosen, max_examples=100 if budget.DEEP else 25)
settings.load_profile("kontext")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """mypy takes half a minute of one core: run on one process (``-n 0``), it starts now, beside the tests."""
    if config.option.collectonly or config.option.numprocesses or os.environ.get("PYTEST_XDIST_WORKER"):
        return
    if any(item.nodeid.endswith("test_lint.py::test_mypy_strict") for item in items):
        background.start(background.MYPY)


def work_unit(nodeid: str) -> str:
    """What one worker runs whole, in order: every browser test (one JupyterLab per mode serves them all, and the
    canary test reads what the flows before it saved), else a test's file (its module fixtures are made once, and
    a file's last test may write a document from the others' results, as test_money and test_fault_matrix do)."""
    path = nodeid.split("::", 1)[0]
    return "tests/browser" if path.startswith("tests/browser/") else path


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """The suite runs on two workers (``-n 2`` in pyproject.toml), a work unit (above) at a time, in the order
    collected: the browser tests, the longest unit, start first. (xdist's own ``--dist loadgroup`` cannot be used:
    it renames nodeids, which pytest 9.2 ignores.)"""
    from xdist.scheduler import LoadScopeScheduling

    config.option.loadscopereorder = False

    class ByWorkUnit(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return ByWorkUnit(config, log)


def pytest_sessionfinish() -> None:
    background.stop_all()


# fast settings: tiny images, short inference; each test starts from these, with a clean slate
SANDBOX_FAST = {
    "workers": 2,
    "queue_delay": 0.0,
    "inference_time": 0.05,
    "keepalive_seconds": 15.0,
    "image_scale": 0.25,
    "retry_after": 1,
    "slow_seconds": 0.3,
    "max_upload_bytes": 50 * 1024 * 1024,
    "stream": True,
    "clock_offset": 0.0,
}


@pytest.fixture(autouse=True, scope="session")
def runs_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Journals and images of the whole run go to a temporary folder, never into the checkout."""
    folder = tmp_path_factory.mktemp("kontext-runs")
    previous = os.environ.get("KONTEXT_HOME")
    os.environ["KONTEXT_HOME"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("KONTEXT_HOME", None)
    else:
        os.environ["KONTEXT_HOME"] = previous


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[kontext_nb.sandbox.SandboxServer]:
    """One sandbox for the whole run (starting one costs ~50 ms, but there is no need to)."""
    server = kontext_nb.sandbox.start(**SANDBOX_FAST)
    yield server
    server.stop()


@pytest.fixture
def sandbox(sandbox_server: kontext_nb.sandbox.SandboxServer) -> str:
    """The sandbox URL, reset (no requests, faults or counters) and set to the fast settings."""
    sandbox_server.reset()
    sandbox_server.configure(**SANDBOX_FAST)
    return sandbox_server.url


@pytest.fixture
def sb(sandbox_server: kontext_nb.sandbox.SandboxServer) -> kontext_nb.sandbox.SandboxServer:
    """The running sandbox itself (reset, fast settings, no faults), for tests that steer it."""
    sandbox_server.reset()
    sandbox_server.configure(**SANDBOX_FAST)
    return sandbox_server


TEST_KEY = "test-key-0123456789abcdef"


@pytest.fixture
def make_session(
    sb: kontext_nb.sandbox.SandboxServer, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Session]]:
    """Sessions on the sandbox with quick retries and a runs folder of the test's own;
    ``make_session(concurrency=2)`` changes settings. A test that asks for ``journal_url`` runs on both journals."""
    made: list[Session] = []
    url = request.getfixturevalue("journal_url") if "journal_url" in request.fixturenames else None

    def make(**changes: Any) -> Session:
        settings = Settings(
            base_url=sb.url,
            key=TEST_KEY,
            retry=RetryPolicy(attempts=5, base_delay=0.01, max_delay=0.5),
            runs_dir=str(tmp_path / "runs"),
            journal_url=url,
        )
        session = Session(settings.with_(**changes), notice=lambda message: None)
        made.append(session)
        return session

    yield make
    for session in made:
        session.close()


@pytest.fixture
def session(make_session: Callable[..., Session]) -> Session:
    return make_session()


@pytest.fixture(autouse=True)
def fresh_notices() -> None:
    """Each test starts as a fresh process would: no notice given yet."""
    from kontext_nb.config import ANNOUNCED

    ANNOUNCED.clear()


@pytest.fixture(autouse=True)
def module_session_restored() -> Iterator[None]:
    """A test may give the module-level calls a session of its own (``kx.set_session``); the next test
    gets back whatever was there before."""
    previous = kontext_nb.current_session()
    yield
    kontext_nb.set_session(previous)


@pytest.fixture
def shell(make_session: Callable[..., Session], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Shell]:
    """IPython's global test shell with %kontext loaded, on a sandbox session of its own, in tmp_path.

    The shell outlives the test: the variables a test (or -o) made and the settings it changed are taken back.
    """
    from IPython.testing import globalipapp

    globalipapp.start_ipython()  # one global test shell, started on first use
    ip = globalipapp.get_ipython()
    monkeypatch.chdir(tmp_path)
    kontext_nb.set_session(make_session())
    ip.run_line_magic("load_ext", "kontext_nb")
    names = set(ip.user_ns)
    yield Shell(ip)
    for name in set(ip.user_ns) - names:
        del ip.user_ns[name]
    ip.run_line_magic("unload_ext", "kontext_nb")
    ip.config.pop("Kontext", None)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL cluster for the whole run (tests/postgres.py), started when a test first asks."""
    server = start_server()
    yield server
    server.close()


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty PostgreSQL database of this test's own: its URL (dropped afterwards)."""
    with pg_server.database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def journal_url(request: pytest.FixtureRequest) -> str | None:
    """Both journal backends: None (SQLite in the runs folder), then a fresh PostgreSQL database's URL."""
    if request.param == "sqlite":
        return None
    return str(request.getfixturevalue("pg_url"))
