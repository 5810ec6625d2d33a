"""↑ / ↓ in the Create tab's prompt recall earlier prompts: ``PromptRecall``, a front end of its own (front/recall.js).

It shows nothing; it holds the journal's recent distinct prompts (newest first) and, in the browser, steps through
them in the first textarea of the box with its ``scope`` class. Nothing comes back to the kernel but the prompt the
Textarea syncs as if typed.
"""

from __future__ import annotations

import anywidget
import traitlets as t

from . import front

KEEP = 100
"""Prompts held for recall."""


class PromptRecall(anywidget.AnyWidget):
    """Prompt history for ↑ / ↓ in a textarea (the first in the box with the CSS class ``scope``)."""

    _esm = front.esm("recall.js")
    scope = t.Unicode("").tag(sync=True)
    """The CSS class of the box whose textarea gets ↑ / ↓."""
    prompts = t.List(t.Unicode()).tag(sync=True)
    """Earlier prompts, newest first, each once."""

    def remember(self, prompts: list[str]) -> None:
        """Put ``prompts`` (newest first) at the front of the history, each once, at most KEEP."""
        merged = list(dict.fromkeys(p for p in [*prompts, *self.prompts] if p.strip()))
        self.prompts = merged[:KEEP]


__all__ = ["KEEP", "PromptRecall"]
