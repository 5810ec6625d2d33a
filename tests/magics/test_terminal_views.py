"""Issue 22 point 7: in terminal IPython the views say in one line that they need a notebook, and the load message
names IPython, not Jupyter."""

from __future__ import annotations

import pytest
from PIL import Image
from shell import Shell  # tests/shell.py

import kontext_nb as kx


def one_line(text: str) -> str:
    assert "\n" not in text.strip() and " object at 0x" not in text, text
    return text


def test_duel_and_mask_print_one_line_in_a_terminal(shell: Shell) -> None:
    shell.line("a red fox in snow --seed 1 -o a")
    shell.line("a red fox in rain --seed 2 -o b")
    duel = kx.duel([shell.ip.user_ns["a"], shell.ip.user_ns["b"]], voter="t")
    text, _ = shell.ip.display_formatter.format(duel)
    assert set(text) == {"text/plain"}
    assert "needs a notebook front end" in one_line(text["text/plain"]) and "kx.vote" in text["text/plain"]
    painter = kx.mask(Image.new("RGB", (64, 48), (10, 20, 30)))
    text, _ = shell.ip.display_formatter.format(painter)
    assert "needs a notebook front end" in one_line(text["text/plain"]) and "64x48" in text["text/plain"]
    assert one_line(repr(painter)) == text["text/plain"]


def test_the_load_message_in_a_terminal_names_ipython(
    shell: Shell, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("FAL_KEY", "FAL_KEY_ID", "FAL_KEY_SECRET", "KONTEXT_FAL_URL"):
        monkeypatch.delenv(name, raising=False)
    kx.set_session(None)
    shell.ip.run_line_magic("unload_ext", "kontext_nb")
    capsys.readouterr()
    shell.ip.run_line_magic("load_ext", "kontext_nb")
    said = capsys.readouterr().out
    assert "offline sandbox" in said and "before starting IPython" in said and "Jupyter" not in said
