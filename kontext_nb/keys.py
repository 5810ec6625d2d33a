"""The fal key: read once and cleaned, refused in any string of a request, taken out of any text we keep or show.

One place for all three, so every door agrees:
- ``clean_key``: a key pasted from a CSV ends in ``\\r`` or a space, which httpx refuses in a header (and then prints
  the whole header). Surrounding whitespace is stripped; a control character inside is refused in one line that never
  repeats the key.
- ``find_secret``: walks every string of a request (nested dicts, lists, dataclasses such as image inputs and submit
  options) and finds the key or its id or secret half, as typed, URL-encoded (any number of times) or base64-encoded
  (standard or URL-safe, padded or not, at any byte alignment, wrapped in lines).
- ``redact``: the last line of defence for error texts, notices and journal columns.

Imports nothing from the package, so errors.py can use it.
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


def clean_key(value: str | None, name: str) -> str | None:
    """A key setting as fal must get it: surrounding whitespace stripped; None when empty. A control character, space
    or non-ASCII character inside is refused (ValidationError naming the setting and the position, not the key)."""
    if value is None or not value.strip():
        return None
    stripped = value.strip()
    bad = next(((i, c) for i, c in enumerate(stripped) if not "\x21" <= c <= "\x7e"), None)
    if bad is not None:
        from .errors import ValidationError

        position, char = bad
        kind = "a control character" if ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0 else "a character"
        raise ValidationError(
            f"{name} holds {kind} (U+{ord(char):04X}) inside it, at character {position + 1} of {len(stripped)}: "
            "a fal key is printable ASCII; paste it again (nothing was sent)",
            field=name,
        )
    return stripped


def fal_key_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    """FAL_KEY, else FAL_KEY_ID:FAL_KEY_SECRET, cleaned (fal_client's order); None when neither is set."""
    env = os.environ if environ is None else environ
    key = clean_key(env.get("FAL_KEY"), "FAL_KEY")
    if key is not None:
        return key
    key_id = clean_key(env.get("FAL_KEY_ID"), "FAL_KEY_ID")
    secret = clean_key(env.get("FAL_KEY_SECRET"), "FAL_KEY_SECRET")
    return f"{key_id}:{secret}" if key_id and secret else None


def resolve_key(key: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """The key a session uses: its own setting, else the environment's, cleaned (raises on a damaged one)."""
    return clean_key(key, "the key setting") if key is not None else fal_key_from_env(environ)


def secret_parts(key: str | None = None, environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The key in use, the environment's key settings and their id and secret halves, longest first. Never raises:
    a damaged key is searched for whole and in its pieces."""
    env = os.environ if environ is None else environ
    parts: set[str] = set()
    for value in (key or "", *(env.get(name, "") for name in KEY_NAMES)):
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


def search(settings: Any, values: list[tuple[str, Any]]) -> tuple[str, str] | None:
    """(where, how) the key in use (``settings.key`` or the environment's) is held in any of the named values.

    No frame of a traceback from here shows the key (IPython's verbose tracebacks print every frame's variables):
    the only variable that holds it is emptied before anything is raised, and the error is a fresh one."""
    parts: tuple[str, ...] = ()
    try:
        parts = secret_parts(resolve_key(getattr(settings, "key", None)))
        for prefix, value in values:
            found = find_secret(value, parts)
            if found is not None:
                return prefix + found[0], found[1]
        return None
    except Exception as exc:
        parts = ()
        from .errors import ValidationError

        if isinstance(exc, ValidationError):
            raise ValidationError(str(exc), field=exc.field) from None
        raise RuntimeError(f"checking the request for the fal key failed ({type(exc).__name__})") from None
