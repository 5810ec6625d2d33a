"""Result: the images of a finished job with everything that made them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from .endpoints import OfEndpoint
from .errors import ImageTooLarge
from .images import ImageInput, cannot_preview, decode_image, encode_thumbnail, image_size, preview
from .views import render


@dataclass(eq=False)
class Result(OfEndpoint):
    """A finished Kontext job. Renders as HTML in a notebook and as text in a terminal."""

    endpoint: str
    request_id: str
    arguments: dict[str, Any]
    """What was sent, with inline image data replaced by a short hash label."""
    seed: int | None
    """The seed fal used: the one given, or the one it drew."""
    prompt: str
    """The prompt fal reports (the enhanced one when enhance_prompt was on)."""
    image_bytes: list[bytes] = field(repr=False)
    """The image files: fal's bytes, never re-encoded, with the generation metadata added
    when they were saved to the runs folder (so they equal the files on disk). Only these are kept: ``images``
    decodes them on first use, outputs decode small previews (memory follows what is shown)."""
    content_types: list[str]
    urls: list[str]
    has_nsfw_concepts: list[bool]
    timings: dict[str, Any]
    cost: float
    """Dollars: price per image times the images returned."""
    inputs: list[ImageInput] = field(default_factory=list, repr=False)
    output: dict[str, Any] = field(default_factory=dict, repr=False)
    """fal's output JSON (data URIs elided)."""
    logs: tuple[dict[str, Any], ...] = field(default=(), repr=False)
    elapsed: float = 0.0
    cached: bool = False
    """Answered from the journal: no request, no charge."""
    files: list[Path] = field(default_factory=list)
    """The images on disk, with the generation metadata embedded."""
    journal_id: int | None = None
    parent_id: int | None = None
    """The journal id of the job whose image this one edited."""
    billable_units: float | None = None
    """What fal says it bills for this job (its ``x-fal-billable-units`` header, in the endpoint's unit: images, or
    megapixels); None when fal did not send it. Settlement may price it (units x unit price) over the estimate."""
    save_error: str | None = None
    """Why the images could not be written to disk (they are still in ``image_bytes``)."""
    _decoded: list[Image.Image] | None = field(default=None, init=False, repr=False)

    @property
    def images(self) -> list[Image.Image]:
        """The images, decoded on first use and then kept. One over images.MAX_INPUT_PIXELS raises ImageTooLarge,
        which says where its file is (its bytes are in ``image_bytes`` all the same)."""
        if self._decoded is None or len(self._decoded) != len(self.image_bytes):
            decoded = []
            for i, data in enumerate(self.image_bytes):
                try:
                    decoded.append(decode_image(data))
                except ImageTooLarge:
                    raise ImageTooLarge(self.no_preview(i)) from None
            self._decoded = decoded
        return self._decoded

    @property
    def sizes(self) -> list[tuple[int, int]]:
        """Each image's width and height, from its header (nothing decoded)."""
        return [image_size(data) for data in self.image_bytes]

    def thumbnail(self, index: int, side: int) -> tuple[bytes, str] | None:
        """Image ``index`` small and encoded (JPEG, or PNG with transparency) for an output; None when it is
        too large to decode (``no_preview`` says so in one line). Only a small copy is decoded (unless ``images``
        already holds the image), and it is not kept."""
        try:
            small = self._decoded[index] if self._decoded is not None else preview(self.image_bytes[index], side)
        except ImageTooLarge:
            return None
        return encode_thumbnail(small, side)

    def no_preview(self, index: int) -> str:
        """The one line shown instead of image ``index`` when it is too large to decode ('' when it is not)."""
        why = cannot_preview(self.image_bytes[index])
        if not why:
            return ""
        if index < len(self.files):
            where = f"the file is {self.files[index]}"
        else:
            where = f"its bytes are in result.image_bytes[{index}] (not saved: {self.save_error or 'no runs folder'})"
        return f"image {index + 1} of request {self.request_id} is {why}; {where}"

    @property
    def ref(self) -> str | None:
        """The journal reference ('@12') that names this result in magics and the panel."""
        return f"@{self.journal_id}" if self.journal_id is not None else None

    @property
    def image(self) -> Image.Image:
        """The first image (most jobs make one)."""
        return self.images[0]

    def __repr__(self) -> str:
        return render.result_text(self)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/plain": render.result_text(self), "text/html": render.result_html(self)}


class Results(list):  # type: ignore[type-arg]
    """Several results (a batch of prompts) shown one after another."""

    def __repr__(self) -> str:
        return "\n\n".join(render.result_text(r) for r in self)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/plain": repr(self), "text/html": "".join(render.result_html(r) for r in self)}
