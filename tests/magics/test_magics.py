"""The %kontext magics in a real InteractiveShell against the sandbox."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from shell import Shell  # tests/shell.py

import kontext_nb as kx
import kontext_nb.sandbox as sandbox
from kontext_nb.result import Result, Results


def test_load_registers_and_unload_removes(shell: Shell) -> None:
    assert "kontext" in shell.ip.magics_manager.magics["line"]
    assert "kontext" in shell.ip.magics_manager.magics["cell"]
    shell.ip.run_line_magic("unload_ext", "kontext_nb")
    assert "kontext" not in shell.ip.magics_manager.magics["line"]
    shell.ip.run_line_magic("load_ext", "kontext_nb")
    assert "kontext" in shell.ip.magics_manager.magics["line"]


def test_generate_with_every_option(shell: Shell, sb: sandbox.SandboxServer) -> None:
    r = shell.line(
        "a red fox in snow --seed 42 --ar 16:9 -n 2 --guidance 4 --format png --safety 3 --model pro --tag t"
    )
    assert isinstance(r, Result) and r.seed == 42 and len(r.images) == 2
    a = r.arguments
    assert (a["aspect_ratio"], a["guidance_scale"], a["output_format"], a["safety_tolerance"]) == (
        "16:9",
        4.0,
        "png",
        "3",
    )
    assert r.model == "pro" and r.prompt == "a red fox in snow"
    assert shell.line("another --enhance --sync --seed 1 --aspect-ratio 1:1 --num-images 1").arguments["enhance_prompt"]
    assert sb.stats()["submits"] == 2


def test_quotes_dashes_and_namespace_expansion(shell: Shell) -> None:
    shell.run("animal = 'otter'")
    r = shell.line('"a {animal}, watercolor" --seed 3')
    assert r.prompt == "a otter, watercolor"
    r = shell.line("--seed 4 -- a prompt with --dashes in it")
    assert r.prompt == "a prompt with --dashes in it"
    r = shell.line('"edit the photo" --seed 5')
    assert r.mode == "text-to-image" and r.prompt == "edit the photo"


def test_cell_magic_prompt_and_batch(shell: Shell, sb: sandbox.SandboxServer) -> None:
    one = shell.cell("--seed 9", "a long prompt\nover two lines")
    assert isinstance(one, Result) and one.prompt == "a long prompt\nover two lines"
    batch = shell.cell("--seed 10", "a cat\n---\na dog\n---\na bird")
    assert isinstance(batch, Results) and [r.prompt for r in batch] == ["a cat", "a dog", "a bird"]
    assert sb.stats()["submits"] == 4


def test_output_name_stores_the_result(shell: Shell) -> None:
    shell.line("stored --seed 1 -o fox")
    assert isinstance(shell.ip.user_ns["fox"], Result) and shell.ip.user_ns["fox"].seed == 1


def test_edit_sources(shell: Shell, tmp_path: Path) -> None:
    from PIL import Image

    first = shell.line("a house --seed 1")
    by_ref = shell.line("edit @last make it winter --seed 2")
    assert by_ref.parent_id == first.journal_id and by_ref.mode == "edit"
    Image.new("RGB", (64, 48), "red").save(tmp_path / "red.png")
    assert shell.line(f"edit {tmp_path / 'red.png'} make it glow --seed 3").inputs
    shell.ip.user_ns["img"] = Image.new("RGB", (40, 40), "blue")
    assert shell.line("edit $img make it shine --seed 4").mode == "edit"
    shell.ip.user_ns["res"] = first
    assert shell.line("edit $res make it night --seed 5").parent_id == first.journal_id
    multi = shell.line(f"edit @-2 {tmp_path / 'red.png'} $img -- put them together --seed 6")
    assert multi.mode == "multi" and len(multi.inputs) == 3
    assert multi.prompt == "put them together" and multi.seed == 6, "options after -- still count in edit"


def test_housekeeping(shell: Shell, capsys: pytest.CaptureFixture[str]) -> None:
    first = shell.line("a fox --seed 1")
    second = shell.line("edit @last make it claymation --seed 2")
    history = shell.line("history fox --limit 5")
    assert [r.id for r in history] == [first.journal_id]
    assert shell.line(f"show @{first.journal_id}").image_bytes == first.image_bytes
    again = shell.line("rerun @last --seed 7")
    assert again.seed == 7 and again.mode == "edit"
    lineage = shell.line(f"lineage @{second.journal_id}")
    assert [r.id for r in lineage] == [second.journal_id, first.journal_id]
    shell.line("status")
    out = capsys.readouterr().out
    assert "backend: custom" in out and "fal key: set" in out and "spent:" in out
    assert re.search(r"today \(\d{4}-\d\d-\d\d UTC\) \$", out), "which day the daily cap counts, in which zone"
    assert "test-key" not in out
    assert shell.line("resume") is None
    shell.line("help")
    assert "%kontext sweep" in capsys.readouterr().out


def test_background_run_and_cancel(shell: Shell, sb: sandbox.SandboxServer) -> None:
    sb.configure(inference_time=2.0)
    bg = shell.line("slow one --bg -o job")  # terminal IPython: the Job is the value (a notebook shows a widget)
    assert bg is shell.ip.user_ns["job"] and bg.state in ("queued", "running")
    shell.line(f"cancel @{bg.journal_id}")
    assert bg.state == "cancelled" or bg.exception(10) is not None
    sb.configure(inference_time=0.05)
    shell.line("quick --bg -o job2")
    assert isinstance(shell.ip.user_ns["job2"].result(timeout=10), Result)


def test_config_and_pyproject_defaults(shell: Shell, tmp_path: Path) -> None:
    shell.ip.run_line_magic("config", "Kontext.model = 'pro'")
    shell.ip.run_line_magic("config", "Kontext.aspect_ratio = '9:16'")
    r = shell.line("configured --seed 1")
    assert r.model == "pro" and r.arguments["aspect_ratio"] == "9:16"
    shell.ip.run_line_magic("config", "Kontext.concurrency = 3")
    assert kx.get_session().settings.concurrency == 3
    (tmp_path / "pyproject.toml").write_text('[tool.kontext_nb]\nmodel = "max"\noutput_format = "png"\n')
    shell.ip.run_line_magic("unload_ext", "kontext_nb")
    shell.ip.run_line_magic("load_ext", "kontext_nb")
    r = shell.line("from pyproject --seed 2")
    assert r.model == "max" and r.arguments["output_format"] == "png"
    shell.ip.run_line_magic("config", "Kontext.model = 'ultra'")  # IPython logs the TraitError
    assert shell.line("still max --seed 3").model == "max"


BAD_LINES = [
    ("a fox --sed 3", "unknown option --sed (did you mean --seed?)"),
    ("a fox --guidance 25", "--guidance 25 is out of range: a number from 1 to 20"),
    ("a fox --guidance nan", "--guidance 'nan' is not a finite number"),
    ("a fox --seed abc", "--seed 'abc' is not a whole number"),
    ("a fox --seed -3", "--seed -3 is out of range"),
    ("a fox --seed 1.5", "--seed '1.5' is not a whole number"),
    ("a fox -n 9", "--num-images 9 is out of range"),
    ("a fox --ar 16:10", "(did you mean '3:2'?)"),
    ("a fox --format gif", "--format gif is not allowed: choose one of jpeg, png"),
    ("a fox --safety 9", "--safety 9 is not allowed"),
    ("a fox --model ultra", "--model 'ultra' is not allowed"),
    ("'unclosed quote", "unclosed quote"),
    ("--seed 3", "no prompt given"),
    ("", "no prompt given"),
    ("edit", "edit needs a SOURCE"),
    ("edit nope.png make it blue", "image file 'nope.png' does not exist"),
    ("edit @99 make it blue", "no job @99"),
    ("edit @-5 make it blue", "there is no job @-5"),
    ("edit $nothing make it blue", "no variable named 'nothing'"),
    ("edit a.png b.png c.png d.png e.png -- five", "5 source images"),
    ("show @12", "no job @12"),
    ("show", "show takes one job reference"),
    ("rerun yesterday", "unknown job reference"),
    ("cancel @77", "no job @77"),
    ("history --limit x", "--limit 'x' is not a whole number"),
]


@pytest.mark.parametrize(("line", "words"), BAD_LINES, ids=[b[0] or "empty" for b in BAD_LINES])
def test_bad_lines_raise_one_usage_error_and_send_nothing(
    shell: Shell, sb: sandbox.SandboxServer, line: str, words: str
) -> None:
    assert words in shell.usage_error(line)
    assert sb.stats()["submits"] == 0


def test_corrupt_image_is_refused_before_sending(shell: Shell, sb: sandbox.SandboxServer, tmp_path: Path) -> None:
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    message = shell.usage_error(f"edit {tmp_path / 'broken.jpg'} fix it")
    assert "broken.jpg" in message and ("corrupt" in message or "not an image" in message)
    assert sb.stats()["submits"] == 0


def test_confirmation_above_the_threshold(
    shell: Shell, sb: sandbox.SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    shell.ip.run_line_magic("config", "Kontext.confirm_above = 0.1")
    monkeypatch.setattr("builtins.input", lambda q: "n")
    assert shell.usage_error("two images -n 2") == "nothing was sent"
    monkeypatch.setattr("builtins.input", lambda q: "y")
    assert len(shell.line("two images -n 2").images) == 2
    assert len(shell.line("two more -n 2 --yes").images) == 2
    assert sb.stats()["submits"] == 2


def test_sweeps_make_labelled_grids(
    shell: Shell, sb: sandbox.SandboxServer, capsys: pytest.CaptureFixture[str]
) -> None:
    from kontext_nb.views.grid import Grid

    grid = shell.line('sweep "a {cat|fox} in snow" --seed 1,2,3 --guidance 2,5 -o g')
    assert isinstance(grid, Grid) and shell.ip.user_ns["g"] is grid
    assert "2 prompts × 3 seeds × 2 guidance_scale values = 12 images · $0.96" in capsys.readouterr().out
    assert sb.stats()["submits"] == 12
    html = grid._repr_mimebundle_()["text/html"]
    assert ">cat<" in html and ">fox<" in html and "guidance_scale 5" in html
    seeds = sorted({r.seed for r in grid.results})
    assert seeds == [1, 2, 3], "every prompt shares the same seeds"
    source = shell.line("a house --seed 4")
    edits = shell.line('sweep edit @last "make it {winter|night}" --seed 1-2')
    assert all(r.parent_id == source.journal_id and r.mode == "edit" for r in edits.results)
    assert sb.stats()["submits"] == 12 + 1 + 4


def test_bad_sweeps_send_nothing(shell: Shell, sb: sandbox.SandboxServer) -> None:
    assert "seed" in shell.usage_error('sweep "a {cat|fox}" --seed 1,x')
    assert "guidance" in shell.usage_error('sweep "a fox" --guidance 2,30')
    assert "SOURCE" in shell.usage_error("sweep edit")
    assert sb.stats()["submits"] == 0
