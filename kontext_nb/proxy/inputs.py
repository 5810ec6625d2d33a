"""The real size of a request's input image, where the proxy can know it without decoding a pixel.

Per-megapixel jobs are reserved with the notebook's estimator, ``Endpoint.estimate(arguments,
input_size)``: an inpaint or a ``match_input`` edit makes an image the size of its input, so pricing
every input as 2048×2048 let one 8192² job commit sixteen times what was reserved. The proxy knows the
size of an input it holds (a data URI: its header, read from the first bytes) or one it stored itself
(an upload through it: recorded then, from the header). Any other URL is ``None``: the estimator's
worst case.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from kontext_nb import endpoints
from kontext_nb.fal.source_size import data_uri_size
from kontext_nb.images import header_size

__all__ = ["Size", "data_uri_size", "header_size", "input_size"]

Size = tuple[int, int]


def input_size(
    endpoint: endpoints.Endpoint, arguments: Mapping[str, Any], stored: Callable[[str], Size | None]
) -> Size | None:
    """The input size to price ``arguments`` with: the largest of the endpoint's input images when the proxy
    knows every one (``stored(url)`` answers for its own uploads), else None (the worst case)."""
    field = endpoint.image_field
    value = arguments.get(field.name) if field is not None else None
    values = value if isinstance(value, list) else [value] if value is not None else []
    sizes = []
    for item in values:
        size = data_uri_size(item) if isinstance(item, str) and item.startswith("data:") else None
        if size is None and isinstance(item, str):
            size = stored(item)
        if size is None:
            return None
        sizes.append(size)
    return max(sizes, key=lambda s: s[0] * s[1]) if sizes else None
