"""A student's notebook runs unchanged through the proxy: only KONTEXT_FAL_URL and FAL_KEY (their token) are set.

The classroom notebook (budget caps, the panel, the history) in a real kernel through nbclient, the proxy in front of
a sandbox that accepts only the class key; the proxy's audit log names the student, and neither the class key nor
anything but the student's own token reaches the notebook.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from kontext_nb.proxy import Limits, ProxyServer
from kontext_nb.sandbox import SandboxServer

from .conftest import leaks

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "classroom.ipynb"


@pytest.mark.slow
def test_the_classroom_notebook_runs_unchanged_through_the_proxy(
    make_proxy: Callable[..., ProxyServer],
    upstream: SandboxServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = make_proxy(Limits(images_per_day=100, dollars_per_session=20.0, jobs_in_flight=4))
    token = server.classroom.add_student("Ada")
    notebook = tmp_path / NOTEBOOK.name
    shutil.copy(NOTEBOOK, notebook)
    for name in ("FAL_KEY_ID", "FAL_KEY_SECRET", "KONTEXT_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FAL_KEY", token)
    monkeypatch.setenv("KONTEXT_FAL_URL", server.url)
    nb = nbformat.read(notebook, as_version=4)
    NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    nbformat.write(nb, notebook)

    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
    saved = notebook.read_text()
    assert f"via {server.url}" in saved or server.url in saved  # the panel's header says where jobs go
    usage = server.classroom.students(server.proxy.session)[0]
    assert usage["name"] == "Ada" and usage["done"] >= 3 and usage["done"] == upstream.stats()["submits"]
    written = [p for p in tmp_path.rglob("*") if p.is_file() and "state" not in p.parts]
    assert {str(p): leaks(p.read_bytes()) for p in written if leaks(p.read_bytes())} == {}
    assert token not in saved  # the student's own token is not shown either
