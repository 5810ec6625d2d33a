"""The compare view in the browser: 2-8 results side by side, or two overlaid with a divider, flicker or their
difference, zoomed and panned together.

What differs comes from views.compare.Comparison (the one rule for it); the images travel once as binary buffers
(front.ImageBuffer, full resolution up to front.MAX_SIDE). Dragging the divider, zooming, panning and flickering
happen in the browser (front/compare.js) and send nothing to the kernel.
"""

from __future__ import annotations

import io
from typing import Any

import anywidget
import ipywidgets as w
import traitlets as t
from PIL import Image

from ..images import sniff_content_type
from ..result import Result
from ..views.compare import Comparison
from ..views.names import readable_name
from . import front

MODES = ("side by side", "slider", "flicker", "difference")
MAX_ITEMS = 8


class CompareWidget(anywidget.AnyWidget):
    """A Comparison drawn in the browser. ``show(comparison)`` replaces what it shows."""

    _esm = front.esm("images.js", "compare.js")
    _css = front.css("compare.css")

    items = t.List(t.Dict()).tag(sync=True, **w.widget_serialization)
    """Per image: label, caption, the prompt's words with a changed flag, flagged (NSFW), image (an ImageBuffer)."""
    rows = t.List(t.List()).tag(sync=True)
    """The differing settings: [name, [value per item], [highlighted per item]]."""
    note = t.Unicode("").tag(sync=True)
    """A line shown when no table is (e.g. 'no settings differ')."""
    common_prompt = t.Unicode("").tag(sync=True)
    """The prompt, once, when every result has the same one."""
    mode = t.Unicode("slider").tag(sync=True)
    """The view a comparison opens in: the ``mode`` given for two images (default: the divider), side by side
    for more. The user's later choices stay in the browser."""
    pair = t.List(t.Int(), default_value=[0, 1]).tag(sync=True)
    """The two items a pair view overlays (first on the left)."""
    overlay = t.Instance(front.ImageBuffer, allow_none=True).tag(sync=True, **w.widget_serialization)
    """What changed (kx.changes' heat map, red where the edit changed, clear elsewhere), drawn over the pair's
    image with the same zoom and pan; None: not shown."""
    overlay_note = t.Unicode("").tag(sync=True)
    """The change scores, shown with the overlay."""

    def __init__(self, **kwargs: Any) -> None:
        self._buffers: dict[int, front.ImageBuffer] = {}
        """id(image source) -> its buffer, so showing a result again sends nothing new."""
        self._sources: dict[int, object] = {}
        unknown = set(kwargs) - {"mode"}
        if unknown:
            raise TypeError(f"CompareWidget() got unexpected keyword argument(s): {', '.join(sorted(unknown))}")
        if kwargs.get("mode", "slider") not in MODES:
            raise ValueError(f"mode={kwargs['mode']!r}: choose one of {', '.join(MODES)}")
        super().__init__(**kwargs)
        self._pair_mode = str(self.mode)

    def show(self, comparison: Comparison | None, source: bytes | None = None) -> None:
        """Show a comparison (None: nothing). At most MAX_ITEMS items. ``source``: the file of an edit's source
        image, sent as it is instead of re-encoding its first item."""
        if comparison is None:
            self._set([], [], "", "")
            return
        if len(comparison.items) > MAX_ITEMS:
            raise ValueError(f"{len(comparison.items)} results: the compare view shows at most {MAX_ITEMS}")
        words = comparison.prompt_diff() if "prompt" in comparison.differences() else [[] for _ in comparison.items]
        items: list[dict[str, Any]] = []
        for item, label, caption, marked in zip(
            comparison.items, comparison.labels, comparison.captions(), words, strict=True
        ):
            flagged = isinstance(item, Result) and item.has_nsfw_concepts[:1] == [True]
            items.append(
                {
                    "label": label,
                    "caption": caption,
                    "words": [[word, changed] for word, changed in marked],
                    "flagged": flagged,
                    "image": self._buffer(item, source if not items else None),
                }
            )
        rows = [[name, values, hot] for name, values, hot in comparison.rows()]
        self._set(items, rows, comparison.note(), comparison.common_prompt() or "")

    def show_overlay(self, png: bytes | None, note: str = "") -> None:
        """Draw ``png`` (RGBA, the pair's shape) over the pair, or take the overlay away (None)."""
        old = self.overlay
        with self.hold_sync():
            self.overlay = front.image_buffer(png, "image/png", "what-changed.png") if png else None
            self.overlay_note = note if png else ""
        if old is not None:
            old.close()

    def _set(self, items: list[dict[str, Any]], rows: list[Any], note: str, prompt: str) -> None:
        keep = {id(item["image"]) for item in items}
        with self.hold_sync():
            self.rows, self.note, self.common_prompt = rows, note, prompt
            self.pair = [0, 1]
            self.mode = self._pair_mode if len(items) == 2 else "side by side"
            self.items = items
        for key, buffer in list(self._buffers.items()):
            if id(buffer) not in keep:
                del self._buffers[key], self._sources[key]
                buffer.close()

    def _buffer(self, item: Result | Image.Image, data: bytes | None = None) -> front.ImageBuffer:
        key = id(item)
        if key not in self._buffers:
            self._buffers[key] = image_buffer_of(item, data)
            self._sources[key] = item  # kept so its id is not reused while the buffer lives
        return self._buffers[key]

    def close(self) -> None:
        self.show_overlay(None)
        for buffer in self._buffers.values():
            buffer.close()
        self._buffers.clear()
        self._sources.clear()
        super().close()


def image_buffer_of(item: Result | Image.Image, data: bytes | None = None) -> front.ImageBuffer:
    """A result's first image file as saved (metadata inside, readable name); a plain image as its file ``data``
    when given, else as PNG."""
    if isinstance(item, Result):
        file = item.image_bytes[0]
        kind = sniff_content_type(file) or item.content_types[0]
        name = readable_name(
            prompt=item.prompt, seed=item.seed, journal_id=item.journal_id, mime=kind, count=len(item.image_bytes)
        )
        return front.image_buffer(file, kind, name, item.sizes[0])
    mime = sniff_content_type(data) if data is not None else None
    if data is None or mime is None:
        out = io.BytesIO()
        item.save(out, "PNG")
        data, mime = out.getvalue(), "image/png"
    return front.image_buffer(data, mime, readable_name(kind="source", mime=mime), item.size)
