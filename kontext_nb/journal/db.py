"""The run journal: every job, its seed, settings, outcome and files, in SQLite (the runs folder's
journal.sqlite3) or PostgreSQL (``journal_url``: shared by every host; journal/database.py is the interface).

Users pay per image and come back days later, so a job's row is written *before* it is
submitted, its request id the moment fal accepts it, and its outcome when it ends. WAL
mode and a busy timeout let several kernels share one runs folder safely; the schema is
versioned (``PRAGMA user_version``) and migrated forward on open.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..endpoints import OfEndpoint
from ..errors import JournalError
from ..keys import redact
from . import heartbeat, ledger, salvage
from .database import PostgresDatabase, Tx, open_database, use_wal
from .folder import inside
from .schema import MIGRATIONS, PG_MIGRATIONS, SCHEMA_VERSION

log = logging.getLogger(__name__)

HOME_ENV = "KONTEXT_HOME"
DEFAULT_FOLDER = "kontext-runs"
DB_NAME = "journal.sqlite3"
FINAL = ("done", "failed", "cancelled")

SQLITE_MAX = 2**63 - 1  # SQLite's largest integer


@dataclass(frozen=True)
class JobRecord(OfEndpoint):
    """One job as the journal remembers it."""

    id: int
    created: float
    status: str
    endpoint: str
    prompt: str
    arguments: dict[str, Any]
    seed: int | None
    request_id: str | None
    parent_id: int | None
    tags: tuple[str, ...]
    source: str | None
    session: str | None
    input_hashes: tuple[str, ...]
    cache_key: str | None
    cached: bool
    cost: float
    num_images: int
    timings: dict[str, Any] | None
    nsfw: tuple[bool, ...]
    output_prompt: str | None
    files: tuple[str, ...]
    error: str | None
    error_type: str | None
    folder: Path = field(repr=False, compare=False, default=Path("."))
    rating: int | None = None
    """Stars from 1 to 5 given with ``kx.rate``; None when not rated."""
    scores: dict[str, float] = field(default_factory=dict)
    """Change scores kept by ``kx.changes`` (changed_fraction, ssim_outside, phash_distance, plug-ins)."""
    reserved: float = 0.0
    """Dollars held for this job while fal may still bill it (its price from submit until it ends)."""
    parents: tuple[int, ...] = ()
    """Every job whose image this one edits, in order (``parent_id`` is the first)."""
    billable_units: float | None = None
    """What fal said it billed (``x-fal-billable-units``: images, or megapixels), None when it did not say."""
    unsent: bool = field(default=False, compare=False)
    """True while the job is provably not sent yet (its owner has not begun the submit)."""
    host: str | None = field(default=None, compare=False)
    """The host that wrote its files (into ``folder``); None for rows from before kontext_nb kept it."""

    @property
    def paths(self) -> list[Path]:
        """The image files, as absolute paths."""
        return [inside(self.folder, f) for f in self.files]

    @property
    def ref(self) -> str:
        return f"@{self.id}"


@dataclass(frozen=True)
class Vote:
    """One blind pairwise vote: ``winner_id`` beat ``loser_id`` (or they tied), said by ``voter`` at ``created``."""

    id: int
    created: float
    winner_id: int
    loser_id: int
    tie: bool
    voter: str
    session: str | None


def owner_alive(session: str | None) -> bool:
    """Whether the session that owns a row ('host:pid:id') is a live process on this machine."""
    try:
        host, pid, _ = (session or "").split(":", 2)
        if host != heartbeat.host_id():
            return False
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def default_folder() -> Path:
    """KONTEXT_HOME, else ./kontext-runs beside the notebook (the kernel's working directory)."""
    return Path(os.environ.get(HOME_ENV) or DEFAULT_FOLDER).expanduser().resolve()


class Journal:
    """The SQLite journal of one runs folder. Safe to share between threads and processes."""

    def __init__(self, folder: str | os.PathLike[str] | None = None, url: str | None = None) -> None:
        """``folder``: the runs folder (images; and the SQLite journal when no ``url``). ``url``: a
        ``postgresql://`` journal shared by every kernel on every host that names it."""
        self.folder = Path(folder).expanduser().resolve() if folder is not None else default_folder()
        self.path = self.folder / DB_NAME
        self.url = url or None
        self._pg: PostgresDatabase | None = None
        if self.url is not None:
            database = open_database(self.url)
            assert isinstance(database, PostgresDatabase)
            self._pg = database
        self.dialect = "postgresql" if self._pg is not None else "sqlite"
        self.where = self._pg.where if self._pg is not None else str(self.path)
        """The journal's file, or its URL without the password: for messages."""
        self._local = threading.local()
        self._opened = False
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JournalError(f"cannot create the runs folder {self.folder}: {exc.strerror or exc}") from None
        if self._pg is not None:
            self._pg.migrate("journal", PG_MIGRATIONS)
            self._opened = True
        else:
            self._open_checked()

    def __repr__(self) -> str:
        return f"<Journal {self.where}>"

    # -- owners ---------------------------------------------------------------------------
    def alive(self, session: str | None) -> bool:
        """Whether the kernel ``session`` may still collect its jobs: its heartbeat has not lapsed (PostgreSQL:
        hosts share the journal), or it is a live process on this host (SQLite: one host)."""
        if self._pg is not None:
            return heartbeat.alive(self._pg, session)
        return owner_alive(session)

    def keep_alive(self, session: str) -> None:
        """Beat for ``session`` while this process runs (PostgreSQL only: SQLite asks the process table)."""
        if self._pg is not None and self.url is not None:
            heartbeat.keep(self._pg, self.url, session)

    def let_go(self, session: str) -> None:
        """``session`` closes: its heartbeat stops and its row goes (its unfinished jobs are left behind at once)."""
        if self._pg is not None and self.url is not None:
            heartbeat.stop(self._pg, self.url, session)

    # -- connection -----------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=True)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout = 30000")
            conn.execute("PRAGMA synchronous = NORMAL")
            # SQLite's LIKE folds ASCII only; prompts are in every language
            conn.create_function("kx_contains", 2, _contains, deterministic=True)
        except BaseException:
            conn.close()
            raise
        return conn

    @property
    def _db(self) -> Any:
        """A reader (PostgreSQL), or this thread's connection to the journal's file as it is now (see salvage.py: a
        file moved aside by a salvage, in this kernel or another, is left and what it holds that the new one lacks
        carried over)."""
        if self._pg is not None:
            return _Reader(self._pg)
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and not conn.in_transaction and salvage.identity(self.path) != self._local.identity:
            return self._follow_move(conn)
        return conn if conn is not None else self._open_connection()

    def _open_connection(self) -> sqlite3.Connection:
        salvaging = getattr(self._local, "salvaging", False)  # this thread holds the lock exclusively
        with nullcontext() if salvaging else salvage.locked(self.path, exclusive=False):
            try:
                conn = self._local.conn = self._connect()
            finally:  # a file SQLite refuses is still the one this thread found damaged (see _open_checked)
                self._local.identity = salvage.identity(self.path)
        return conn

    def _follow_move(self, old: sqlite3.Connection) -> sqlite3.Connection:
        self._local.conn = None
        try:
            self._migrate()  # a journal replaced by hand may be a new empty file
            with self._write() as w:
                carried = salvage.carry_over(old, w)
        finally:
            old.close()  # SQLite sees the file was moved: it neither checkpoints nor deletes the new journal's files
        if carried:
            log.warning("the journal %s was moved aside: %d rows written there were carried over", self.path, carried)
        conn: sqlite3.Connection = self._db
        return conn

    def _open_checked(self) -> None:
        """Open and migrate; a file that is not a journal is moved aside, never overwritten."""
        try:
            self._migrate()
        except sqlite3.OperationalError as exc:  # locked, read-only, cannot open: nothing is moved
            self.close()
            raise JournalError(f"cannot use the journal {self.path}: {exc}") from None
        except sqlite3.DatabaseError as exc:
            found = getattr(self._local, "identity", None)
            self.close()
            with salvage.locked(self.path, exclusive=True):
                if salvage.identity(self.path) != found or not salvage.damaged(self.path):
                    raise JournalError(
                        f"cannot use the journal {self.path} ({exc}): it was replaced meanwhile; try again"
                    ) from None
                aside = salvage.move_aside(self.path)
            raise JournalError(
                f"the journal {self.path} is not readable ({exc}); it was moved aside to {aside.name} "
                "and a new journal starts on the next call"
            ) from None
        self._opened = True

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """SQLite errors as one JournalError line; a journal found damaged in use is salvaged and moved aside."""
        try:
            yield
        except sqlite3.OperationalError as exc:  # full disk, locked, read-only: nothing is moved
            if not self._opened:
                raise
            raise JournalError(f"cannot use the journal {self.path}: {exc}") from None
        except sqlite3.DatabaseError as exc:
            if not self._opened:
                raise
            raise self._salvaged(exc) from None

    def _salvaged(self, damage: sqlite3.DatabaseError) -> JournalError:
        """Copy every readable row of every table into a fresh journal, the damaged file moved aside (never
        overwritten): once, however many kernels meet the damage, and never a journal that is sound (salvage.py)."""
        found = getattr(self._local, "identity", None)
        self.close()
        with salvage.locked(self.path, exclusive=True):
            if salvage.identity(self.path) != found:
                return JournalError(
                    f"the journal {self.path} was damaged ({damage}) and has been salvaged into a new file meanwhile "
                    "(by another kernel on this runs folder, or another thread); try again"
                )
            if not salvage.damaged(self.path):
                return JournalError(
                    f"the journal {self.path} could not be read ({damage}); nothing was moved; try again"
                )
            self._local.salvaging = True
            try:
                with salvage.holding(self.path) as held:  # no kernel commits to the damaged file from here on
                    tables = salvage.readable_tables(held)
                    aside = salvage.move_aside(self.path)
                self._migrate()
                with self._write() as w:
                    salvage.copy_into(w, tables, replace_older=False)
                    salvage.gap_ids(w, tables)
                    salvage.past_ledger(w)
            finally:
                self._local.salvaging = False
        kept = len(tables.get("jobs", ([], []))[1])
        return JournalError(
            f"the journal {self.path} is damaged ({damage}): {kept} readable job{'s' if kept != 1 else ''} were "
            f"copied into a new journal and the damaged file was moved aside to {aside.name}; try again"
        )

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        if self._pg is not None:
            return self._pg.read(sql, params)
        with self._guard():
            rows: list[Any] = self._db.execute(sql, params).fetchall()
            return rows

    def _migrate(self) -> None:
        db = self._db
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise JournalError(
                f"the journal {self.path} has schema version {version}, newer than this kontext_nb "
                f"understands ({SCHEMA_VERSION}): upgrade kontext_nb"
            )
        use_wal(db)  # only once the file is known to be ours (it persists)
        if version == SCHEMA_VERSION:
            return
        with self._write() as w:
            version = w.execute("PRAGMA user_version").fetchone()[0]  # another process may have migrated
            for number in range(version, SCHEMA_VERSION):
                w.script(MIGRATIONS[number])
            w.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextmanager
    def _write(self) -> Iterator[_Tx | Tx]:
        if self._pg is not None:
            with self._pg.write() as tx:
                yield tx
            return
        with self._guard():
            while True:
                db = self._db
                db.execute("BEGIN IMMEDIATE")
                if salvage.identity(self.path) == self._local.identity:
                    break
                db.execute("ROLLBACK")  # the file was moved aside while this waited for its lock: follow it
            try:
                yield _Tx(db)
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def close(self) -> None:
        """Close this thread's connection (the next call opens another)."""
        if self._pg is not None:
            self._pg.close()
            return
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- writing --------------------------------------------------------------------------
    def create(
        self,
        *,
        endpoint: str,
        arguments: dict[str, Any],
        input_hashes: Sequence[str] = (),
        parent_id: int | None = None,
        tags: Iterable[str] = (),
        source: str | None = None,
        session: str | None = None,
        cache_key: str | None = None,
        reserved: float = 0.0,
        parents: Sequence[int] = (),
    ) -> int:
        """Write a job's row before it is submitted; returns its journal id."""
        row = NewJob(
            endpoint, arguments, tuple(input_hashes), parent_id, tuple(tags), source, session, cache_key, tuple(parents)
        )
        written = self.create_all([row], reserved=[reserved])[0]
        assert isinstance(written, int)  # nothing is joined without join=True
        return written

    def create_all(
        self,
        rows: Sequence[NewJob],
        *,
        reserved: Sequence[float],
        guard: Callable[[Holdings, Sequence[int]], None] | None = None,
        join: bool = False,
    ) -> list[int | JobRecord]:
        """Write the rows of jobs about to be sent, each holding its price, in one write transaction.

        With ``join``, a row whose cache key matches a job in flight (here or in any kernel on the runs folder, or
        earlier in ``rows``) is not written: its place in the answer holds that job's record, to follow instead of
        sending again. The answer holds the new journal id of every row written.

        ``guard`` sees what is spent and held *inside* that transaction (``BEGIN IMMEDIATE``: one writer at a
        time across every process on the runs folder) and the positions of the rows to be written, and may raise
        to refuse them all: so kernels sharing a runs folder can never together reserve past a cap or send one
        request twice, and a refused batch writes nothing."""
        now = time.time()
        with self._write() as w:
            answers: list[int | JobRecord | None] = [None] * len(rows)
            first_of: dict[str, int] = {}  # cache key -> position of the row in this batch that will be written
            for at, row in enumerate(rows):
                key = row.cache_key if join else None
                flying = self._in_flight(w, key, row.session) if key else None
                if flying is not None:
                    answers[at] = flying
                elif key and key in first_of:
                    answers[at] = -1 - first_of[key]  # filled in below, once that row has its id
                elif key:
                    first_of[key] = at
            written = [at for at, answer in enumerate(answers) if answer is None]
            if guard is not None and written:
                guard(Holdings(w), written)
            for at in written:
                job_id = answers[at] = self._insert(w, rows[at], reserved[at], now)
                if reserved[at] > 0:
                    ledger.reserve(w, job_id, reserved[at], kernel=rows[at].session, endpoint=rows[at].endpoint)
            final: list[int | JobRecord] = []
            for answer in answers:
                if isinstance(answer, int) and answer < 0:  # the batch's earlier identical row
                    first = answers[-1 - answer]
                    assert isinstance(first, int)
                    answer = self._record(w.execute("SELECT * FROM jobs WHERE id = ?", (first,)).fetchone())
                assert answer is not None
                final.append(answer)
            return final

    def _in_flight(self, w: _Tx | Tx, cache_key: str, session: str | None) -> JobRecord | None:
        """The job with this cache key that fal may still finish and someone may still collect: one with a request
        id, or one still being sent by a live kernel (a row with no request id whose kernel is gone was perhaps
        never accepted: never joined)."""
        rows = w.execute(
            "SELECT * FROM jobs WHERE cache_key = ? AND status IN ('pending', 'submitted') AND cached = 0 ORDER BY id",
            (cache_key,),
        ).fetchall()
        for row in rows:
            record = self._record(row)
            if record.request_id is not None or (
                record.error is None and (record.session == session or self.alive(record.session))
            ):
                return record
        return None

    def _insert(self, w: _Tx | Tx, row: NewJob, price: float, now: float) -> int:
        prompt = str(row.arguments.get("prompt", ""))
        return self._insert_row(
            w,
            created=now,
            updated=now,
            status="pending",
            endpoint=row.endpoint,
            prompt=prompt,
            arguments=_dump(row.arguments),
            seed=row.arguments.get("seed"),
            parent_id=row.every_parent[0] if row.every_parent else None,
            parents=_dump(row.every_parent),
            tags=_dump(sorted(set(row.tags))),
            source=row.source,
            session=row.session,
            input_hashes=_dump(list(row.input_hashes)),
            cache_key=row.cache_key,
            reserved=price,
            unsent=1,
        )

    def _insert_row(self, w: _Tx | Tx, **columns: Any) -> int:
        """A new jobs row (with the host and runs folder that write its files); its id."""
        columns.setdefault("host", heartbeat.host_id())
        columns.setdefault("folder", str(self.folder))
        if self.dialect == "postgresql":  # what search matches (PostgreSQL's lower() depends on the server's locale)
            columns["prompt_fold"] = str(columns.get("prompt", "")).casefold()
        names = ", ".join(columns)
        return w.insert(f"INSERT INTO jobs ({names}) VALUES ({', '.join('?' * len(columns))})", tuple(columns.values()))

    def _json_has(self, column: str) -> str:
        """The JSON list in ``column`` holds the next parameter (given through ``_json_value``)."""
        if self.dialect == "postgresql":
            return f"jobs.{column}::jsonb @> ?::jsonb"
        return f"EXISTS (SELECT 1 FROM json_each(jobs.{column}) WHERE value = ?)"

    def _json_value(self, value: int | str) -> int | str:
        return json.dumps([value]) if self.dialect == "postgresql" else value

    def _is(self, column: str) -> str:
        """``column`` equals the next parameter, NULL equal to NULL."""
        return f"{column} IS NOT DISTINCT FROM ?" if self.dialect == "postgresql" else f"{column} IS ?"

    def claim(self, record: JobRecord, session: str) -> JobRecord | None:
        """Take over collecting a job nobody collects (its kernel is gone, or kept it for later): it becomes
        ``session``'s, its error cleared. None when the row changed since ``record`` was read (someone else took
        it, or it ended): one collector, however many kernels try at once."""
        with self._write() as w:
            cur = w.execute(
                "UPDATE jobs SET session = ?, error = NULL, updated = ? WHERE id = ? AND "
                + self._is("session")
                + " AND "
                + self._is("error")
                + " AND status IN ('pending', 'submitted') AND request_id IS NOT NULL",
                (session, time.time(), record.id, record.session, record.error),
            )
            if cur.rowcount != 1:
                return None
            return self._record(w.execute("SELECT * FROM jobs WHERE id = ?", (record.id,)).fetchone())

    def sending(self, job_id: int, session: str) -> bool:
        """The owner is about to send the job: it is no longer provably unsent. False (and nothing changed) when
        another kernel has claimed the row (``claim_unsent``): then this kernel must not send it."""
        with self._write() as w:
            row = w.execute("SELECT session FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is not None and row["session"] != session:
                return False
            w.execute("UPDATE jobs SET unsent = 0, updated = ? WHERE id = ?", (time.time(), job_id))
            return True

    def claim_unsent(self, record: JobRecord, session: str) -> JobRecord | None:
        """Take over a job whose kernel is gone before it began sending it (nothing reached fal): it becomes
        ``session``'s. None when the row changed since ``record`` was read, or it may have been sent: one kernel
        takes it, and never one its owner has begun to send (``sending`` checks the owner in the same journal)."""
        with self._write() as w:
            cur = w.execute(
                "UPDATE jobs SET session = ?, updated = ? WHERE id = ? AND "
                + self._is("session")
                + " AND status = 'pending'"
                " AND request_id IS NULL AND unsent = 1",
                (session, time.time(), record.id, record.session),
            )
            if cur.rowcount != 1:
                return None
            return self._record(w.execute("SELECT * FROM jobs WHERE id = ?", (record.id,)).fetchone())

    def submitted(self, job_id: int, request_id: str) -> None:
        self._update(job_id, status="submitted", request_id=request_id)

    def finished(
        self,
        job_id: int,
        *,
        status: str,
        seed: int | None = None,
        cost: float = 0.0,
        num_images: int = 0,
        timings: dict[str, Any] | None = None,
        nsfw: Sequence[bool] = (),
        output_prompt: str | None = None,
        files: Sequence[str] = (),
        error: str | None = None,
        error_type: str | None = None,
        request_id: str | None = None,
        billable_units: float | None = None,
    ) -> float | None:
        """Record how a job ended (done with its files and cost, failed, or cancelled), and settle its money in the
        ledger (also when its row was deleted meanwhile: its money stays). Returns by how much its cost is above its
        reservation (a defect of the estimate, kept in the ledger as an overrun), else None."""
        changes: dict[str, Any] = {
            "status": status,
            "cost": cost,
            "num_images": num_images,
            "timings": _dump(timings) if timings is not None else None,
            "nsfw": _dump(list(nsfw)),
            "output_prompt": output_prompt,
            "files": _dump(list(files)),
            "error": redact(error) if error else error,  # the last line of defence: no column ever holds the key
            "error_type": error_type,
        }
        if seed is not None:
            changes["seed"] = seed
        if request_id is not None:
            changes["request_id"] = request_id
        if billable_units is not None:
            changes["billable_units"] = billable_units
        if status in FINAL:  # the job's price is no longer held: it became its real cost, or nothing
            changes["reserved"] = 0.0
        if files:  # whoever collected it wrote them, into its runs folder
            changes["host"], changes["folder"] = heartbeat.host_id(), str(self.folder)
        changes["updated"] = time.time()
        columns = ", ".join(f"{k} = ?" for k in changes)
        with self._write() as w:
            w.execute(f"UPDATE jobs SET {columns} WHERE id = ?", (*changes.values(), job_id))
            if status == "done":
                row = w.execute("SELECT session FROM jobs WHERE id = ?", (job_id,)).fetchone()
                return ledger.settle(w, job_id, cost, kernel=row["session"] if row else None)
            if status in FINAL:
                ledger.release(w, job_id)
        return None

    def unconfirmed(self, job_id: int, *, error: str, request_id: str | None = None) -> None:
        """A submit fal may have received but never confirmed: its price counts as spent (never undercount)."""
        now = time.time()
        with self._write() as w:
            w.execute(
                "UPDATE jobs SET status = 'unconfirmed', cost = reserved, reserved = 0, error = ?,"
                " request_id = COALESCE(?, request_id), updated = ? WHERE id = ?",
                (redact(error), request_id, now, job_id),
            )
            ledger.unconfirmed(w, job_id)

    def resolve_unconfirmed(self, job_id: int, request_id: str) -> bool:
        """fal's request history shows an unconfirmed submit arrived as ``request_id``: the job is 'submitted' again
        (collectable, its money held until it settles). False when the row is no longer unconfirmed."""
        with self._write() as w:
            cur = w.execute(
                "UPDATE jobs SET status = 'submitted', request_id = ?, reserved = cost, cost = 0, error = NULL,"
                " updated = ? WHERE id = ? AND status = 'unconfirmed'",
                (request_id, time.time(), job_id),
            )
            return cur.rowcount == 1

    def not_sent(self, job_id: int, *, error: str) -> bool:
        """fal's request history shows an unconfirmed submit never arrived: it failed, and its money is released.
        False when the row is no longer unconfirmed."""
        with self._write() as w:
            cur = w.execute(
                "UPDATE jobs SET status = 'failed', error_type = 'not_sent', error = ?, cost = 0, reserved = 0,"
                " updated = ? WHERE id = ? AND status = 'unconfirmed'",
                (error, time.time(), job_id),
            )
            if cur.rowcount == 1:
                ledger.not_sent(w, job_id)
            return cur.rowcount == 1

    def record_cached(
        self, original: JobRecord, *, session: str | None, source: str | None, tags: Iterable[str]
    ) -> int:
        """A job answered from an earlier identical one: its own row, no request, no cost."""
        now = time.time()
        with self._write() as w:
            return self._insert_row(
                w,
                created=now,
                updated=now,
                status="done",
                endpoint=original.endpoint,
                prompt=original.prompt,
                arguments=_dump(original.arguments),
                seed=original.seed,
                request_id=original.request_id,
                parent_id=original.parent_id,
                parents=_dump(list(original.parents)),
                tags=_dump(sorted(set(tags))),
                source=source,
                session=session,
                input_hashes=_dump(list(original.input_hashes)),
                cache_key=original.cache_key,
                cached=1,
                cost=0,
                num_images=original.num_images,
                timings=_dump(original.timings),
                nsfw=_dump(list(original.nsfw)),
                output_prompt=original.output_prompt,
                files=_dump(list(original.files)),
                host=original.host,  # its files are the original's, where they were written
                folder=str(original.folder),
            )

    def _update(self, job_id: int, **changes: Any) -> None:
        changes["updated"] = time.time()
        columns = ", ".join(f"{k} = ?" for k in changes)
        with self._write() as w:
            w.execute(f"UPDATE jobs SET {columns} WHERE id = ?", (*changes.values(), job_id))

    def delete(self, job_id: int) -> None:
        """Forget a job's row (and votes); its ledger entries stay: the money it spent or holds is still counted."""
        with self._write() as w:
            w.execute("UPDATE jobs SET parent_id = NULL WHERE parent_id = ?", (job_id,))
            for row in w.execute(
                "SELECT id, parents FROM jobs WHERE " + self._json_has("parents"), (self._json_value(job_id),)
            ).fetchall():  # forget it as a parent (its children stay)
                kept = [p for p in json.loads(row["parents"]) if p != job_id]
                w.execute("UPDATE jobs SET parents = ? WHERE id = ?", (_dump(kept), row["id"]))
            w.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
            w.execute("DELETE FROM votes WHERE winner_id = ? OR loser_id = ?", (job_id, job_id))

    # -- judging --------------------------------------------------------------------------
    def set_rating(self, job_id: int, stars: int | None) -> None:
        """A job's stars (1-5), or None to clear them."""
        self.get(job_id)  # a clear error for a job that is not there
        self._update(job_id, rating=stars)

    def add_scores(self, job_id: int, scores: dict[str, float]) -> None:
        """Keep change scores beside a job (merged with those it has)."""
        with self._write() as w:  # read and write in one transaction: two kernels scoring at once keep both
            row = w.execute("SELECT scores FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise JournalError(f"no job @{job_id} in the journal {self.where}")
            current = json.loads(row["scores"]) if row["scores"] else {}
            w.execute(
                "UPDATE jobs SET scores = ?, updated = ? WHERE id = ?",
                (_dump({**current, **scores}), time.time(), job_id),
            )

    def add_vote(self, winner_id: int, loser_id: int, *, tie: bool, voter: str, session: str | None = None) -> int:
        """Record one pairwise vote; returns its id."""
        with self._write() as w:
            return w.insert(
                "INSERT INTO votes (created, winner_id, loser_id, tie, voter, session) VALUES (?, ?, ?, ?, ?, ?)",
                (time.time(), winner_id, loser_id, int(tie), voter, session),
            )

    def votes(self, job_ids: Iterable[int] | None = None) -> list[Vote]:
        """Every vote, oldest first; with ``job_ids`` only votes between two of those jobs."""
        rows = self._db.execute("SELECT * FROM votes ORDER BY id").fetchall()
        wanted = None if job_ids is None else set(job_ids)
        return [
            Vote(r["id"], r["created"], r["winner_id"], r["loser_id"], bool(r["tie"]), r["voter"], r["session"])
            for r in rows
            if wanted is None or (r["winner_id"] in wanted and r["loser_id"] in wanted)
        ]

    # -- reading --------------------------------------------------------------------------
    def get(self, job_id: int) -> JobRecord:
        row = None
        if 0 <= job_id <= SQLITE_MAX:  # beyond: no such row (and SQLite could not even take the number)
            row = next(iter(self._query("SELECT * FROM jobs WHERE id = ?", (job_id,))), None)
        if row is None:
            raise JournalError(f"no job @{job_id} in the journal {self.where}")
        return self._record(row)

    def nth_latest(self, n: int) -> JobRecord:
        """n=1 is the latest job, n=2 the one before, ..."""
        if n < 1:
            raise JournalError(f"there is no job @-{n}: count back from @-1 (the latest)")
        row = None
        if n <= SQLITE_MAX:
            row = next(iter(self._query("SELECT * FROM jobs ORDER BY id DESC LIMIT 1 OFFSET ?", (n - 1,))), None)
        if row is None:
            count = self.count()
            raise JournalError(
                f"there is no job @-{n}: the journal has {count} job{'s' if count != 1 else ''}"
                if n > 1
                else "there is no @last job: the journal is empty"
            )
        return self._record(row)

    def count(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM jobs")[0][0])

    def find_cached(self, cache_key: str) -> JobRecord | None:
        row = next(
            iter(
                self._query(
                    "SELECT * FROM jobs WHERE cache_key = ? AND status = 'done' AND files != '[]' ORDER BY id DESC"
                    " LIMIT 1",
                    (cache_key,),
                )
            ),
            None,
        )
        if row is None:
            return None
        record = self._record(row)
        return record if all(p.exists() for p in record.paths) else None

    def uncollected(self) -> list[JobRecord]:
        """Jobs that reached fal (or may have) and never ended here: what resume collects."""
        rows = self._query("SELECT * FROM jobs WHERE status IN ('pending', 'submitted') ORDER BY id")
        return [self._record(r) for r in rows]

    def children(self, job_id: int) -> list[JobRecord]:
        rows = self._query(
            "SELECT * FROM jobs WHERE parent_id = ? OR " + self._json_has("parents") + " ORDER BY id",
            (job_id, self._json_value(job_id)),
        )
        return [self._record(r) for r in rows]

    def lineage(self, job_id: int) -> list[JobRecord]:
        """The chain of edits from the original image to this job, original first."""
        chain: list[JobRecord] = []
        seen: set[int] = set()
        current: int | None = job_id
        while current is not None and current not in seen:
            seen.add(current)
            record = self.get(current)
            chain.append(record)
            current = record.parent_id
        return chain[::-1]

    def search(
        self,
        *,
        search: str | None = None,
        seed: int | None = None,
        endpoint: str | None = None,
        status: str | None = None,
        tag: str | None = None,
        since: float | None = None,
        session: str | None = None,
        limit: int | None = None,
        min_rating: int | None = None,
    ) -> list[JobRecord]:
        """Newest first. ``search`` matches every word in the prompt, case-insensitively."""
        if seed is not None and not 0 <= seed <= SQLITE_MAX:
            return []
        if limit is not None:
            limit = max(0, min(limit, SQLITE_MAX))
        where: list[str] = []
        params: list[str | int | float] = []
        for word in (search or "").split():
            where.append("strpos(prompt_fold, ?) > 0" if self.dialect == "postgresql" else "kx_contains(prompt, ?)")
            params.append(word.casefold())
        for column, value in (("seed", seed), ("endpoint", endpoint), ("status", status), ("session", session)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if tag is not None:
            where.append(self._json_has("tags"))
            params.append(self._json_value(tag))
        if since is not None:
            where.append("created >= ?")
            params.append(since)
        if min_rating is not None:
            where.append("rating >= ?")
            params.append(min_rating)
        sql = "SELECT * FROM jobs" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [self._record(r) for r in self._query(sql, params)]

    # -- money: the ledger (journal/ledger.py) ----------------------------------------------
    def spent(self, *, day: str | None = None, kernel: str | None = None) -> float:
        """Dollars spent (settled or unconfirmed) on ``day`` and/or by ``kernel``; all of them when not given."""
        return self.holdings().of(day=day, kernel=kernel)[0]

    def holdings(self) -> Holdings:
        """Money spent and held, read outside any transaction (for reports, not for reserving)."""
        return Holdings(_Tx(self._db, self._guard))

    def held(self, *, day: str | None = None, kernel: str | None = None) -> tuple[float, float]:
        """(spent, reserved): real costs so far, and prices held for jobs that may still be billed."""
        return self.holdings().of(day=day, kernel=kernel)

    def today(self) -> tuple[str, str]:
        """(the runs folder's day, YYYY-MM-DD, and the time zone it is counted in)."""
        h = self.holdings()
        return h.today(), h.zone()

    def agree_zone(self, wanted: str | None) -> tuple[str, str | None]:
        """Keep ``wanted`` as the folder's budget_timezone if it has none: (the zone in force, a notice if not ours).
        Nothing is written when nothing is wanted (a read-only runs folder can still be opened)."""
        if wanted is None:
            return self.holdings().zone(), None
        with self._write() as w:
            return ledger.agree_zone(w, wanted)

    def ledger_entries(self, job_id: int | None = None) -> list[ledger.Entry]:
        """The ledger's entries (of one job), oldest first."""
        return [ledger.entry(r) for r in self._query(*_ledger_sql(job_id))]

    def money(self, job_id: int) -> tuple[float, float]:
        """(spent, held) for one job, from the ledger (its row may be deleted: its money is not)."""
        return ledger.job_totals(_Tx(self._db, self._guard), job_id)

    def money_per_job(self, *, since: float) -> list[ledger.JobMoney]:
        """Each job's spent and held money reserved since ``since``, from the ledger (deleted jobs included)."""
        return ledger.per_job(_Tx(self._db, self._guard), since=since)

    def overruns(self) -> list[ledger.Entry]:
        """Settlements above their reservation not yet acknowledged: nothing is sent while there is one."""
        return self.holdings().overruns()

    def acknowledge(self, kernel: str | None) -> int:
        """The user has seen every overrun: sending may go on. Returns how many there were."""
        with self._write() as w:
            return ledger.acknowledge(w, kernel)

    def _record(self, row: sqlite3.Row) -> JobRecord:
        return JobRecord(
            id=row["id"],
            created=row["created"],
            status=row["status"],
            endpoint=row["endpoint"],
            prompt=row["prompt"],
            arguments=json.loads(row["arguments"]),
            seed=row["seed"],
            request_id=row["request_id"],
            parent_id=row["parent_id"],
            tags=tuple(json.loads(row["tags"])),
            source=row["source"],
            session=row["session"],
            input_hashes=tuple(json.loads(row["input_hashes"])),
            cache_key=row["cache_key"],
            cached=bool(row["cached"]),
            cost=row["cost"],
            num_images=row["num_images"],
            timings=json.loads(row["timings"]) if row["timings"] else None,
            nsfw=tuple(json.loads(row["nsfw"] or "[]")),
            output_prompt=row["output_prompt"],
            files=tuple(json.loads(row["files"])),
            error=row["error"],
            error_type=row["error_type"],
            folder=Path(row["folder"]) if self.dialect == "postgresql" and row["folder"] else self.folder,
            rating=row["rating"],
            scores=json.loads(row["scores"]) if row["scores"] else {},
            reserved=row["reserved"],
            parents=tuple(json.loads(row["parents"])),
            billable_units=row["billable_units"],
            unsent=bool(row["unsent"]),
            host=row["host"],
        )


@dataclass(frozen=True)
class NewJob:
    """A job's row as written before it is sent."""

    endpoint: str
    arguments: dict[str, Any]
    input_hashes: tuple[str, ...] = ()
    parent_id: int | None = None
    tags: tuple[str, ...] = ()
    source: str | None = None
    session: str | None = None
    cache_key: str | None = None
    parents: tuple[int, ...] = ()
    """Every source's job (a multi-reference edit); ``parent_id``, when given, comes first."""

    @property
    def every_parent(self) -> list[int]:
        given = [self.parent_id] if self.parent_id is not None else []
        return list(dict.fromkeys([*given, *self.parents]))


class Holdings:
    """Money spent and held, from the ledger, read through one connection (inside the write transaction when
    reserving: what the caps check is what no other kernel can change until the reservation is written)."""

    def __init__(self, tx: ledger.Executor) -> None:
        self._tx = tx

    def of(self, *, day: str | None = None, kernel: str | None = None) -> tuple[float, float]:
        """(spent, held) on the runs folder's ``day`` and/or by ``kernel`` (everything when neither is given)."""
        return ledger.totals(self._tx, day=day, kernel=kernel)

    def today(self) -> str:
        """The runs folder's day now (in its budget_timezone, UTC when none is kept)."""
        return ledger.today(self._tx)

    def zone(self) -> str:
        return ledger.zone(self._tx)

    def overruns(self) -> list[ledger.Entry]:
        return ledger.overruns(self._tx)


def left_behind(
    records: Iterable[JobRecord],
    *,
    session: str | None = None,
    active: Iterable[int] = (),
    alive: Callable[[str | None], bool] = owner_alive,
) -> list[JobRecord]:
    """The one rule for jobs to collect: unfinished rows whose owner is gone (another process that ended),
    or this session's own rows no longer in flight."""
    busy = set(active)
    return [
        r
        for r in records
        if r.id not in busy and ((session is not None and r.session == session) or not alive(r.session))
    ]


def unattended(
    record: JobRecord,
    *,
    session: str | None = None,
    active: Iterable[int] = (),
    alive: Callable[[str | None], bool] = owner_alive,
) -> bool:
    """Whether nobody collects a job fal may still finish: left behind (see ``left_behind``), or kept for later by
    a live kernel (a timeout or a failed download: its error says so). Whoever wants its images may ``claim`` it."""
    return (
        record.status in ("pending", "submitted")
        and record.request_id is not None
        and (record.error is not None or bool(left_behind([record], session=session, active=active, alive=alive)))
    )


class _Tx:
    """A write transaction's connection, with executescript that stays inside the transaction."""

    def __init__(self, db: sqlite3.Connection, guard: Callable[[], AbstractContextManager[None]] | None = None) -> None:
        self.db = db
        self._guard = guard or nullcontext

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        with self._guard():
            return self.db.execute(sql, params)

    def insert(self, sql: str, params: Sequence[Any] = ()) -> int:
        """An INSERT's new row id (as database.Tx)."""
        with self._guard():
            return int(self.db.execute(sql, params).lastrowid or 0)

    def script(self, script: str) -> None:
        for statement in script.split(";"):
            if statement.strip():
                self.db.execute(statement)


class _Reader:
    """PostgreSQL reads outside a transaction, shaped as a connection's ``execute(...).fetchone()``."""

    def __init__(self, database: PostgresDatabase) -> None:
        self._database = database

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _Rows:
        return _Rows(self._database.read(sql, params))


class _Rows(list[Any]):
    def fetchone(self) -> Any:
        return self[0] if self else None

    def fetchall(self) -> list[Any]:
        return list(self)


def _ledger_sql(job_id: int | None) -> tuple[str, tuple[int, ...]]:
    if job_id is None:
        return "SELECT * FROM ledger ORDER BY id", ()
    return "SELECT * FROM ledger WHERE job_id = ? ORDER BY id", (job_id,)


def _contains(text: str | None, word: str) -> bool:
    return text is not None and word in text.casefold()  # word arrives casefolded


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
