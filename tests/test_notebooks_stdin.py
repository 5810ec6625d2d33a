"""Issue 22 point 8: no notebook waits on stdin. Each notebook runs in a real kernel whose ``input`` fails the cell
(set before every cell, after the kernel's own): in JupyterLab's Run All such a cell would stop at an input box."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
GUARD = (
    "import builtins\n"
    "def _no_stdin(*args, **kwargs):\n"
    "    raise RuntimeError(f'this notebook waited on stdin: {args[0] if args else \"\"}')\n"
    "get_ipython().events.register('pre_run_cell', lambda *a: setattr(builtins, 'input', _no_stdin))"
)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")))
def test_no_notebook_waits_on_stdin(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("FAL_KEY", "FAL_KEY_ID", "FAL_KEY_SECRET", "KONTEXT_FAL_URL", "KONTEXT_HOME"):
        monkeypatch.delenv(var, raising=False)
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(GUARD))
    NotebookClient(
        nb, timeout=180, kernel_name="python3", allow_errors=True, resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    waited = [
        cell.source.splitlines()[0]
        for cell in nb.cells
        for out in cell.get("outputs", [])
        if "waited on stdin" in str(out.get("evalue", "")) + str(out.get("text", ""))
    ]
    assert waited == [], f"{name}: cells that would stop Run All at an input box: {waited}"
