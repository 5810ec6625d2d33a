"""The size of an image behind a URL, read from its header with one bounded range request.

A per-megapixel edit's output follows its source (``resolution_mode: match_input``, inpainting), so its price does
too; fal fetches a URL source itself, and kontext_nb would otherwise have to reserve the largest size fal takes.
The request is bounded like a download and safer: http(s) only, at most ``PROBE_BYTES`` read (a ``Range`` header,
and the reading stops there whatever the server sends), ``TIMEOUT`` seconds per step, at most ``MAX_REDIRECTS``
redirects and none to a loopback, private or link-local address given as such, no fal key or other credential
sent. Nothing is decoded: only the header is parsed. Any failure answers None, and the caller prices the largest.
"""

from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from ..images import header_size

PROBE_BYTES = 64 * 1024
"""Enough for the header of a PNG, WebP or GIF, and of a JPEG whose EXIF comes first (up to 64 KB)."""
TIMEOUT = 5.0
MAX_REDIRECTS = 3


@functools.lru_cache(maxsize=256)
def url_image_size(url: str) -> tuple[int, int] | None:
    """(width, height) of the image at ``url`` from its first bytes, or None when they cannot be read. Kept per URL
    for the kernel's life (a sweep over one source reads it once; one that could not be read stays priced high)."""
    target = url
    try:
        with httpx.Client(timeout=TIMEOUT, follow_redirects=False) as client:
            for hop in range(MAX_REDIRECTS + 1):
                if not _allowed(target, redirected=hop > 0):
                    return None
                headers = {"Range": f"bytes=0-{PROBE_BYTES - 1}", "Accept": "image/*"}
                with client.stream("GET", target, headers=headers) as response:
                    if response.is_redirect and "location" in response.headers:
                        target = urljoin(target, response.headers["location"])
                        continue
                    if response.status_code not in (200, 206):
                        return None
                    data = bytearray()
                    for chunk in response.iter_bytes():
                        data += chunk
                        if len(data) >= PROBE_BYTES:
                            break
                return header_size(bytes(data[:PROBE_BYTES]))
    except (httpx.HTTPError, httpx.InvalidURL, ValueError, OSError):
        return None
    return None


def data_uri_size(uri: Any) -> tuple[int, int] | None:
    """(width, height) of an image given as a ``data:`` URI, from its header (only the base64 is undone), or None.
    The first PROBE_BYTES first; the whole payload only when the header lies further (a JPEG's long EXIF)."""
    if not isinstance(uri, str) or not uri.startswith("data:"):
        return None
    header, comma, payload = uri.partition(",")
    if not comma or not header.endswith(";base64"):
        return None
    probe = 4 * (PROBE_BYTES // 3)  # whole groups of 4: no padding needed
    for chars in (probe, len(payload)):
        try:
            found = header_size(base64.b64decode(payload[: chars - chars % 4], validate=False))
        except (ValueError, binascii.Error):
            return None
        if found is not None or chars >= len(payload):
            return found
    return None


def _allowed(url: str, *, redirected: bool) -> bool:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    if not redirected:
        return True  # the address the user gave (a local server of theirs is theirs to name)
    host = parts.hostname
    if host == "localhost" or host.endswith(".localhost"):
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return True
    return not (address.is_private or address.is_loopback or address.is_link_local or address.is_reserved)
