"""Readable names for files a user takes away (downloads, exported grids): ``0034-seed42-a-red-fox.jpg``.

The one place such a name is made. Names are built from the journal id, the seed and the first words of the
prompt, reduced to lowercase ASCII letters, digits and hyphens, so a hostile prompt can never become a path.
Files inside the runs folder keep their content-hash names; these names are for what leaves it.
"""

from __future__ import annotations

import re
import unicodedata

WORDS = 6
"""At most this many prompt words in a name."""
CHARS = 48
"""At most this many characters of prompt in a name."""
EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp", "image/gif": "gif"}


def slug(text: str, words: int = WORDS, chars: int = CHARS) -> str:
    """'A red fox, in snow!' -> 'a-red-fox-in-snow': ASCII letters and digits joined by single hyphens."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    parts = re.findall(r"[a-z0-9]+", ascii_text)[:words]
    out = "-".join(parts)[:chars].strip("-")
    return out


def readable_name(
    *,
    prompt: str = "",
    seed: int | None = None,
    journal_id: int | None = None,
    mime: str = "image/jpeg",
    index: int = 0,
    count: int = 1,
    kind: str = "",
) -> str:
    """``0034-seed42-a-red-fox.jpg``; ``-2`` before the extension for a job's second image; ``kind``
    (e.g. 'grid') goes first. Parts that are unknown are left out; never empty."""
    parts = [kind] if kind else []
    if journal_id is not None:
        parts.append(f"{journal_id:04d}")
    if seed is not None:
        parts.append(f"seed{seed}")
    if words := slug(prompt):
        parts.append(words)
    if count > 1:
        parts.append(str(index + 1))
    stem = "-".join(parts) or "image"
    return f"{stem}.{EXTENSIONS.get(mime, mime.rpartition('/')[2] or 'bin')}"
