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


def test_a_views_messages_are_handled_one_at_a_time_in_order() -> None:
    """ipykernel 7 may dispatch a comm message while the one before is still being handled (a duel's second key
    ran against the pair before, and was dropped): front.Serial queues it, on any thread, and keeps the order."""
    import threading
    import time

    from kontext_nb.widgets.front import Serial

    seen: list[tuple[str, int]] = []
    inside = threading.Lock()
    queued = threading.Event()

    def handler(_widget: object, content: int, _buffers: object) -> None:
        assert inside.acquire(blocking=False), f"message {content} handled while another was"
        seen.append(("start", content))
        if content == 0:
            serial(None, 100, [])  # a message arriving during the handling, on the same thread
            queued.set()
            time.sleep(0.01)  # the others arrive from threads meanwhile
        seen.append(("end", content))
        inside.release()

    serial = Serial(handler)
    first = threading.Thread(target=serial, args=(None, 0, []))
    first.start()
    assert queued.wait(10)
    others = [threading.Thread(target=serial, args=(None, k, [])) for k in range(1, 6)]
    for thread in others:
        thread.start()
    for thread in [first, *others]:
        thread.join(10)
    starts = [c for kind, c in seen if kind == "start"]
    assert sorted(starts) == [0, 1, 2, 3, 4, 5, 100] and starts[:2] == [0, 100]
    assert all(seen[i][1] == seen[i + 1][1] for i in range(0, len(seen), 2)), "each one ends before the next starts"
    serial(None, 7, [])  # idle again: handled at once
    assert seen[-1] == ("end", 7)
