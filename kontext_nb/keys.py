"""The fal key in text and values: found in any string of a request (the send path refuses it) and taken out of
every error, notice, journal column and file we write (the last line of defence). config.py loads and cleans it.

The key in use and the environment's key settings, with their id and secret halves, are searched for as typed,
URL-encoded (any number of times, '+' as itself or a space), without whitespace (wrapped base64) and base64-encoded
(standard or URL-safe, padded or not, at any byte alignment). Imports nothing from the package: errors.py uses it.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import re
import urllib.parse
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

KEY_NAMES = ("FAL_KEY", "FAL_KEY_ID", "FAL_KEY_SECRET")
MIN_SECRET_PART = 8
"""Shorter pieces of a key are not searched for (they would match ordinary words)."""
REDACTED = "[fal key]"
WITHHELD = "(text withheld: it held the fal key)"
_SPACE = re.compile(r"\s+")


IN_USE: list[str] = []
"""Keys given as a setting (``kx.configure(key=...)``) in this process, newest last: redacted like FAL_KEY."""
KEEP_IN_USE = 4


def remember(key: str) -> None:
    """A configured key, so every later error text is redacted for it too (the environment's are read each time)."""
    if key in IN_USE:
        IN_USE.remove(key)
    IN_USE.append(key)
    del IN_USE[:-KEEP_IN_USE]


def secret_parts(key: str | None = None, environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The key in use, the environment's key settings, the configured keys (with the real environment) and their id
    and secret halves, longest first. Never raises: a damaged key is searched for whole and in its pieces."""
    env = os.environ if environ is None else environ
    parts: set[str] = set()
    for value in (key or "", *(env.get(name, "") for name in KEY_NAMES), *(IN_USE if environ is None else ())):
        for piece in (value, *value.split(":"), *re.split(r"[\s:]+", value)):
            if len(piece.strip()) >= MIN_SECRET_PART:
                parts.add(piece.strip())
    return tuple(sorted(parts, key=len, reverse=True))


@lru_cache(maxsize=64)
def _needles(part: str) -> tuple[tuple[str, str], ...]:
    """(text, how it is encoded) for a secret: as typed, and every base64 run its bytes alone decide."""
    out = [(part, "")]
    raw = part.encode("utf-8", "surrogatepass")
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode("ascii")
        start = 4 if offset else 0  # the first group mixes in the bytes before the secret
        core = encoded[start : 4 * ((offset + len(raw)) // 3)]  # the last group may mix in the bytes after it
        if len(core) >= MIN_SECRET_PART:
            out.append((core, "base64"))
            urlsafe = core.replace("+", "-").replace("/", "_")
            if urlsafe != core:
                out.append((urlsafe, "base64"))
    return tuple(out)


def _readings(text: str) -> Iterator[tuple[str, str]]:
    """The text as it is, URL-decoded (up to three times, '+' as itself or as a space) and without whitespace."""
    seen = {text}
    yield text, ""
    layer = [text]
    for _ in range(3):
        encoded = [t for t in layer if "%" in t or "+" in t]
        decoded = [d for t in encoded for d in (urllib.parse.unquote(t), urllib.parse.unquote_plus(t))]
        layer = [d for d in dict.fromkeys(decoded) if d not in seen]
        seen.update(layer)
        yield from ((d, "URL-encoded") for d in layer)
    for variant in list(seen):
        squeezed = _SPACE.sub("", variant)
        if squeezed not in seen:
            seen.add(squeezed)
            yield squeezed, "wrapped"


def secret_in(text: str, parts: tuple[str, ...]) -> str | None:
    """How a text holds a secret ('', 'URL-encoded', 'base64', ...), or None."""
    if not parts or not text:
        return None
    for reading, how in _readings(text):
        for part in parts:
            for needle, encoding in _needles(part):
                if needle in reading:
                    return ", ".join(x for x in (how, encoding) if x)
    return None


def _strings(value: Any, path: str, seen: set[int]) -> Iterator[tuple[str, str]]:
    """(path, text) for every string inside a value: dict keys and values, list items, dataclass fields."""
    if isinstance(value, str):
        yield path, value
        return
    if isinstance(value, (bytes, bytearray, int, float, bool)) or value is None or id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, Mapping):
        for k, v in value.items():
            name = f"{path}.{k}" if path else str(k)
            yield from _strings(k, name, seen)
            yield from _strings(v, name, seen)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for i, item in enumerate(value):
            yield from _strings(item, f"{path}[{i}]", seen)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from _strings(getattr(value, f.name), f"{path}.{f.name}" if path else f.name, seen)


def find_secret(value: Any, parts: tuple[str, ...]) -> tuple[str, str] | None:
    """(where, how) for the first string inside ``value`` that holds a secret, or None."""
    for where, text in _strings(value, "", set()):
        how = secret_in(text, parts)
        if how is not None:
            return where, how
    return None


def redact(text: str, parts: tuple[str, ...] | None = None) -> str:
    """The text with every secret (as typed, URL-encoded or base64) replaced; withheld whole if one still shows."""
    parts = secret_parts() if parts is None else parts
    if not parts or not text or secret_in(text, parts) is None:
        return text
    for part in parts:
        for needle in {part, urllib.parse.quote(part, safe=""), urllib.parse.quote_plus(part)}:
            text = text.replace(needle, REDACTED)
        for needle, _ in _needles(part)[1:]:
            text = text.replace(needle, REDACTED)
    return text if secret_in(text, parts) is None else WITHHELD


def redact_value(value: Any, parts: tuple[str, ...] | None = None) -> Any:
    """A copy of a JSON-like value (dicts, lists, strings) with every string redacted: metadata written into files."""
    parts = secret_parts() if parts is None else parts
    if isinstance(value, str):
        return redact(value, parts)
    if isinstance(value, Mapping):
        return {k: redact_value(v, parts) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(v, parts) for v in value]
    return value
