"""Scroll the gallery to a new card and flash it: ``Reveal``, a front end of its own (front/reveal.js).

ipywidgets cannot scroll from the kernel, so the gallery holds one small anywidget that does it in the browser.
The kernel only names the card (each card's widget carries a CSS class of its own); the browser finds it, scrolls
the gallery's grid (never the notebook around it) and flashes the card, and waits for the gallery to be shown when
the user is on another tab. Nothing comes back to the kernel.
"""

from __future__ import annotations

import anywidget
import traitlets as t

from . import front


class Reveal(anywidget.AnyWidget):
    """Shows nothing itself; ``show(css_class)`` scrolls the gallery's grid to that card and flashes it."""

    _esm = front.esm("reveal.js")
    _css = front.css("reveal.css")
    target = t.Unicode("").tag(sync=True)
    """The CSS class of the card to reveal ("" before the first)."""
    serial = t.Int(0).tag(sync=True)
    """Counts the requests, so naming the same card again reveals it again."""

    def show(self, css_class: str) -> None:
        """Reveal the card whose widget has ``css_class`` (now, or when the gallery is next shown)."""
        with self.hold_sync():
            self.target = css_class
            self.serial += 1


__all__ = ["Reveal"]
