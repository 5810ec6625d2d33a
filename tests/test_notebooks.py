"""The notebooks run top to bottom in a real kernel, offline on the sandbox.

Every run here also proves the notebook never waits on stdin (issue 22 point 8): a first cell makes ``input`` fail
the cell it is called in (set before every cell, after the kernel's own), where JupyterLab's Run All would stop at
an input box. Every notebook in notebooks/ is run here (RUN_HERE; a new one needs a test of its own). The
quickstart runs once, on a runs folder the module shares: the tests that check a notebook after the quickstart on
the same folder go on from there (each checks only the jobs it made).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
RUN_HERE = {"quickstart", "magics", "editing", "comparing", "classroom", "judging", "family", "models"}
"""The notebooks these tests run (each through run_notebook, so each is also checked for waits on stdin)."""
NO_STDIN = (
    "import builtins\n"
    "def _no_stdin(*args, **kwargs):\n"
    "    raise RuntimeError(f'this notebook waited on stdin: {args[0] if args else \"\"}')\n"
    "get_ipython().events.register('pre_run_cell', lambda *a: setattr(builtins, 'input', _no_stdin))"
)


def run_notebook(path: Path, tmp_path: Path) -> nbformat.NotebookNode:
    """The notebook run in a fresh kernel in tmp_path with no fal key; fails if a cell waited on stdin. The guard
    cell is taken out again, so the cells are the notebook's own."""
    assert path.stem in RUN_HERE, f"{path.name}: add it to RUN_HERE"
    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(NO_STDIN))
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
    guard = nb.cells.pop(0)
    assert guard.source == NO_STDIN and not guard.outputs, guard.outputs
    waited = [  # also in a cell tagged raises-exception, whose error does not stop the run
        cell.source.splitlines()[0]
        for cell in nb.cells
        for out in cell.get("outputs", [])
        if "waited on stdin" in str(out.get("evalue", "")) + str(out.get("text", ""))
    ]
    assert waited == [], f"{path.name}: cells that would stop Run All at an input box: {waited}"
    return nb


def test_every_notebook_is_run_here() -> None:
    assert {p.stem for p in NOTEBOOKS.glob("*.ipynb")} == RUN_HERE


@pytest.fixture(scope="module")
def after_quickstart(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, nbformat.NotebookNode]]:
    """A folder where the quickstart ran first, on a new runs folder: (the folder, the quickstart as run)."""
    folder = tmp_path_factory.mktemp("after-quickstart")
    yield folder, run_notebook(NOTEBOOKS / "quickstart.ipynb", folder)


def outputs_text(nb: nbformat.NotebookNode) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts.extend(str(v) for k, v in out.get("data", {}).items() if k in ("text/plain", "text/html"))
    return "\n".join(parts)


@pytest.mark.slow
def test_quickstart_runs_offline(after_quickstart: tuple[Path, nbformat.NotebookNode]) -> None:
    tmp_path, nb = after_quickstart
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
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [], "nothing is written beside the notebook"
    pages = sorted((tmp_path / "kontext-runs" / "grids").glob("sweep*.png"))
    assert [p.name for p in pages] == ["sweep-p1.png", "sweep-p2.png"], "one grid per guidance value"
    from kontext_nb.journal.metadata import read

    assert len(read(pages[0])["kontext_nb_grid"]["cells"]) == 4, "every cell's metadata is in the file"
    assert "backend: sandbox" in text and "fal key: not set" in text
    assert "this cell ran while the storm job was queued" in text or "storm job was running" in text
    # (--bg ends as plain HTML through update_display_data, which nbclient applies only to messages of the cell it
    # runs: tests/browser/test_saved.py checks it in JupyterLab)
    assert "application/vnd.jupyter.widget-view+json" in str(nb.cells), "--bg shows a widget with a Cancel button"
    raft = _value(_cell(nb, "%kontext compare $clay $raft"))
    assert "[claymation]" in raft and "[raft]" in raft, "the notebook's own jobs"
    assert text.count('<img src="data:image/') >= 10, "results and grids embed their thumbnails"


def _cell(nb: nbformat.NotebookNode, source_start: str) -> nbformat.NotebookNode:
    """The one code cell whose source starts with this text."""
    found = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith(source_start)]
    assert len(found) == 1, f"{len(found)} cells start with {source_start!r}"
    return found[0]


def _stdout(cell: nbformat.NotebookNode) -> str:
    return "".join(o["text"] for o in cell.outputs if o.get("output_type") == "stream" and o.get("name") == "stdout")


def _value(cell: nbformat.NotebookNode, mime: str = "text/plain") -> str:
    values = [o["data"][mime] for o in cell.outputs if o.get("output_type") == "execute_result"]
    assert len(values) == 1, f"{len(values)} values from {cell.source[:60]!r}"
    return str(values[0])


def _problems(nb: nbformat.NotebookNode) -> list[tuple[str, str]]:
    """Error outputs and stderr text of cells not tagged raises-exception."""
    return [
        (c.source[:60], o.get("ename") or o.get("text", ""))
        for c in nb.cells
        if "raises-exception" not in c.metadata.get("tags", [])
        for o in c.get("outputs", [])
        if o.get("output_type") == "error" or o.get("name") == "stderr"
    ]


def _journal(folder: Path) -> list:
    from kontext_nb.journal.db import Journal

    journal = Journal(folder)
    try:
        return sorted(journal.search(), key=lambda r: r.id)
    finally:
        journal.close()


@pytest.mark.slow
def test_editing_notebook_runs(tmp_path: Path) -> None:
    import re

    nb = run_notebook(NOTEBOOKS / "editing.ipynb", tmp_path)
    text = outputs_text(nb)
    assert _problems(nb) == [] and [o for c in nb.cells for o in c.get("outputs", []) if "ename" in o] == []

    chain = [
        "a sunlit Scandinavian living room, grey sofa, oak floor, wide-angle architectural photo",
        "replace the grey sofa with a green velvet sofa",
        "add a brass floor lamp next to the sofa",
        "make it evening, the floor lamp switched on, warm light",
    ]
    assert "@1 → @2 → @3: each edit knows the job it started from" in text
    lineage = _stdout(_cell(nb, "for step, record in enumerate(kx.lineage(evening))")).splitlines()
    parents = ["None", "1", "2", "3"]
    assert lineage == [f"{i}. @{i + 1} (parent {parents[i]}): {p}" for i, p in enumerate(chain)], "original first"
    table = _value(_cell(nb, "%kontext lineage $evening"))
    rows = [line.split()[0] for line in table.splitlines()[1:5]]
    assert rows == ["@4", "@3", "@2", "@1"] and "4 jobs · $0.32" in table, "the magic shows it newest first"
    assert '<img src="data:image/' in _value(_cell(nb, "%kontext lineage $evening"), "text/html")

    children = _value(_cell(nb, "rug = kx.edit(sofa"))
    assert "'@3: add a brass floor lamp next to the sofa'" in children
    assert "'@5: add a patterned Moroccan rug on the floor'" in children
    tree = _stdout(_cell(nb, "def show_tree"))
    assert tree.splitlines() == [
        f"@1 [text-to-image] {chain[0]}",
        f"    @2 [edit] {chain[1]}",
        f"        @3 [edit] {chain[2]}",
        f"            @4 [edit] {chain[3]}",
        "                @6 [multi] the evening light of the first room with the rug of the second",
        "            @7 [multi] move the brass lamp from the first image into the second room",
        "        @5 [edit] add a patterned Moroccan rug on the floor",
        "            @6 [multi] the evening light of the first room with the rug of the second",
        "            @7 [multi] move the brass lamp from the first image into the second room",
        f"        @8 [edit] {chain[2]}",
    ], "two branches from @2, multi edits under each source, the rerun beside the edit it repeats"

    assert "@8 is @3 again with guidance 6.0" in text
    rerun = _value(_cell(nb, "literal = kx.rerun"))
    assert "Comparison of 2: @3, @8" in rerun and re.search(r"guidance_scale\s+3\.5\s+6\.0", rerun)
    assert "background:#ffe58a" in _value(_cell(nb, "literal = kx.rerun"), "text/html"), "the change is highlighted"
    source = _value(_cell(nb, "%kontext compare $lamp"))
    assert source.startswith("Comparison of 2: source, @3") and "prompt: add a brass floor lamp" in source
    assert _value(_cell(nb, "%kontext compare $lamp"), "text/html").count('<img src="data:image/') == 2

    meta = _value(_cell(nb, "meta = kx.read_metadata"))
    assert "'parent': 2" in meta and "'journal_id': 3" in meta and "'seed': 5" in meta

    records = _journal(tmp_path / "kontext-runs")
    assert [(r.id, r.parent_id, r.status) for r in records] == [
        (1, None, "done"), (2, 1, "done"), (3, 2, "done"), (4, 3, "done"),
        (5, 2, "done"), (6, 4, "done"), (7, 3, "done"), (8, 2, "done"),
    ]  # fmt: skip
    multi = [r for r in records if r.endpoint.endswith("/multi")]
    assert [r.id for r in multi] == [6, 7] and all(len(r.input_hashes) == 2 for r in multi), "two sources each"
    assert [r.parents for r in multi] == [(4, 5), (3, 5)], "the journal keeps every source as a parent"
    assert records[7].arguments["guidance_scale"] == 6 and records[7].seed == records[2].seed == 5
    assert records[7].input_hashes == records[2].input_hashes, "the rerun edits the same source image"
    assert text.count('<img src="data:image/') >= 10


@pytest.mark.slow
def test_comparing_notebook_runs(tmp_path: Path) -> None:
    import re

    nb = run_notebook(NOTEBOOKS / "comparing.ipynb", tmp_path)
    text = outputs_text(nb)
    assert _problems(nb) == [] and [o for c in nb.cells for o in c.get("outputs", []) if "ename" in o] == []

    for start in ("sunset = kx.generate", "%kontext compare $sunset $storm"):
        words = _value(_cell(nb, start))
        assert "a lighthouse on a rocky coast [at] [sunset,] oil painting" in words, start
        assert "a lighthouse on a rocky coast [in] [a] [storm,] oil painting" in words, start
        assert "<mark>storm,</mark>" in _value(_cell(nb, start), "text/html")
    assert "Comparison of 2: @1, @2" in text

    seeds = _cell(nb, 'prompt = "a lighthouse')
    assert _stdout(seeds) == "from the journal: [True, False, False] · cost: [0.0, 0.08, 0.08]\n"
    assert re.search(r"\n\s+seed\s+1234\s+1235\s+1236$", _value(seeds)), "only the seed differs"

    assert "sweep of 2 prompts × 2 seeds × 2 guidance_scale values = 8 images · $0.64" in text
    assert "Grid: a {cat|fox} asleep in a wicker basket" in _value(_cell(nb, "%kontext sweep"))
    assert _value(_cell(nb, "grids = kx.get_session()")) == "['grid-p1.png', 'grid-p2.png']"
    from kontext_nb.journal.metadata import read

    seen = set()
    for page, guidance in (("grid-p1.png", 2.0), ("grid-p2.png", 5.0)):
        grid = read(tmp_path / "kontext-runs" / "grids" / page)["kontext_nb_grid"]
        cells = grid["cells"]
        assert grid["summary"] == "2 prompts × 2 seeds × 2 guidance_scale values = 8 images · $0.64"
        assert len(cells) == 4 and {c["status"] for c in cells} == {"done"}
        assert {(c["prompt"].split()[1], c["seed"]) for c in cells} == {("cat", 1), ("fox", 1), ("cat", 2), ("fox", 2)}
        assert {c["arguments"]["guidance_scale"] for c in cells} == {guidance}
        assert all(c["request_id"] and Path(c["files"][0]).exists() for c in cells)
        seen |= {c["journal_id"] for c in cells}
    assert len(seen) == 8, "every cell of the grid is a job of its own"
    listing = _stdout(_cell(nb, "for page in pages"))
    assert listing.count("guidance 2.0") == 4 and listing.count("guidance 5.0") == 4

    assert "2 prompts × 2 guidance_scale values = 4 images · $0.32" in text
    fisherman = _value(_cell(nb, "from kontext_nb.views import Grid"))
    assert "oil painting  charcoal sketch" in fisherman and fisherman.count("seed 7") == 4

    sweep_table = _value(_cell(nb, 'records = kx.history("wicker basket"'), "text/html")
    body = sweep_table.split("<tbody>")[1]
    assert body.count("<tr>") == 8 and body.count("<td>2.0</td>") == 4 and body.count("<td>5.0</td>") == 4
    summary = _value(_cell(nb, "table = kx.history("))
    assert "[1234, 1235, 1236]" in summary and "a portrait of an old fisherman, oil painting" in summary
    assert len(_journal(tmp_path / "kontext-runs")) == 1 + 1 + 3 + 8 + 4


@pytest.mark.slow
def test_the_notebooks_run_in_any_order_on_one_runs_folder(
    after_quickstart: tuple[Path, nbformat.NotebookNode],
) -> None:
    """After the quickstart (and each other) on one shared runs folder, each notebook still shows its own jobs, and
    nothing is written beside the notebooks but the (git-ignored) runs folder."""
    tmp_path, quickstart = after_quickstart
    panel = _cell(quickstart, "kx.Panel()")
    assert any("made in this panel" in str(o.get("data", {})) for o in panel.outputs), "the static record"
    for name in ("comparing", "magics", "editing", "comparing"):
        nb = run_notebook(NOTEBOOKS / f"{name}.ipynb", tmp_path)
        assert [o for c in nb.cells for o in c.get("outputs", []) if "ename" in o] == [], name
        if name == "comparing":
            summary = _value(_cell(nb, "table = kx.history("))
            assert "a lighthouse on a rocky coast" in summary and "red fox" not in summary, "this notebook's prompts"
            assert "wicker basket" in summary and "living room" not in summary, "not those of the notebooks before"
            sweep = _value(_cell(nb, 'records = kx.history("wicker basket"'), "text/html").split("<tbody>")[1]
            assert sweep.count("<tr>") == 8, "its own sweep, also when it ran before on this runs folder"
        if name == "magics":
            raft = _value(_cell(nb, "%kontext compare $clay $raft"))
            assert "[claymation]" in raft and "[raft]" in raft, "its own jobs, not @1 and @3 of the folder"
            (alone,) = [c for c in nb.cells if c.source == "%kontext compare $clay"]
            assert "make it claymation" in _value(alone), "an edit beside its own source"
        if name == "editing":
            assert "Comparison of 2: source, @" in _value(_cell(nb, "%kontext compare $lamp"))
            assert "add a brass floor lamp" in _value(_cell(nb, "%kontext compare $lamp"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kontext-runs"]


@pytest.mark.slow
def test_classroom_notebook_runs(after_quickstart: tuple[Path, nbformat.NotebookNode]) -> None:
    """After the quickstart (and the notebooks of the tests before it in this module) on the same runs folder, and a
    second time after itself: it names its own jobs."""
    tmp_path, _ = after_quickstart
    before = {r.id for r in _journal(tmp_path / "kontext-runs")}
    _check_classroom(run_notebook(NOTEBOOKS / "classroom.ipynb", tmp_path), tmp_path, before)
    before = {r.id for r in _journal(tmp_path / "kontext-runs")}
    _check_classroom(run_notebook(NOTEBOOKS / "classroom.ipynb", tmp_path), tmp_path, before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kontext-runs"], "nothing beside the notebook"


def _check_classroom(nb: nbformat.NotebookNode, tmp_path: Path, before: set[int]) -> None:
    import re

    text = outputs_text(nb)
    assert _problems(nb) == [], "only the two refusals write to stderr"
    assert [o for c in nb.cells for o in c.get("outputs", []) if "ename" in o] == []
    refused = [c for c in nb.cells if "raises-exception" in c.metadata.get("tags", [])]
    assert [[o.get("text", "").strip() for o in c.outputs] for c in refused] == [
        ["UsageError: 4 images would cost $0.32: add --yes (-y) to go ahead"],
        [
            "UsageError: 1 image of max would cost $0.08, but this session's cap is $0.50 and $0.48 is spent + "
            "$0.00 reserved for jobs in flight: nothing was sent (raise budget_session to go on)"
        ],
    ]
    caps = _value(_cell(nb, "%config Kontext.budget_session"))
    assert "'session_cap': 0.5" in caps and "'confirm_above': 0.3" in caps and "'session': 0.0" in caps
    assert "not sent: 4 images of max would cost $0.32, more than $0.30: pass confirm=True to go ahead" in text
    assert "4 images (1024x1024, 1024x1024, 1024x1024, 1024x1024)" in text, "confirm=True went ahead"
    assert "refused: 1 image of pro would cost $0.04, but this session's cap is $0.50 and $0.48 is spent" in text
    status = _stdout(_cell(nb, "%kontext status"))
    assert "backend: sandbox" in status and "fal key: not set" in status
    assert "spent: session $0.48 of $0.50" in status
    records = [r for r in _journal(tmp_path / "kontext-runs") if r.id not in before]
    water = _value(_cell(nb, 'kx.history(tag="water-cycle"'))
    assert "3 jobs · $0.48" in water and all(f"@{r.id} " in water for r in records[:3]), "this lesson's exercise"

    panel = _cell(nb, "kx.Panel()")
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in panel.outputs)
    state = str(nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"])
    assert "<b>offline sandbox</b>" in state and "this session" in state, "the panel's header"
    assert "the water cycle as a four-panel comic for children" in state, "jobs from cells reach the gallery"

    left = _cell(nb, "import time")
    request_id = re.search(r"no result after 0\.5 s; request ([0-9a-f-]{36}) is left on fal", _stdout(left))
    assert request_id, _stdout(left)
    moon = records[3].id
    assert re.search(rf"@{moon} .* submitted .* the phases of the moon", _value(left))
    resumed = _value(_cell(nb, "%kontext resume"))
    assert f"request {request_id[1]}" in resumed and "$0.04" in resumed, "collected, not submitted again"
    final = _value(_cell(nb, "kx.configure(job_timeout=900)"))
    assert re.search(rf"@{moon} .* done .* the phases of the moon", final) and "4 jobs · $0.52" in final
    assert all(f"@{r.id} " in final for r in records), "the lesson's jobs, not the runs folder's latest"

    assert [r.status for r in records] == ["done"] * 4
    assert [r.tags for r in records] == [("water-cycle",)] * 3 + [("moon",)]
    assert not any("volcano" in r.prompt for r in records), "refused runs send nothing"
    assert records[3].request_id == request_id[1] and records[3].cost == 0.04


@pytest.mark.slow
def test_judging_notebook_runs(after_quickstart: tuple[Path, nbformat.NotebookNode]) -> None:
    """A sweep, ratings, a duel, the ranking, change scores with a plug-in, and a report, in a real kernel; after the
    quickstart (and the notebooks of the tests before it in this module) on the same runs folder, so it must name its
    own results, and it writes nothing beside the notebook."""
    tmp_path, _ = after_quickstart
    before = {r.id for r in _journal(tmp_path / "kontext-runs")}
    nb = run_notebook(NOTEBOOKS / "judging.ipynb", tmp_path)
    errors = [
        (c.source, o.get("ename")) for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"
    ]
    assert errors == []
    text = outputs_text(nb)
    records = [r for r in _journal(tmp_path / "kontext-runs") if r.id not in before]
    sweep = [r for r in records if "lighthouse" in r.prompt and r.parent_id is None]
    assert len(sweep) == 6 and [r.rating for r in sweep[:3]] == [5, 4, 2], "its own sweep is rated, not @1..@3"
    assert f"rated 4 or more: ['@{sweep[1].id}', '@{sweep[0].id}']" in text and "in the file: 5" in text
    assert "8 votes in the view" in text
    assert "uncertainty" in text and "comparisons" in text, "the ranking's table"
    assert "application/vnd.jupyter.widget-view+json" in str(nb.cells), "the duel is a widget"
    assert "pHash distance" in text and "changed_fraction" in text
    assert "colourfulness_gain" in text
    reports = tmp_path / "kontext-runs" / "reports"
    page = (reports / "judging-report.html").read_text(encoding="utf-8")
    assert page.count('src="data:image/') >= 7 and "http://" not in page and "https://" not in page
    assert (reports / "judging-report.zip").exists()
    small = (reports / "small-report.html").read_text(encoding="utf-8")
    assert small.count('src="data:image/') >= 3 and "make it winter" in small and "a red fox" not in small
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kontext-runs"], "nothing beside the notebook"

    before = {r.id for r in _journal(tmp_path / "kontext-runs")}
    again = run_notebook(NOTEBOOKS / "judging.ipynb", tmp_path)
    sweep = [r for r in _journal(tmp_path / "kontext-runs") if r.id not in before and r.parent_id is None]
    rated = _stdout(_cell(again, "kx.rate(refs[0], 5)"))
    assert f"rated 4 or more: ['@{sweep[1].id}', '@{sweep[0].id}']" in rated, "a second run: its own sweep's"


@pytest.mark.slow
def test_family_notebook_runs_dev_max_inpaint_and_lora(tmp_path: Path) -> None:
    nb = run_notebook(NOTEBOOKS / "family.ipynb", tmp_path)
    text = outputs_text(nb)
    errors = [
        (c.source, o.get("ename")) for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"
    ]
    assert errors == []
    assert "fal-ai/flux-kontext/dev" in text and "per megapixel" in text, "kx.help lists the family with prices"
    assert "2 prompts × 2 models = 4 images · ≈$0.21 (estimate)" in text, "the grid prices each cell by its model"
    assert "endpoint: fal-ai/flux-kontext-lora/inpaint" in text
    assert "pixels outside the mask unchanged: True" in text
    assert "[0.8, 0.4] · metadata: file:my-style.safetensors;sha256" in text
    assert 'alt="mask"' in text and "LoRA woodcut.safetensors×1.2" in text, "history shows the mask and the LoRA"
    assert "application/vnd.jupyter.widget-view+json" in str(nb.cells), "the mask painter is a widget"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kontext-runs"], "nothing beside the notebook"


@pytest.mark.slow
def test_models_notebook_runs_five_editors_offline(tmp_path: Path) -> None:
    """Which editor for my edit: five editors × two seeds priced before asking, the grid with each cell's cost and
    what a model lacks, a blind duel, the ranking (also by model) with its uncertainty, change scores, a report."""
    nb = run_notebook(NOTEBOOKS / "models.ipynb", tmp_path)
    errors = [
        (c.source, o.get("ename")) for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"
    ]
    assert errors == []
    grid = _value(_cell(nb, "instruction = "))
    assert "5 models × 2 seeds = 10 images" in grid
    for alias in ("max", "flux2-flex-edit", "qwen-edit", "nano-banana-2-edit", "reve-fast-edit"):
        assert alias in grid
    assert "$0.08" in grid and "$0.10" in grid and "$0.01" in grid, "each cell's cost"
    assert "guidance_scale: not taken by Nano Banana 2 Edit, Reve Fast Edit" in grid
    assert "seed: not taken by Reve Fast Edit (not reproducible" in grid
    assert "cells: 10" in _stdout(_cell(nb, "refs = [r.ref for r in grid.results]"))
    assert "application/vnd.jupyter.widget-view+json" in str(nb.cells), "the duel is a widget"
    by_model = _value(_cell(nb, 'kx.ranking(refs, by="model")'))
    assert "uncertainty" in by_model and "reve-fast-edit" in by_model
    assert "ssim_outside" in _value(_cell(nb, "import pandas as pd"))
    assert "False" in _value(_cell(nb, 'kx.history(model="reve-fast-edit")')), "not reproducible"
    page = (tmp_path / "kontext-runs" / "reports" / "models-report.html").read_text(encoding="utf-8")
    assert page.count('src="data:image/') >= 10 and "<h3>Models</h3>" in page and "https://" not in page
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kontext-runs"], "nothing beside the notebook"
