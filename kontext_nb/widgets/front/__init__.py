"""Front ends that run in the browser (anywidget), and the one way images reach them.

Every view's browser side lives here, one way: compare, duel, mask, History's page, the gallery's reveal, the
file links, a --bg run's status, the prompt's recall and the image drop. Each is a plain ES module loaded with
``esm(...)``, its colours from JupyterLab's theme variables (see widgets/theme.py), and each is checked by
tests/widgets/test_front.py (it parses, fetches nothing, evaluates nothing, writes no HTML strings).

Plain ES modules live beside this file, with no build step: ``esm("images.js", "compare.js")`` joins them
in that order into the one module anywidget loads (shared helpers first, the widget's ``export default`` last;
the helpers are plain functions, so a widget can use them without an import). Views here keep their
interaction (dragging, zooming, flickering, painting) in the browser and send nothing to the kernel for it.

Images reach the browser once, as binary buffers: each is an ``ImageBuffer``, a model-only widget whose
``value`` is the file's bytes; a view holds references to buffers (``widget_serialization``), so adding a
fifth image to a comparison sends that image only, and re-rendering a view sends nothing. In JavaScript,
``await imageOf(model, ref)`` (images.js) gives its bytes, a Blob URL, its size and its download name.
"""

from __future__ import annotations

import functools
import io
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets as w
import traitlets as t
from PIL import Image

from ...images import preview

HERE = Path(__file__).resolve().parent
MAX_SIDE = 4096
"""Images up to this many pixels on their longer side are sent as their files (full resolution, metadata and
all); larger ones are sent downscaled to it. FLUX.1 Kontext makes about one megapixel, so this never applies
to its results."""


@functools.cache
def esm(*names: str) -> str:
    """The files ``names`` (in this folder) joined into one ES module."""
    return "\n".join((HERE / name).read_text(encoding="utf-8") for name in names)


def css(name: str) -> str:
    return (HERE / name).read_text(encoding="utf-8")


class ImageBuffer(w.Widget):  # type: ignore[misc]
    """One image file for the browser: its bytes travel once, as a binary buffer, never as base64 text."""

    value = t.Bytes(b"").tag(sync=True)
    """The file's bytes (JPEG, PNG or WebP, as saved)."""
    mime = t.Unicode("image/jpeg").tag(sync=True)
    width = t.Int(0).tag(sync=True)
    height = t.Int(0).tag(sync=True)
    name = t.Unicode("image.jpg").tag(sync=True)
    """The readable file name a download gets (views.names.readable_name)."""
    full = t.Bool(True).tag(sync=True)
    """False when the image was larger than MAX_SIDE and ``value`` holds a downscaled copy."""


def image_buffer(data: bytes, mime: str, name: str, size: tuple[int, int] | None = None) -> ImageBuffer:
    """An ImageBuffer of a file's bytes; images over MAX_SIDE are re-encoded at that side."""
    if size is None:
        with Image.open(io.BytesIO(data)) as image:
            size = image.size
    full = max(size) <= MAX_SIDE
    if not full:  # preview: a JPEG at draft scale; over images.MAX_INPUT_PIXELS, ImageTooLarge (one line)
        with preview(data, MAX_SIDE) as image:
            out = io.BytesIO()
            keep_png = mime == "image/png"
            (image if keep_png else image.convert("RGB")).save(out, "PNG" if keep_png else "JPEG", quality=92)
            data, size = out.getvalue(), image.size
            mime = "image/png" if keep_png else "image/jpeg"
    return ImageBuffer(value=data, mime=mime, width=size[0], height=size[1], name=name, full=full)


class Serial:
    """A view's handler of browser messages, called one message at a time, in the order they came.

    ipykernel 7 dispatches a comm message without waiting for the one before it to finish (so a widget can answer
    a cell that waits on it): a second key press could then run while the first is half done (a duel vote seen
    against the pair before). Messages that arrive while one is handled wait in a queue; the call that is handling
    takes them next, in order, whichever thread or task they came on."""

    def __init__(self, handler: Callable[[Any, Any, Any], None]) -> None:
        self.handler = handler
        self._lock = threading.Lock()
        self._queue: list[tuple[Any, Any, Any]] = []
        self._busy = False

    def __call__(self, widget: Any, content: Any, buffers: Any) -> None:
        with self._lock:
            self._queue.append((widget, content, buffers))
            if self._busy:
                return
            self._busy = True
        try:
            while True:
                with self._lock:
                    if not self._queue:
                        self._busy = False  # under the lock: a message queued now finds nobody handling, and handles
                        return
                    message = self._queue.pop(0)
                self.handler(*message)
        except BaseException:
            with self._lock:
                self._busy = False
            raise


__all__ = ["HERE", "MAX_SIDE", "ImageBuffer", "Serial", "css", "esm", "image_buffer"]
