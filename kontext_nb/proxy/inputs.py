"""The real size of a request's input image, where the proxy can know it without decoding a pixel.

Per-megapixel jobs are reserved with the notebook's estimator, ``Endpoint.estimate(arguments,
input_size)``: an inpaint or a ``match_input`` edit makes an image the size of its input, so pricing
every input as 2048×2048 let one 8192² job commit sixteen times what was reserved. The proxy knows the
size of an input it holds (a data URI: its header, read from the first bytes) or one it stored itself
(an upload through it: recorded then, from the header). Any other URL is ``None``: the estimator's
worst case.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from typing import Any

from kontext_nb import endpoints
from kontext_nb.images import image_size

HEAD_CHARS = 64 * 1024  # base64 characters decoded first: headers (and EXIF before a JPEG's SOF) fit in 48 KB
Size = tuple[int, int]


def header_size(data: bytes) -> Size | None:
    """(width, height) from an image's header alone; None when the bytes are not a readable image header."""
    try:
        width, height = image_size(data)
    except Exception:
        return None
    return (int(width), int(height)) if width > 0 and height > 0 else None


def data_uri_size(uri: str) -> Size | None:
    """The size a ``data:image/...;base64,`` URI's header declares; its pixels are never decoded."""
    header, sep, payload = uri.partition(",")
    if not sep or not header.startswith("data:image/") or ";base64" not in header:
        return None
    for chars in (HEAD_CHARS, len(payload)):  # the head first; the whole payload only if the header lies further
        head = payload[: chars - chars % 4]
        try:
            found = header_size(base64.b64decode(head, validate=False))
        except (binascii.Error, ValueError):
            return None
        if found is not None or chars >= len(payload):
            return found
    return None


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
