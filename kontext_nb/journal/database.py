"""One small database interface, two implementations: SQLite (the embedded default, one host) and PostgreSQL
(``journal_url = postgresql://...``: every kernel on every host, and every proxy instance, shares one database).

Why not an ORM or SQLAlchemy Core (issue #24): what differs between the two engines here is small and known:
placeholders (``?`` / ``%s``), the id of a new row (``lastrowid`` / ``RETURNING id``), the one-writer-at-a-time
lock (``BEGIN IMMEDIATE`` / a row lock), rows read by name, scripts, and error classes. This module covers those
in ~300 lines. SQLAlchemy Core would cover the placeholders, ids and errors, but not the lock, not the JSON
membership tests, not the SQLite journal's salvage of a damaged file (raw sqlite3 either way), and it is a large
dependency for a notebook extension. So: SQL is written once, in the dialect both engines share, with ``?``
placeholders; the few statements that cannot be shared branch on ``dialect``.

The money promise (one writer at a time: caps are checked in the transaction that reserves) holds the same way on
both: ``write()`` takes the database's write lock before the first statement, so a check and the write it guards
see and change the same state. SQLite: ``BEGIN IMMEDIATE``. PostgreSQL: ``SELECT ... FOR UPDATE`` on one row of
``kx_locks`` (one row per lock name: ``journal``, or the proxy's), READ COMMITTED: every statement after the lock
sees everything the previous holder committed. No serialization failures, no retries, caps exact.

Errors become one line of the caller's error class (``JournalError``), the URL's password never in it; a
server that is down or restarted is named as such, and the next call reconnects (a broken connection is dropped;
one found broken before a transaction began is replaced and the call goes on). Unique-key violations are
``Conflict`` on both engines.
"""

from __future__ import annotations

import contextlib
import functools
import re
import sqlite3
import threading
import time
import urllib.parse
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import JournalError

if TYPE_CHECKING:
    import psycopg

Params = Sequence[Any]
LOCKS = "kx_locks"
SCHEMA = "kx_schema"
CONNECT_TIMEOUT = 10
"""Seconds to wait for a PostgreSQL server to answer a connection."""


class Conflict(Exception):
    """A unique key already holds the row being inserted (both engines)."""


def is_url(target: str | Path | None) -> bool:
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def safe_url(url: str) -> str:
    """The URL with its password (and any ``password=`` parameter) replaced by ``***``: for every output."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        who, _, where = netloc.rpartition("@")
        if ":" in who:
            who = who.split(":", 1)[0] + ":***"
        netloc = f"{who}@{where}"
    query = "&".join(
        f"{k}=***" if k.lower() == "password" else f"{k}={v}"
        for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    )
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _secrets(url: str) -> list[str]:
    parts = urllib.parse.urlsplit(url)
    found = [parts.password] if parts.password else []
    found += [v for k, v in urllib.parse.parse_qsl(parts.query) if k.lower() == "password" and v]
    return [s for s in found + [urllib.parse.quote(s) for s in found] if s]


def scrub(text: str, url: str) -> str:
    """``text`` without the URL's password (as typed or URL-encoded)."""
    for secret in _secrets(url):
        text = text.replace(secret, "***")
    return text


class Row:
    """One row: by position (``row[0]``) or by column name (``row["id"]``), like ``sqlite3.Row``."""

    __slots__ = ("_index", "_values")

    def __init__(self, values: Sequence[Any], index: dict[str, int]) -> None:
        self._values, self._index = tuple(values), index

    def __getitem__(self, key: int | str) -> Any:
        return self._values[self._index[key] if isinstance(key, str) else key]

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def keys(self) -> list[str]:
        return list(self._index)

    def __repr__(self) -> str:
        return f"Row({dict(zip(self._index, self._values, strict=False))})"


class Tx:
    """A write transaction, holding the database's write lock until it ends (commit, or rollback on an error)."""

    def __init__(self, database: Database, execute: Callable[[str, Params], Any]) -> None:
        self.database, self.dialect, self._execute = database, database.dialect, execute

    def execute(self, sql: str, params: Params = ()) -> Any:
        """Run one statement (``?`` placeholders); a cursor: ``fetchone()``, ``fetchall()``, ``rowcount``."""
        return self._execute(sql, params)

    def insert(self, sql: str, params: Params = ()) -> int:
        """Run an INSERT into a table whose key is ``id``; the new row's id."""
        if self.dialect == "postgresql":
            return int(self._execute(sql + " RETURNING id", params).fetchone()[0])
        return int(self._execute(sql, params).lastrowid or 0)

    def script(self, sql: str) -> None:
        """Several statements separated by ``;`` (none inside a literal), inside this transaction. Written for
        SQLite; on PostgreSQL its column types are translated (``ddl``)."""
        if self.dialect == "postgresql":
            sql = ddl(sql)
        for statement in sql.split(";"):
            if statement.strip():
                self._execute(statement, ())


class Database(ABC):
    """A database shared by threads (a connection each) and processes; ``where`` names it without secrets."""

    dialect: ClassVar[str]
    where: str

    def __init__(self, *, error: Callable[[str], Exception] = JournalError, what: str = "the journal") -> None:
        self._error, self._what = error, what
        self._local = threading.local()

    @abstractmethod
    def read(self, sql: str, params: Params = ()) -> list[Any]:
        """Every row of one statement run outside any write transaction (autocommit: no lock; [] when it returns no
        rows, as an UPDATE)."""

    def one(self, sql: str, params: Params = ()) -> Any:
        """The first row, or None."""
        rows = self.read(sql, params)
        return rows[0] if rows else None

    @abstractmethod
    def write(self, lock: str = "journal") -> Any:
        """A context manager: a ``Tx`` holding the write lock (one writer at a time across every process)."""

    @abstractmethod
    def close(self) -> None:
        """Close this thread's connection (the next call opens a new one)."""

    def migrate(self, name: str, migrations: Sequence[str]) -> int:
        """Bring schema ``name`` to ``len(migrations)`` (each a script, applied once, in order, under the lock);
        returns the version found. A newer version than this code knows is an error naming it."""
        with self.write() as w:
            found = self._version(w, name)
            if found > len(migrations):
                raise self._error(
                    f"{self._what} at {self.where} has schema version {found}, newer than this kontext_nb "
                    f"understands ({len(migrations)}): upgrade kontext_nb"
                )
            for script in migrations[found:]:
                w.script(script)
            if found < len(migrations):
                self._set_version(w, name, len(migrations))
            return found

    @abstractmethod
    def _version(self, w: Tx, name: str) -> int: ...

    @abstractmethod
    def _set_version(self, w: Tx, name: str, version: int) -> None: ...


def use_wal(conn: sqlite3.Connection, wait: float = 30.0) -> None:
    """Switch a SQLite file to WAL, waiting for other processes as the busy timeout would.

    SQLite answers ``PRAGMA journal_mode = WAL`` with "database is locked" at once, without calling the busy
    handler, while another connection is switching the same new file: two kernels opening a fresh runs folder
    together made one of them fail."""
    deadline = time.monotonic() + wait
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class SqliteDatabase(Database):
    """A SQLite file in WAL mode: one writer at a time by ``BEGIN IMMEDIATE``, a 30 s busy timeout."""

    dialect = "sqlite"

    def __init__(self, path: str | Path, **kw: Any) -> None:
        super().__init__(**kw)
        self.path = Path(path)
        self.where = str(self.path)

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
                conn.row_factory = sqlite3.Row
                conn.execute("PRAGMA busy_timeout = 30000")
                use_wal(conn)
                conn.execute("PRAGMA synchronous = NORMAL")
            except sqlite3.Error as exc:
                raise self._error(f"cannot use {self._what} {self.where}: {exc}") from None
            self._local.conn = conn
        return conn

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.IntegrityError as exc:
            raise Conflict(str(exc)) from None
        except sqlite3.Error as exc:
            raise self._error(f"cannot use {self._what} {self.where}: {exc}") from None

    def read(self, sql: str, params: Params = ()) -> list[Any]:
        with self._guard():
            return self._conn().execute(sql, params).fetchall()

    @contextlib.contextmanager
    def write(self, lock: str = "journal") -> Iterator[Tx]:
        db = self._conn()
        with self._guard():
            db.execute("BEGIN IMMEDIATE")
            try:
                yield Tx(self, lambda sql, params: db.execute(sql, params))
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _version(self, w: Tx, name: str) -> int:
        return int(w.execute("PRAGMA user_version").fetchone()[0])

    def _set_version(self, w: Tx, name: str, version: int) -> None:
        w.execute(f"PRAGMA user_version = {int(version)}")


_TYPES = (
    (re.compile(r"\bINTEGER PRIMARY KEY( AUTOINCREMENT)?"), "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
    (re.compile(r"\bINTEGER\b"), "BIGINT"),  # SQLite's integers have 64 bits (seeds, ids)
    (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),  # PostgreSQL's REAL has 24 bits: not for money
)


def ddl(sql: str) -> str:
    """A schema script written for SQLite, in PostgreSQL's types: ``INTEGER PRIMARY KEY`` an identity column,
    ``INTEGER`` 64 bits, ``REAL`` double precision (upper-case type names only: column names stay)."""
    for pattern, replacement in _TYPES:
        sql = pattern.sub(replacement, sql)
    return sql


@functools.lru_cache(maxsize=512)
def to_pyformat(sql: str) -> str:
    """``?`` placeholders as psycopg's ``%s`` (and a literal ``%`` as ``%%``), outside quoted text."""
    out: list[str] = []
    quote: str | None = None
    for char in sql:
        if quote is not None:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "?":
            out.append("%s")
            continue
        if char == "%":
            out.append("%%")
            continue
        out.append(char)
    return "".join(out)


class _Held:
    """A thread's connection, closed when the thread ends (its thread-local value is dropped) if not before."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def close(self) -> None:
        with contextlib.suppress(Exception):  # a connection the server already dropped
            self.conn.close()

    def __del__(self) -> None:
        self.close()


def _row_factory(cursor: Any) -> Callable[[Sequence[Any]], Row]:
    index = {column.name: i for i, column in enumerate(cursor.description or ())}
    return lambda values: Row(values, index)


class PostgresDatabase(Database):
    """A PostgreSQL database (psycopg 3, the ``team`` extra): autocommit reads; writes in a transaction that first
    locks its row of ``kx_locks`` (``SELECT ... FOR UPDATE``): one writer at a time, as SQLite's BEGIN IMMEDIATE."""

    dialect = "postgresql"

    def __init__(self, url: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.url = url
        self.where = safe_url(url)
        try:
            import psycopg
        except ImportError:
            raise self._error(f"{self._what} at {self.where} needs psycopg 3: pip install 'kontext_nb[team]'") from None
        self._pg = psycopg
        self._ready: set[str] = set()

    # -- connections -------------------------------------------------------------------------------
    def _conn(self) -> psycopg.Connection[Any]:
        held: _Held | None = getattr(self._local, "held", None)
        if held is not None and (held.conn.closed or held.conn.broken):
            self.close()
            held = None
        if held is None:
            try:
                conn = self._pg.connect(
                    self.url, autocommit=True, row_factory=_row_factory, connect_timeout=CONNECT_TIMEOUT
                )
            except self._pg.Error as exc:
                raise self._mapped(exc) from None
            held = self._local.held = _Held(conn)
        return held.conn

    def close(self) -> None:
        held: _Held | None = getattr(self._local, "held", None)
        self._local.held = None
        if held is not None:
            held.close()

    def _mapped(self, exc: Exception, *, committing: bool = False) -> Exception:
        """One line of the caller's error class (or ``Conflict``), without the password."""
        pg = self._pg
        text = scrub(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, self.url)
        if isinstance(exc, pg.errors.UniqueViolation):
            return Conflict(text)
        if isinstance(exc, pg.OperationalError | pg.InterfaceError) and committing:
            return self._error(
                f"cannot reach {self._what} at {self.where} ({text}): the database server went away while this "
                "call's change was committed, so it may or may not be kept; the next call reconnects"
            )
        if isinstance(exc, pg.OperationalError | pg.InterfaceError):
            return self._error(
                f"cannot reach {self._what} at {self.where} ({text}): the database server is down, restarting or "
                "unreachable; nothing was written by this call, and the next one reconnects"
            )
        return self._error(f"{self._what} at {self.where} refused a statement: {text}")

    def _run(self, conn: psycopg.Connection[Any], sql: str, params: Params) -> Any:
        return conn.execute(to_pyformat(sql), tuple(params))

    # -- the interface ----------------------------------------------------------------------------
    def read(self, sql: str, params: Params = ()) -> list[Any]:
        for attempt in (0, 1):
            conn = self._conn()
            try:
                cursor = self._run(conn, sql, params)
                return list(cursor.fetchall()) if cursor.description is not None else []
            except (self._pg.OperationalError, self._pg.InterfaceError) as exc:
                if attempt == 0 and conn.broken:  # the server restarted since this connection was opened
                    self.close()
                    continue
                self.close()
                raise self._mapped(exc) from None
            except self._pg.Error as exc:
                raise self._mapped(exc) from None
        raise AssertionError("not reached")

    @contextlib.contextmanager
    def write(self, lock: str = "journal") -> Iterator[Tx]:
        conn = self._begin(lock)
        try:
            yield Tx(self, lambda sql, params: self._run(conn, sql, params))
        except BaseException as exc:
            self._end(conn, "ROLLBACK")
            if isinstance(exc, self._pg.Error):
                if conn.broken:
                    self.close()
                raise self._mapped(exc) from None
            raise
        self._end(conn, "COMMIT", raising=True)

    def _begin(self, lock: str) -> psycopg.Connection[Any]:
        if lock not in self._ready:
            self._ensure_lock(lock)
        for attempt in (0, 1):
            conn = self._conn()
            try:
                conn.execute("BEGIN")
                conn.execute(f"SELECT name FROM {LOCKS} WHERE name = %s FOR UPDATE", (lock,))
                return conn
            except self._pg.Error as exc:
                broken = conn.broken
                self._end(conn, "ROLLBACK")
                if attempt == 0 and broken:  # nothing was done yet: reconnect and begin again
                    self.close()
                    continue
                raise self._mapped(exc) from None
        raise AssertionError("not reached")

    def _end(self, conn: psycopg.Connection[Any], statement: str, *, raising: bool = False) -> None:
        try:
            conn.execute(statement)
        except self._pg.Error as exc:
            self.close()
            if raising:
                raise self._mapped(exc, committing=True) from None

    def _ensure_lock(self, lock: str) -> None:
        """The lock table and this lock's row (made once; an advisory lock keeps two first kernels apart)."""
        conn = self._conn()
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtext('kontext_nb schema'))")
                conn.execute(f"CREATE TABLE IF NOT EXISTS {LOCKS} (name TEXT PRIMARY KEY)")
                conn.execute(f"INSERT INTO {LOCKS} (name) VALUES (%s) ON CONFLICT DO NOTHING", (lock,))
                conn.execute(f"CREATE TABLE IF NOT EXISTS {SCHEMA} (name TEXT PRIMARY KEY, version INTEGER NOT NULL)")
        except self._pg.Error as exc:
            if conn.broken:
                self.close()
            raise self._mapped(exc) from None
        self._ready.add(lock)

    def _version(self, w: Tx, name: str) -> int:
        row = w.execute(f"SELECT version FROM {SCHEMA} WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def _set_version(self, w: Tx, name: str, version: int) -> None:
        w.execute(
            f"INSERT INTO {SCHEMA} (name, version) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET version = ?",
            (name, version, version),
        )


def open_database(target: str | Path, **kw: Any) -> Database:
    """A ``postgresql://`` URL, or a SQLite file's path."""
    if is_url(target):
        return PostgresDatabase(str(target), **kw)
    if isinstance(target, str) and "://" in target:
        scheme = target.split("://", 1)[0]
        raise (kw.get("error") or JournalError)(
            f"journal_url must be postgresql://user@host/database (or empty for SQLite in the runs folder), not a "
            f"{scheme}:// URL"
        )
    return SqliteDatabase(target, **kw)
