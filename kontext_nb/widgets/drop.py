"""An image dropped on the Create tab, or pasted into it, becomes the source: ``ImageDrop`` (front/drop.js).

It shows nothing. The browser reads the file and sends its bytes once, as a binary buffer; ``on_image`` gets them
(Create makes them the source of an edit, as "use" on a result does).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anywidget
import traitlets as t

from . import front


class ImageDrop(anywidget.AnyWidget):
    """Drop or paste an image anywhere in the box with the CSS class ``scope``; ``on_image(bytes, name)`` runs."""

    _esm = front.esm("drop.js")
    _css = ".kx-drop-target { outline: 2px dashed var(--jp-brand-color1, #1976d2); outline-offset: 2px; }"
    scope = t.Unicode("").tag(sync=True)
    """The CSS class of the box that takes drops and pastes."""
    note = t.Unicode("").tag(sync=True)
    """Set by the browser when a drop was not an image (shown by the owner)."""

    def __init__(self, *, on_image: Callable[[bytes, str], None], **kwargs: Any) -> None:
        unknown = set(kwargs) - {"scope"}
        if unknown:
            raise TypeError(f"ImageDrop() got unexpected keyword argument(s): {', '.join(sorted(unknown))}")
        super().__init__(**kwargs)
        self._on_image = on_image
        self.on_msg(self._message)

    def _message(self, widget: Any, content: Any, buffers: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "image" and buffers:
            self._on_image(bytes(buffers[0]), str(content.get("name") or "dropped image"))


__all__ = ["ImageDrop"]
