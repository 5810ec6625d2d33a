"""The notebooks run top to bottom in a real kernel, offline on the sandbox."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def run_notebook(path: Path, tmp_path: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    env_backup = dict(os.environ)
    for var in ("FAL_KEY", "FAL_KEY_ID", "FAL_KEY_SECRET", "KONTEXT_FAL_URL", "KONTEXT_HOME"):
        os.environ.pop(var, None)
    try:
        NotebookClient(
            nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
        ).execute()
    finally:
        os.environ.clear()
        os.environ.update(env_backup)
    return nb


def outputs_text(nb: nbformat.NotebookNode) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts.extend(str(v) for k, v in out.get("data", {}).items() if k in ("text/plain", "text/html"))
    return "\n".join(parts)


@pytest.mark.slow
def test_quickstart_runs_offline(tmp_path: Path) -> None:
    nb = run_notebook(NOTEBOOKS / "quickstart.ipynb", tmp_path)
    text = outputs_text(nb)
    assert "offline sandbox" in text and "FAL_KEY" in text
    assert "same seed, same image: True · from the journal: True · cost: 0" in text
    assert "other seed, other image: True" in text
    assert "make it claymation" in text and "a red fox in the snow" in text, "history and lineage shown"
    runs = tmp_path / "kontext-runs"
    assert (runs / "journal.sqlite3").exists() and len(list((runs / "images").iterdir())) >= 6
    assert "guidance_scale=25 is out of range" in text
    assert '<img src="data:image/jpeg;base64,' in text, "images are embedded, not linked"
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []


@pytest.mark.slow
def test_magics_notebook_runs_in_a_real_kernel(tmp_path: Path) -> None:
    nb = run_notebook(NOTEBOOKS / "magics.ipynb", tmp_path)
    text = outputs_text(nb)
    errors = [
        (c.source, o.get("ename")) for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"
    ]
    assert errors == [], "no tracebacks: a UsageError is one line on stderr"
    bad = nb.cells[-1]
    assert [o.get("name") for o in bad.outputs] == ["stderr"]
    assert (
        bad.outputs[0]["text"].strip() == "UsageError: unknown option --sed (did you mean --seed?); see %kontext help"
    )
    assert "a otter floating on a river" in text, "{animal} was filled from the notebook"
    assert "sweep of 2 prompts × 2 seeds × 2 guidance_scale values = 8 images · $0.64" in text
    pages = sorted(tmp_path.glob("sweep*.png"))
    assert [p.name for p in pages] == ["sweep-p1.png", "sweep-p2.png"], "one grid per guidance value"
    from kontext_nb.metadata import read

    assert len(read(pages[0])["kontext_nb_grid"]["cells"]) == 4, "every cell's metadata is in the file"
    assert "backend: sandbox" in text and "fal key: not set" in text
    assert "this cell ran while the storm job was queued" in text or "storm job was running" in text
    assert "application/vnd.jupyter.widget-view+json" in str(nb.cells), "--bg shows a widget with a Cancel button"
    assert text.count('<img src="data:image/') >= 10, "results and grids embed their thumbnails"
