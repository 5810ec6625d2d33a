"""The mask painter: paint where an inpainting job may change the image, in the browser, at full resolution.

An anywidget: the source arrives once as a binary buffer, every stroke stays in the browser (a canvas the
size of the source), and only the finished mask — a black-and-white PNG of the source's exact size, white
where the image is repainted — comes back to the kernel, once, when "Use mask" is pressed.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import anywidget
import traitlets
from PIL import Image

from ..errors import ImageInputError
from ..images import ImageInput, prepare_image
from . import front
from .frontends import in_notebook, needs_notebook


def _bytes_from_json(js: Any, widget: Any) -> bytes:
    """The browser's binary buffer (a memoryview) as bytes: traitlets.Bytes takes nothing else."""
    return b"" if js is None else bytes(js)


class MaskPainter(anywidget.AnyWidget):
    """Paint a mask over ``source``; ``mask_image`` (or ``mask=painter``) is the result, once "Use mask" is pressed."""

    _esm = front.esm("images.js", "mask.js")
    _css = front.css("mask.css")
    image = traitlets.Bytes(b"").tag(sync=True)
    """The source, encoded as given (sent once)."""
    image_type = traitlets.Unicode("image/png").tag(sync=True)
    width = traitlets.Int(0).tag(sync=True)
    """The source's width in pixels: the mask's too."""
    height = traitlets.Int(0).tag(sync=True)
    brush = traitlets.Int(40).tag(sync=True)
    """Brush diameter in source pixels."""
    mask = traitlets.Bytes(b"").tag(sync=True, from_json=_bytes_from_json)
    """The finished mask PNG, set by the browser when "Use mask" is pressed."""
    status = traitlets.Unicode("").tag(sync=True)

    def __init__(self, source: Any, *, on_mask: Callable[[bytes], None] | None = None, brush: int = 40) -> None:
        picture = prepare_image(source)
        if picture.data is None or picture.size is None:
            raise ImageInputError(
                "the mask painter needs the image's pixels: give a file, a Result or an array, not a URL"
            )
        super().__init__(
            image=picture.data,
            image_type=picture.content_type or "image/png",
            width=picture.size[0],
            height=picture.size[1],
            brush=brush,
        )
        self.source: ImageInput = picture
        self._on_mask = on_mask
        self.observe(self._mask_arrived, "mask")

    def __repr__(self) -> str:
        """What a terminal prints: one line saying where the painter can be used, and what works here instead."""
        return needs_notebook(
            f"mask painter ({self.width}x{self.height})",
            "give kx.inpaint(..., mask=) an image of the source's size instead (white = repaint)",
        )

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        if not in_notebook():
            return {"text/plain": repr(self)}, {}
        bundle = super()._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        if isinstance(data, dict):  # a saved notebook read with no kernel shows this, not "MaskPainter(...)"
            data["text/plain"] = "kontext_nb mask painter (it needs a running kernel)"
        return bundle

    def _mask_arrived(self, change: Any) -> None:
        data = bytes(change.new or b"")
        if not data:
            return
        try:
            with Image.open(io.BytesIO(data)) as im:
                size = im.size
        except OSError:
            self.status = "the browser sent an unreadable mask"
            return
        if size != (self.width, self.height):
            self.status = f"the mask is {size[0]}x{size[1]}, not the source's {self.width}x{self.height}"
            return
        self.status = f"mask ready: {size[0]}x{size[1]}"
        if self._on_mask is not None:
            self._on_mask(data)

    @property
    def mask_image(self) -> Image.Image:
        """The painted mask as a PIL image ("L": 255 = repaint), the source's exact size."""
        if not self.mask:
            raise ImageInputError('no mask yet: paint over the image and press "Use mask"')
        with Image.open(io.BytesIO(bytes(self.mask))) as im:
            out: Image.Image = im.convert("L")
        return out

    def set_mask(self, mask: Any) -> None:
        """Use a mask made elsewhere (a file, a PIL image, an array): it must be the source's size."""
        image = prepare_image(mask)
        if image.size != (self.width, self.height):
            raise ImageInputError(f"the mask must be {self.width}x{self.height}, the source's size; it is {image.size}")
        buf = io.BytesIO()
        with Image.open(io.BytesIO(image.data or b"")) as im:
            im.convert("L").point(lambda v: 255 if v >= 128 else 0).save(buf, "PNG")
        self.mask = buf.getvalue()

    def kontext_image(self) -> bytes:
        """What ``mask=painter`` sends: the finished mask PNG."""
        if not self.mask:
            raise ImageInputError('no mask yet: paint over the image and press "Use mask"')
        return bytes(self.mask)


def mask(source: Any, *, brush: int = 40) -> MaskPainter:
    """Paint a mask over ``source`` (a path, Result, "@12", array ...): ``kx.inpaint(source, ..., mask=painter)``."""
    from ..api import get_session
    from ..journal.tracking import is_ref

    if is_ref(source):
        source = get_session().result(source)
    return MaskPainter(source, brush=brush)
