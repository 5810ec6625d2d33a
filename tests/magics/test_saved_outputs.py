"""Issue 14: what a saved notebook keeps (a panel's static record, a --bg run that ends as plain HTML) and what a
terminal shows (%kontext panel in one line; a sweep's one updating progress line)."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest
import waiting  # tests/waiting.py
from IPython.core.displaypub import CapturingDisplayPublisher
from shell import Shell  # tests/shell.py

import kontext_nb.sandbox as sandbox
from kontext_nb.magics.live import LiveOutput
from kontext_nb.magics.running import finish_in_background
from kontext_nb.session import Session
from kontext_nb.widgets import panel as panel_module
from kontext_nb.widgets.panel import Panel

WIDGET = "application/vnd.jupyter.widget-view+json"
wait_for = partial(waiting.wait_for, timeout=15.0)


@pytest.fixture
def published(shell: Shell) -> Iterator[list[dict[str, Any]]]:
    """Everything displayed, as a notebook front end would receive it."""
    previous, types = shell.ip.display_pub, shell.ip.display_formatter.active_types
    shell.ip.display_pub = CapturingDisplayPublisher()
    shell.ip.display_formatter.active_types = [*types, "text/html"]  # as a kernel's formatter has them
    try:
        yield shell.ip.display_pub.outputs
    finally:
        shell.ip.display_pub, shell.ip.display_formatter.active_types = previous, types


def by_id(outputs: list[dict[str, Any]], display_id: str) -> list[dict[str, Any]]:
    return [o for o in outputs if (o.get("transient") or {}).get("display_id") == display_id]


def test_the_panel_keeps_a_static_record_of_what_it_made(
    session: Session, published: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(panel_module, "_in_notebook", lambda: True)  # the test shell has no kernel
    panel = Panel(session)
    try:
        panel._ipython_display_()
        assert WIDGET in published[0]["data"]
        record = published[1]
        display_id = record["transient"]["display_id"]
        assert "text/html" in record["data"] and WIDGET not in record["data"]
        panel.create.prompt.value = "a red fox"
        (job,) = panel.create.generate()
        seed = job.result(10).seed
        wait_for(lambda: any("data:image/jpeg;base64," in o["data"]["text/html"] for o in by_id(published, display_id)))
        last = by_id(published, display_id)[-1]
        assert last["update"] and f"seed {seed}" in last["data"]["text/html"]
    finally:
        panel.close()


def test_a_background_run_ends_as_a_static_result(
    shell: Shell, session: Session, sb: sandbox.SandboxServer, published: list[dict[str, Any]]
) -> None:
    sb.configure(inference_time=0.5)
    job = session.generate("a lighthouse", seed=3, wait=False)
    finish_in_background(LiveOutput([job], terminal=False, background=True), [job])  # what --bg does
    first = published[0]
    display_id = first["transient"]["display_id"]
    assert WIDGET in first["data"] and "text/html" in first["data"]  # a Cancel button while it runs
    job.result(10)
    wait_for(lambda: "<img" in by_id(published, display_id)[-1]["data"].get("text/html", ""))
    last = by_id(published, display_id)[-1]
    assert last["update"] and WIDGET not in last["data"]  # no widget left for a saved notebook to lose
    assert "seed <b>3</b>" in last["data"]["text/html"]


def test_panel_in_a_terminal_says_so_in_one_line(shell: Shell, capsys: pytest.CaptureFixture[str]) -> None:
    assert shell.line("panel") is None
    out = capsys.readouterr().out.strip()
    assert out.count("\n") == 0 and "notebook" in out and "VBox" not in out
    shell.run("import kontext_nb as kx\nkx.Panel()")
    out = capsys.readouterr().out.strip()
    assert out.count("\n") == 0 and "needs a notebook front end" in out and "VBox" not in out


def test_a_sweep_in_a_terminal_shows_one_updating_line(
    shell: Shell, sb: sandbox.SandboxServer, capsys: pytest.CaptureFixture[str]
) -> None:
    sb.configure(inference_time=0.2)
    shell.line('sweep "a {cat|fox}" --seed 1,2 --yes')
    out = capsys.readouterr().out
    progress = [line for line in out.split("\n") if "kontext:" in line]
    assert len(progress) == 1 and "\r" in progress[0]  # one line, rewritten in place
    assert "4 done" in progress[0].split("\r")[-1]


def test_bg_in_a_terminal_prints_a_line_when_sent_and_one_when_done(
    shell: Shell, capsys: pytest.CaptureFixture[str]
) -> None:
    """A --bg run writes whole lines: rewriting one in place would overwrite the prompt, the run's Out[] or
    another run's status line (its cursor is wherever the shell left it)."""
    job = shell.line("a red fox --seed 3 --bg")
    job.result()
    seen: list[str] = []
    waiting.wait_for(lambda: seen.append(capsys.readouterr().out) or "done" in "".join(seen))
    out = "".join(seen)
    assert "\r" not in out, repr(out)
    lines = [line for line in out.split("\n") if "kontext:" in line]
    assert len(lines) == 2 and "@1" in lines[0] and "@1 done" in lines[1], repr(out)


def test_seed_minus_one_means_random_in_the_magics(shell: Shell) -> None:
    first = shell.line("a red fox --seed -1")
    second = shell.line("a red fox --seed -1")
    assert first.seed != second.seed and not first.cached and not second.cached
