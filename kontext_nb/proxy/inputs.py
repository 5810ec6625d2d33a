"""The real sizes of a request's input images, where the proxy can know them without decoding a pixel.

Jobs are reserved with the registry's upper bound, ``models.bound(model, arguments, input_sizes)``: an inpaint or a
``match_input`` edit makes an image the size of its input, and FLUX.2 [flex] bills input megapixels too, so pricing
every input as the largest fal takes is safe but dear, and pricing it small let one 8192² job commit sixteen times
what was reserved. The proxy knows the size of an input it holds (a data URI: its header, read from the first bytes)
or one it stored itself (an upload through it: recorded then, from the header). Any other URL is ``None``: the
bound's worst case.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from kontext_nb import models
from kontext_nb.fal.source_size import data_uri_size
from kontext_nb.images import header_size

__all__ = ["Size", "data_uri_size", "header_size", "input_sizes"]

Size = tuple[int, int]


def input_sizes(
    model: models.Model, arguments: Mapping[str, Any], stored: Callable[[str], Size | None]
) -> list[Size | None]:
    """The (width, height) of every image the request sends, sources first, then masks and references (the order
    ``models.bound`` reads); None where the proxy does not know it (``stored(url)`` answers for its own uploads)."""
    source = model.source_field
    names = [source.name] if source is not None else []
    names += [n for n in model.image_inputs if n not in names]
    sizes: list[Size | None] = []
    for name in names:
        value = arguments.get(name)
        for item in value if isinstance(value, list) else [value] if value is not None else []:
            size = data_uri_size(item) if isinstance(item, str) and item.startswith("data:") else None
            if size is None and isinstance(item, str):
                size = stored(item)
            sizes.append(size)
    return sizes
