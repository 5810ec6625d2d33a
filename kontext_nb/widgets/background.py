"""A ``--bg`` run's output while it runs: its status lines and a Cancel button, drawn by front/background.js.

The kernel sends the lines as text (never HTML); a click on Cancel is one message back. When the kernel restarts
or dies, the page itself replaces the frozen status with "kernel restarted — %kontext resume collects @12", so no
output is left at "running" with a Cancel that nothing hears.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anywidget
import traitlets as t

from . import front


class BackgroundStatus(anywidget.AnyWidget):
    """Status lines and a Cancel button; ``on_cancel`` runs when it is pressed (once)."""

    _esm = front.esm("images.js", "background.js")
    _css = front.css("background.css")
    lines = t.List(t.Unicode()).tag(sync=True)
    """The status, one line each (queued or running, elapsed time, fal's last logs)."""
    refs = t.Unicode("this job").tag(sync=True)
    """The jobs, as '@12' or '@12 @13': what the page names after a kernel restart."""
    cancelling = t.Bool(False).tag(sync=True)
    """True once Cancel was pressed (the button stays disabled)."""

    def __init__(self, *, on_cancel: Callable[[], None], **kwargs: Any) -> None:
        unknown = set(kwargs) - {"lines", "refs"}
        if unknown:
            raise TypeError(f"BackgroundStatus() got unexpected keyword argument(s): {', '.join(sorted(unknown))}")
        super().__init__(**kwargs)
        self._on_cancel = on_cancel
        self.on_msg(self._message)

    def cancel(self) -> None:
        """What the button does."""
        if not self.cancelling:
            self.cancelling = True
            self._on_cancel()

    def _message(self, widget: Any, content: Any, buffers: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "cancel":
            self.cancel()


__all__ = ["BackgroundStatus"]
