"""Where a view is shown: a notebook front end that draws widgets, or a terminal that prints text."""

from __future__ import annotations

NEEDS_NOTEBOOK = "kontext_nb {what} needs a notebook front end (JupyterLab, Notebook 7, VS Code or Colab): {instead}"
"""The one line a terminal gets in place of a view that only a notebook can draw."""


def in_notebook() -> bool:
    """A kernel with a front end that draws widgets (terminal IPython and plain Python have no kernel)."""
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def needs_notebook(what: str, instead: str) -> str:
    return NEEDS_NOTEBOOK.format(what=what, instead=instead)


__all__ = ["NEEDS_NOTEBOOK", "in_notebook", "needs_notebook"]
