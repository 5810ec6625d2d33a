"""kx.compare and %kontext compare: the Compare tab's view in any cell, its static HTML kept beside it.

In-process (no browser): what the view is given. In a real kernel (nbclient): the output carries the widget view,
the static HTML and the text in one bundle, and the widget state the notebook keeps is the compare view's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest
from budget import examples  # tests/budget.py: KONTEXT_HYPOTHESIS=deep for the full budget
from hypothesis import given, settings
from hypothesis import strategies as st
from nbclient import NotebookClient
from shell import Shell  # tests/shell.py

import kontext_nb as kx
from kontext_nb.errors import ValidationError
from kontext_nb.result import Result
from kontext_nb.session import Session
from kontext_nb.widgets.compare_widget import MAX_ITEMS
from kontext_nb.widgets.compared import WIDGET_VIEW, ComparedView, compare
from kontext_nb.widgets.front import ImageBuffer


def made(session: Session, prompt: str, **arguments: Any) -> Result:
    result = session.generate(prompt, **arguments)
    assert isinstance(result, Result)
    return result


def test_two_results_open_with_the_divider_and_keep_the_static_html(session: Session) -> None:
    kx.set_session(session)
    one = made(session, "a red fox in snow", seed=1)
    two = made(session, "a red fox in rain", seed=2)
    shown = kx.compare(one.ref, two)
    assert isinstance(shown, ComparedView) and shown.labels == [one.ref, two.ref]
    view = shown.view
    assert view.mode == "slider" and [i["label"] for i in view.items] == [one.ref, two.ref]
    assert all(isinstance(i["image"], ImageBuffer) for i in view.items)
    assert view.items[0]["image"].value == one.image_bytes[0], "the file itself, full size"
    bundle = shown._repr_mimebundle_()
    assert WIDGET_VIEW not in bundle, "no kernel here: no widget view"
    assert bundle["text/plain"].startswith("Comparison of 2") and bundle["text/html"].count("<img") == 2
    shown.close()


def test_one_edit_is_compared_with_its_source_file(session: Session) -> None:
    kx.set_session(session)
    fox = made(session, "a red fox", seed=3)
    blue = session.edit(fox, "make the fox blue", seed=7)
    assert isinstance(blue, Result)
    shown = compare(blue.ref)
    assert shown.labels == ["source", blue.ref]
    assert shown.view.items[0]["image"].value == blue.inputs[0].data, "the source as its file, not re-encoded"
    assert shown.view.mode == "slider"
    flicker = compare(blue, mode="flicker")
    assert flicker.view.mode == "flicker"
    shown.close()
    flicker.close()


def test_more_than_two_open_side_by_side(session: Session) -> None:
    kx.set_session(session)
    results = [made(session, "a cat", seed=s) for s in range(1, 5)]
    shown = compare(results)  # one list works too
    assert len(shown.view.items) == 4 and shown.view.mode == "side by side"
    shown.close()


@settings(max_examples=examples(ci=10, deep=25), deadline=None)
@given(count=st.integers(min_value=0, max_value=3 * MAX_ITEMS), mode=st.text(max_size=12))
def test_bad_calls_fail_in_one_line_before_anything_is_loaded(count: int, mode: str) -> None:
    """Any count outside 1-8 or a mode that is not one of the view's: a one-line ValidationError naming what is
    allowed; the references are never read (they do not exist)."""
    refs = [f"@{900 + i}" for i in range(count)]
    ok_mode = mode in ("slider", "flicker", "difference", "side by side")
    if ok_mode and 1 <= count <= MAX_ITEMS:
        return
    with pytest.raises(ValidationError) as info:
        compare(*refs, mode=mode)
    message = str(info.value)
    assert "\n" not in message
    assert ("choose one of" in message) if not ok_mode else (f"1 to {MAX_ITEMS}" in message)


def test_the_magic_in_a_terminal_prints_the_differences(shell: Shell) -> None:
    shell.line("a red fox in snow --seed 1 -o a")
    shell.line("a red fox in rain --seed 2 -o b")
    shown = shell.line("compare $a $b")
    assert isinstance(shown, ComparedView)
    formatted, _ = shell.ip.display_formatter.format(shown)
    assert "Comparison of 2" in formatted["text/plain"] and WIDGET_VIEW not in formatted
    assert "compare takes 1 to 8" in shell.usage_error("compare " + " ".join(["$a"] * 9))


CELLS = [
    "import kontext_nb as kx\n%load_ext kontext_nb\n"
    "a = kx.generate('a red fox in snow', seed=1)\nb = kx.generate('a red fox in rain', seed=2)",
    "kx.compare(a, b)",
    "%kontext compare $a $b",
]


@pytest.mark.slow
def test_in_a_kernel_one_output_carries_the_view_the_html_and_the_text(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    for cell in nb.cells[1:]:
        (out,) = [o for o in cell.outputs if o.output_type == "execute_result"]
        data = out["data"]
        assert set(data) >= {WIDGET_VIEW, "text/html", "text/plain"}, cell.source
        assert data["text/html"].count('<img src="data:image/') == 2, "the saved notebook keeps the thumbnails"
        model = state[data[WIDGET_VIEW]["model_id"]]["state"]
        assert model["mode"] == "slider" and len(model["items"]) == 2, json.dumps(model)[:300]
