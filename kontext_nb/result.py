"""Result: the images of a finished job with everything that made them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from .endpoints import OfEndpoint
from .images import ImageInput
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
    images: list[Image.Image]
    image_bytes: list[bytes] = field(repr=False)
    """The image files: fal's bytes, never re-encoded, with the generation metadata added
    when they were saved to the runs folder (so they equal the files on disk)."""
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
    save_error: str | None = None
    """Why the images could not be written to disk (they are still in ``images``)."""

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
