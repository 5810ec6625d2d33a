"""A damaged journal ('database disk image is malformed'): copy out every row still readable, move the file aside.

The journal is how users find the jobs they paid for, so a damaged page must cost as few rows as possible: the
rows are read in id ranges, and a range that hits the damage is split until only unreadable single rows are left.
The damaged file is moved aside, never overwritten or deleted.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

BIGGEST_GUESS = 10_000_000
"""Where to stop looking for rows when even the largest id cannot be read."""
MAX_FAILED_READS = 5_000
"""Give up splitting after this many failed reads (a file damaged everywhere must not take minutes)."""


def readable_rows(path: Path, table: str = "jobs") -> tuple[list[str], list[tuple[Any, ...]]]:
    """A table's column names (the jobs, or the spend ledger's) and every row that can still be read, in id order."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
    except sqlite3.Error:
        return [], []
    try:
        try:
            columns = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
        except sqlite3.DatabaseError:
            return [], []
        try:
            top = int(conn.execute(f"SELECT MAX(id) FROM {table}").fetchone()[0] or 0)
        except sqlite3.DatabaseError:
            top = BIGGEST_GUESS
        rows: list[tuple[Any, ...]] = []
        _read_range(conn, table, 1, top, rows)
        return columns, rows
    finally:
        conn.close()


def _read_range(conn: sqlite3.Connection, table: str, low: int, high: int, into: list[tuple[Any, ...]]) -> None:
    stack, failed = [(low, high)], 0
    while stack and failed < MAX_FAILED_READS:
        lo, hi = stack.pop()
        try:
            sql = f"SELECT * FROM {table} WHERE id BETWEEN ? AND ? ORDER BY id"
            into.extend(conn.execute(sql, (lo, hi)).fetchall())
        except sqlite3.DatabaseError:
            failed += 1
            if lo < hi:
                middle = (lo + hi) // 2
                stack += [(middle + 1, hi), (lo, middle)]  # the lower half first: rows stay in id order
    into.sort(key=lambda row: row[0])


def move_aside(path: Path) -> Path:
    """Rename the journal (and its -wal and -shm files) to a name nothing has yet; returns the new name."""
    aside = free_name(path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}"))
    for suffix in ("", "-wal", "-shm"):
        src = Path(str(path) + suffix)
        if src.exists():
            src.rename(Path(str(aside) + suffix))
    return aside


def free_name(path: Path) -> Path:
    """``path``, or ``path-2``, ``path-3``...: a name nothing has yet (moved-aside files are never overwritten)."""
    candidate, n = path, 1
    while any(Path(str(candidate) + s).exists() for s in ("", "-wal", "-shm")):
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate
