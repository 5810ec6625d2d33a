"""The browser side of the anywidget views: each module anywidget loads is valid JavaScript (node --check), and
holds no network address and no eval (it runs in the user's notebook page)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from kontext_nb.widgets.background import BackgroundStatus
from kontext_nb.widgets.compare_widget import CompareWidget
from kontext_nb.widgets.drop import ImageDrop
from kontext_nb.widgets.duel import DuelView
from kontext_nb.widgets.files import FileServer
from kontext_nb.widgets.front import HERE
from kontext_nb.widgets.history_rows import HistoryPage
from kontext_nb.widgets.mask import MaskPainter
from kontext_nb.widgets.recall import PromptRecall
from kontext_nb.widgets.reveal import Reveal


@pytest.mark.parametrize(
    "widget",
    [CompareWidget, FileServer, Reveal, BackgroundStatus, PromptRecall, ImageDrop, DuelView, MaskPainter, HistoryPage],
    ids=lambda w: w.__name__,
)
def test_each_module_parses_as_an_es_module(widget: type, tmp_path: Path) -> None:
    node = shutil.which("node")
    assert node is not None, "node is needed to check the front end's JavaScript (.ci/run installs it)"
    module = tmp_path / f"{widget.__name__}.mjs"
    module.write_text(str(widget._esm))
    checked = subprocess.run([node, "--check", str(module)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert "export default" in str(widget._esm)


def test_the_front_end_fetches_nothing_and_evaluates_nothing() -> None:
    for path in HERE.glob("*.js"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"https?://|\beval\(|new Function|innerHTML", text), path.name
