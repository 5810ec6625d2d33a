"""A damaged journal ('database disk image is malformed'): copy out every row still readable, move the file aside;
and every kernel on the runs folder follows the journal to its new file.

The journal is how users find the jobs they paid for, so a damaged page must cost as few rows as possible: the
rows of every table are read in rowid ranges, and a range that hits the damage is split until only unreadable
single rows are left. The damaged file is moved aside, never overwritten or deleted.

Several kernels share the journal, so a salvage is coordinated:
- The journal's generation is the identity of its file (device and inode; ``identity``). A salvage replaces the
  file, so every connection checks, before each write transaction (and each read), that the file it has open is
  still the journal; a connection to a moved-aside file is replaced and the rows it holds that the new journal
  lacks are carried over (``carry_over``). The identity of an open file cannot be reused while it is open.
- ``locked(path, exclusive=True)`` (a lock on the runs folder) is held while a salvage re-checks the damage
  and swaps the files; opening a connection holds it shared, so nobody opens a half-made journal, and two kernels
  that meet the same damage salvage it once: the second sees the file is no longer the one it found damaged.
- The salvage also holds the damaged file's write lock (``BEGIN IMMEDIATE``) while it reads and moves it, so no
  kernel commits there after its rows were read; and ids go on past the old file's largest (``ID_GAP``), so no
  row carried over later can meet a new row's id.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

if sys.platform != "win32":
    import fcntl

log = logging.getLogger(__name__)

BIGGEST_GUESS = 10_000_000
"""Where to stop looking for rows when even the largest id cannot be read."""
MAX_FAILED_READS = 5_000
"""Give up splitting after this many failed reads (a file damaged everywhere must not take minutes)."""
ID_GAP = 1_000
"""Ids in a salvaged journal start this far past the damaged file's largest: rows a kernel still wrote there (a
salvage that could not take the file's write lock) are carried over under their own ids."""

Identity = tuple[int, int]
Tables = dict[str, tuple[list[str], list[tuple[Any, ...]]]]
"""table -> (column names with 'rowid' first, readable rows)."""


def identity(path: Path) -> Identity | None:
    """The journal file's generation: its device and inode (None when there is no file)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino)


@contextlib.contextmanager
def locked(path: Path, *, exclusive: bool) -> Iterator[None]:
    """The journal's salvage lock (on its runs folder): exclusive while salvaging, shared while connecting.
    Without fcntl (Windows) there is no lock: the identity check still keeps a healthy journal where it is."""
    if sys.platform == "win32":
        yield
        return
    try:
        fd = os.open(path.parent, os.O_RDONLY)  # the runs folder itself: no file of its own to leave behind
    except OSError:  # a folder that cannot be opened fails with its own error when the journal is opened
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        except OSError as exc:  # a filesystem without locks: the identity check still keeps a sound journal
            log.debug("no lock on %s: %s", path.parent, exc)
        yield
    finally:
        os.close(fd)  # closing releases the lock


@contextlib.contextmanager
def holding(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection to the journal holding its write lock (``BEGIN IMMEDIATE``: writers in every kernel wait), to
    read it through; a file so damaged the lock cannot be taken is read without it."""
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None)
    try:
        with contextlib.suppress(sqlite3.DatabaseError):
            conn.execute("BEGIN IMMEDIATE")
        yield conn
    finally:
        conn.close()  # after the move: SQLite sees the file moved, so it neither checkpoints nor deletes anything


def damaged(path: Path) -> bool:
    """Whether SQLite finds the file damaged now (re-checked under the lock before anything is moved)."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30.0)
    except sqlite3.Error:
        return True
    try:
        return bool(conn.execute("PRAGMA integrity_check(1)").fetchone()[0] != "ok")
    except sqlite3.OperationalError:  # locked, busy: not a sign of damage
        return False
    except sqlite3.DatabaseError:
        return True
    finally:
        conn.close()


def readable_tables(conn: sqlite3.Connection) -> Tables:
    """Every table's columns and readable rows ('rowid' first), through ``conn``; tables SQLite keeps for itself
    (sqlite_sequence) are left out."""
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    except sqlite3.DatabaseError:
        names = ["jobs", "votes"]  # the schema itself is damaged: try the tables every journal has
    tables: Tables = {}
    for name in names:
        if name.startswith("sqlite_"):
            continue
        try:
            columns = ["rowid", *(r[1] for r in conn.execute(f'PRAGMA table_info("{name}")'))]
        except sqlite3.DatabaseError:
            continue
        if len(columns) == 1:
            continue
        try:
            top = int(conn.execute(f'SELECT MAX(rowid) FROM "{name}"').fetchone()[0] or 0)
        except sqlite3.DatabaseError:
            top = BIGGEST_GUESS
        rows: list[tuple[Any, ...]] = []
        _read_range(conn, name, 1, top, rows)
        tables[name] = (columns, rows)
    return tables


def readable_rows(path: Path, table: str = "jobs") -> tuple[list[str], list[tuple[Any, ...]]]:
    """A table's column names (the jobs, or the spend ledger's) and every row that can still be read, in id order."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
    except sqlite3.Error:
        return [], []
    try:
        columns, rows = readable_tables(conn).get(table, (["rowid"], []))
        return columns[1:], [row[1:] for row in rows]
    finally:
        conn.close()


def _read_range(conn: sqlite3.Connection, table: str, low: int, high: int, into: list[tuple[Any, ...]]) -> None:
    stack, failed = [(low, high)], 0
    sql = f'SELECT rowid, * FROM "{table}" WHERE rowid BETWEEN ? AND ? ORDER BY rowid'
    while stack and failed < MAX_FAILED_READS:
        lo, hi = stack.pop()
        try:
            into.extend(conn.execute(sql, (lo, hi)).fetchall())
        except sqlite3.DatabaseError:
            failed += 1
            if lo < hi:
                middle = (lo + hi) // 2
                stack += [(middle + 1, hi), (lo, middle)]  # the lower half first: rows stay in id order
    into.sort(key=lambda row: row[0])


def copy_into(w: Any, tables: Tables, *, replace_older: bool) -> int:
    """Write ``tables``' rows into the journal behind ``w`` (a write transaction), by rowid, every column the two
    share. ``replace_older``: a row already there is replaced when the one given changed later (its 'updated'),
    and kept otherwise; a row whose id holds another job there (another 'created') is added under a new id.
    Returns how many rows were written. A table the journal does not have is named in the log and left out."""
    written = 0
    for table, (columns, rows) in tables.items():
        ours = [r[1] for r in w.execute(f'PRAGMA table_info("{table}")')]
        if not ours:
            log.warning("the journal has no table %s: %d rows of it were not carried over", table, len(rows))
            continue
        info = list(w.execute(f'PRAGMA table_info("{table}")'))
        alias = {r[1] for r in info if r[5] == 1 and str(r[2]).upper() == "INTEGER"}  # the rowid under a name
        names = [c for c in columns if c == "rowid" or (c in ours and c not in alias)]
        at = [columns.index(c) for c in names]
        marks = ", ".join("?" for _ in names)
        insert = f'INSERT OR REPLACE INTO "{table}" ({", ".join(names)}) VALUES ({marks})'
        for row in rows:
            values = [row[i] for i in at]
            if replace_older:
                found = w.execute(f'SELECT * FROM "{table}" WHERE rowid = ?', (row[0],)).fetchone()
                there = None if found is None else dict(found)
                given = dict(zip(names, values, strict=True))
                if there is not None and _another(there, given):
                    values[0] = None  # another row holds that id here: both are kept, this one under a new id
                elif there is not None and not _newer(given, there):
                    continue
            w.execute(insert, values)
            written += 1
    return written


def _another(there: dict[str, Any], given: dict[str, Any]) -> bool:
    return "created" in there and there["created"] != given.get("created")


def _newer(given: dict[str, Any], there: dict[str, Any]) -> bool:
    """Whether the row given changed after the one there (rows without 'updated' never change: keep them)."""
    return "updated" in there and (given.get("updated") or 0) > (there["updated"] or 0)


def gap_ids(w: Any, tables: Tables) -> None:
    """Let each table's ids go on ``ID_GAP`` past the largest the damaged file held (see ``ID_GAP``)."""
    for table, (_, rows) in tables.items():
        top = max((int(r[0]) for r in rows), default=0) + ID_GAP
        if w.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence'").fetchone():
            w.execute("DELETE FROM sqlite_sequence WHERE name = ?", (table,))
            w.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (table, top))


def past_ledger(w: Any) -> None:
    """A job id the ledger names is never given to a new job (its money would be taken for the new one's)."""
    if not w.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'ledger'").fetchone():
        return
    top = int(w.execute("SELECT COALESCE(MAX(job_id), 0) FROM ledger").fetchone()[0])
    if w.execute("UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = 'jobs'", (top,)).rowcount == 0:
        w.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('jobs', ?)", (top,))


def carry_over(old: sqlite3.Connection, new: Any) -> int:
    """Rows a moved-aside journal (``old``, still open) holds that the live one (``new``, a write transaction)
    lacks or holds in an older state: every table, generically. Returns how many were carried over."""
    return copy_into(new, readable_tables(old), replace_older=True)


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
