"""Tokens and rosters: making tokens, hashing them, reading a class list, handing new tokens out.

Tokens are long random strings, so a fast hash (SHA-256) is the right way to keep them: there
is nothing to brute-force, and a lookup by hash compares in constant time by construction.
"""

from __future__ import annotations

import csv
import hashlib
import os
import secrets
import time
from pathlib import Path

STUDENT_PREFIX = "kxs-"
INSTRUCTOR_PREFIX = "kxi-"
MIN_TOKEN_LENGTH = 16
MAX_NAME_LENGTH = 100


def new_token(prefix: str = STUDENT_PREFIX) -> str:
    return prefix + secrets.token_urlsafe(24)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def clean_name(name: str) -> str:
    """A student's name as kept: trimmed, one line, not empty, at most 100 characters."""
    text = " ".join(str(name).split())
    if not text:
        raise ValueError("a student needs a name")
    if len(text) > MAX_NAME_LENGTH:
        raise ValueError(f"a name has at most {MAX_NAME_LENGTH} characters: {text[:40]!r}...")
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ValueError(f"a name cannot hold control characters: {text!r}")
    return text


def check_token(token: str) -> str:
    """A token given by the instructor (a roster's token column): long enough to be unguessable."""
    token = token.strip()
    if len(token) < MIN_TOKEN_LENGTH or any(c.isspace() for c in token):
        raise ValueError(f"a token must be at least {MIN_TOKEN_LENGTH} characters with no spaces")
    return token


def read_roster(path: str | Path) -> list[tuple[str, str | None]]:
    """(name, token or None) for each row of a CSV with a ``name`` column (and optionally ``token``).

    Column names are matched case-insensitively; other columns are ignored; blank names are
    skipped; a name given twice counts once (the first row wins).
    """
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path}: the roster is empty; it needs a header row with a 'name' column")
        columns = [h.strip().lower() for h in header]
        if "name" not in columns:
            raise ValueError(f"{path}: no 'name' column in the header row ({', '.join(header) or 'empty'})")
        at_name = columns.index("name")
        at_token = columns.index("token") if "token" in columns else None
        rows: dict[str, str | None] = {}
        for number, row in enumerate(reader, start=2):
            raw = row[at_name] if at_name < len(row) else ""
            if not raw.strip():
                continue
            try:
                name = clean_name(raw)
                given = row[at_token].strip() if at_token is not None and at_token < len(row) else ""
                token = check_token(given) if given else None
            except ValueError as exc:
                raise ValueError(f"{path}, line {number}: {exc}") from None
            rows.setdefault(name, token)
    return list(rows.items())


def write_new_tokens(state_dir: str | Path, tokens: dict[str, str]) -> Path:
    """``<state>/new-tokens-<timestamp>.csv`` (name,token), readable by its owner only."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = Path(state_dir)
    for n in range(1000):
        path = folder / f"new-tokens-{stamp}{'' if n == 0 else f'-{n}'}.csv"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, lineterminator="\n")  # not CRLF: `cut -d, -f2` must give the bare token
            writer.writerow(["name", "token"])
            writer.writerows(tokens.items())
        return path
    raise OSError(f"could not find a free file name for new tokens in {folder}")
