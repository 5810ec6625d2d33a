"""``kx.compare(*refs)`` and ``%kontext compare``: the Compare tab's view in any cell.

The answer is a Comparison (what differs, its table and text) that a notebook draws as the panel's compare view
(CompareWidget: the divider on the image for two, flicker, difference, zoom, 2-8 side by side), and that keeps
today's static HTML beside it in the same output: a saved notebook read with no kernel or widget state, nbconvert
and GitHub show the thumbnails and the table, and a terminal prints the text.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from PIL import Image

from ..errors import ValidationError
from ..result import Result
from ..views.compare import Comparison
from .compare_widget import MAX_ITEMS, MODES, CompareWidget
from .frontends import in_notebook

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


class ComparedView(Comparison):
    """A Comparison that a notebook shows as the interactive compare view, with its static HTML kept beside."""

    def __init__(
        self,
        items: list[Result | Image.Image],
        labels: list[str] | None = None,
        *,
        mode: str = "slider",
        source_file: bytes | None = None,
    ) -> None:
        super().__init__(items, labels)
        self.mode = mode
        """The view two images open in (the divider by default); more than two open side by side."""
        self.source_file = source_file
        """An edit's source as its file, sent to the browser as it is (not re-encoded)."""
        self._view: CompareWidget | None = None

    @property
    def view(self) -> CompareWidget:
        """The compare view in the browser, made on first use (a terminal never makes one)."""
        if self._view is None:
            self._view = CompareWidget(mode=self.mode)
            self._view.show(self, self.source_file)
        return self._view

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle: dict[str, Any] = dict(super()._repr_mimebundle_(include, exclude))
        if in_notebook():
            widget = self.view._repr_mimebundle_()
            data = widget[0] if isinstance(widget, tuple) else widget
            if data:  # None once the view was closed
                bundle[WIDGET_VIEW] = data[WIDGET_VIEW]
        return bundle

    def close(self) -> None:
        """Let the browser's copies of the images go."""
        if self._view is not None:
            self._view.close()
            self._view = None


def compare(*refs: Any, mode: str = "slider", labels: list[str] | None = None) -> ComparedView:
    """Results side by side with what differs highlighted, drawn as the panel's Compare tab draws them.

    ``refs``: 1-8 results or job references (``"@3"``, ``"@last"``, a Result, a PIL image; one list of them works
    too). One edit alone is compared with the image it started from. Two open with a divider on the image (``mode``:
    ``"slider"``, ``"flicker"``, ``"difference"`` or ``"side by side"``). In a terminal it prints the differences.
    """
    if len(refs) == 1 and isinstance(refs[0], Iterable) and not isinstance(refs[0], (str, bytes, Result)):
        refs = tuple(refs[0])
    if mode not in MODES:
        raise ValidationError(f"mode={mode!r} is not allowed: choose one of {', '.join(MODES)}", field="mode")
    if not 1 <= len(refs) <= MAX_ITEMS:
        raise ValidationError(
            f"compare takes 1 to {MAX_ITEMS} results, not {len(refs)}: "
            "kx.compare('@3', '@5') (one edit alone: with its source)"
        )
    from .. import api

    items = [r if isinstance(r, (Image.Image, Result)) else api.load(r) for r in refs]
    if len(items) == 1 and isinstance(items[0], Result):
        edit = items[0]
        try:
            pair = Comparison.edit_and_source(edit)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        return ComparedView(pair.items, pair.labels, mode=mode, source_file=edit.inputs[0].data)
    return ComparedView(items, labels, mode=mode)


__all__ = ["ComparedView", "compare"]
