"""The classroom's state in SQLite: students, the job audit log, refusals, the instructor token.

One file, ``<state>/classroom.db``, in WAL mode, so the server, the management commands
(``kontext-nb proxy add-student``, ``revoke``, ...) and other proxy instances on this machine can use
it at the same time. Tokens are kept only as SHA-256 hashes. Quotas are summed from the spend ledger
(spend.py: append-only reserve, settle and release entries), checked and reserved in one write
transaction, so two instances admitting a student's requests at once cannot both take the last image;
the server writes before it answers, so a restart continues exactly where the last run stopped.
What several instances share, and what each keeps to itself, is in instances.py.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kontext_nb.journal import database

from . import reports, roster, schema, spend
from .limits import Limits, Refusal, Usage, check
from .reports import today as today
from .schema import StateError as StateError

DB_NAME = "classroom.db"
DEFAULT_FILES = "kontext-proxy"
"""Where new-tokens CSV files go when the state is a PostgreSQL database."""
LOCK = "proxy"
"""The name of the proxy's write lock (database.py: one writer at a time; the journal's is another)."""
WHAT = "the class's state"
WAITING, SUBMITTING, UPSTREAM, DONE = "waiting", "submitting", "upstream", "done"
ACTIVE_STATES = (WAITING, SUBMITTING, UPSTREAM)

_JSON_COLUMNS = (
    "arguments",
    "body",
    "headers",
    "upstream_urls",
    "metrics",
    "image_urls",
    "result_headers",
)  # result stays text


@dataclass(frozen=True)
class Student:
    name: str
    revoked: bool


class Classroom:
    """The state of one class: a folder (SQLite, ``classroom.db``) or a ``postgresql://`` URL (one database for
    every proxy instance). Safe to share between threads; other processes and instances may open it too."""

    def __init__(self, state: str | Path, files: str | Path = DEFAULT_FILES) -> None:
        self._lock = threading.RLock()
        self.path: Path | None = None
        """The SQLite file (None on PostgreSQL)."""
        if database.is_url(state):
            self.state_dir = Path(files)  # new-tokens CSV files only, made when first written
            self.database: database.Database = database.PostgresDatabase(str(state), error=StateError, what=WHAT)
        else:
            self.state_dir = Path(state)
            self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.path = self.state_dir / DB_NAME
            self.database = database.SqliteDatabase(self.path, error=StateError, what=WHAT)
        self.where = self.database.where
        """Where the state is, for output (a URL's password replaced)."""
        with self._write() as db:
            schema.migrate(db, self.where)
        self._tokens: dict[str, Student] = {}
        self._tokens_version: str | None = None
        self.last_tokens_file: Path | None = None
        """Where import_roster last wrote the tokens it issued."""

    def close(self) -> None:
        """Close this thread's connection (each thread that used the state has its own)."""
        self.database.close()

    def __repr__(self) -> str:
        return f"<Classroom {self.where}>"

    def _write(self) -> Any:
        """One write transaction, holding the state's write lock (one writer at a time across every instance)."""
        return self.database.write(LOCK)

    def _rows(self, sql: str, *args: Any) -> list[Any]:
        return self.database.read(sql, args)

    transaction, query = _write, _rows
    """For the proxy's other tables (instances.py, duel.py): one write transaction; rows of a read."""

    # ---- students ------------------------------------------------------------------------
    def add_student(self, name: str, token: str | None = None) -> str:
        """Add a student and return their token (shown once: only its hash is kept)."""
        name = roster.clean_name(name)
        token = roster.check_token(token) if token else roster.new_token()
        with self._write() as db:
            if db.execute("SELECT 1 FROM students WHERE name = ?", (name,)).fetchone():
                raise ValueError(f"there is already a student called {name!r}")
            if db.execute("SELECT 1 FROM students WHERE token_hash = ?", (roster.token_hash(token),)).fetchone():
                raise ValueError(f"the token given for {name!r} is already someone else's")
            db.execute(
                "INSERT INTO students (name, token_hash, created) VALUES (?, ?, ?)",
                (name, roster.token_hash(token), time.time()),
            )
            _students_changed(db)
        return token

    def import_roster(self, path: str | Path) -> dict[str, str]:
        """Add the roster's students not known yet; returns their tokens (also written to a 0600 CSV).

        Idempotent by name: students already here keep their tokens.
        """
        issued: dict[str, str] = {}
        for name, token in roster.read_roster(path):
            if self.has_student(name):
                continue
            issued[name] = self.add_student(name, token)
        if issued:
            self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.last_tokens_file = roster.write_new_tokens(self.state_dir, issued) if issued else None
        return issued

    def has_student(self, name: str) -> bool:
        return bool(self._rows("SELECT 1 FROM students WHERE name = ?", roster.clean_name(name)))

    def _set_revoked(self, name: str, when: float | None) -> None:
        name = roster.clean_name(name)
        with self._write() as db:
            if db.execute("UPDATE students SET revoked_at = ? WHERE name = ?", (when, name)).rowcount == 0:
                raise KeyError(f"no student called {name!r}")
            _students_changed(db)

    def revoke(self, name: str) -> None:
        """Refuse the student's requests from now on (jobs already running finish)."""
        self._set_revoked(name, time.time())

    def restore(self, name: str) -> None:
        self._set_revoked(name, None)

    def student_for_token(self, token: str) -> Student | None:
        """The student a token belongs to: a dict lookup by hash, reloaded when any process or instance changed
        the table (a revision number it bumps: one small read per request)."""
        with self._lock:
            found = self.database.one("SELECT value FROM settings WHERE key = 'students_revision'")
            version = found[0] if found else ""
            if version != self._tokens_version:
                rows = self.database.read("SELECT name, token_hash, revoked_at FROM students")
                self._tokens = {r["token_hash"]: Student(r["name"], r["revoked_at"] is not None) for r in rows}
                self._tokens_version = version
            return self._tokens.get(roster.token_hash(token))

    def touch(self, names_seen: dict[str, float]) -> None:
        """Store when students were last seen (each instance batches these; the latest wins)."""
        with self._write() as db:
            for name, when in names_seen.items():
                db.execute(
                    "UPDATE students SET last_seen = ? WHERE name = ? AND COALESCE(last_seen, 0) < ?",
                    (when, name, when),
                )

    # ---- the instructor ------------------------------------------------------------------
    def new_instructor_token(self) -> str:
        """Issue the instructor token (shown once); the previous one stops working at once."""
        token = roster.new_token(roster.INSTRUCTOR_PREFIX)
        with self._write() as db:
            db.execute(
                "INSERT INTO settings (key, value) VALUES ('instructor_token_hash', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (roster.token_hash(token),),
            )
        return token

    def instructor_token_hash(self) -> str | None:
        rows = self._rows("SELECT value FROM settings WHERE key = 'instructor_token_hash'")
        return rows[0]["value"] if rows else None

    # ---- jobs ----------------------------------------------------------------------------
    def admit(self, job: dict[str, Any], limits: Limits) -> Refusal | None:
        """Check the job against every quota and, if it fits, insert its row and its reservation, in one write
        transaction: requests reaching two instances at once see each other's reservations."""
        row = {k: (json.dumps(v) if k in _JSON_COLUMNS and v is not None else v) for k, v in job.items()}
        columns = ", ".join(row)
        with self._write() as db:
            student = _usage(db, job["day"], job["session"], job["student"])
            klass = _usage(db, job["day"], job["session"], None)
            refusal = check(limits, student, klass, int(job["num_images"]), int(job["cost_reserved"]))
            if refusal is None:
                db.execute(f"INSERT INTO jobs ({columns}) VALUES ({', '.join('?' * len(row))})", tuple(row.values()))
                spend.reserve(db, job)
        return refusal

    def update_job(self, job_id: str, **fields: Any) -> None:
        row = {k: (json.dumps(v) if k in _JSON_COLUMNS and v is not None else v) for k, v in fields.items()}
        assignments = ", ".join(f"{k} = ?" for k in row)
        with self._write() as db:
            db.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", (*row.values(), job_id))

    def move_job(self, job_id: str, before: str, **fields: Any) -> bool:
        """Update the job only if it is still in state ``before`` (False: another instance moved it first)."""
        row = {k: (json.dumps(v) if k in _JSON_COLUMNS and v is not None else v) for k, v in fields.items()}
        assignments = ", ".join(f"{k} = ?" for k in row)
        with self._write() as db:
            sql = f"UPDATE jobs SET {assignments} WHERE id = ? AND state = ?"
            return bool(db.execute(sql, (*row.values(), job_id, before)).rowcount)

    def finish(
        self,
        job_id: str,
        images: int,
        cost: int,
        ok: bool,
        only_from: str | None = None,
        *,
        unconfirmed: bool = False,
        **fields: Any,
    ) -> bool:
        """End a job: its row marked done and its one settle or release entry (``unconfirmed``: its reservation
        kept as spent), in one transaction. False when it had ended already (or was no longer in state
        ``only_from``): nothing is written, nothing counted twice."""
        row = {k: (json.dumps(v) if k in _JSON_COLUMNS and v is not None else v) for k, v in fields.items()}
        with self._write() as db:
            found = db.execute(
                "SELECT id, student, day, session, num_images, cost_reserved, state FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
            if found is None or found["state"] == DONE or (only_from is not None and found["state"] != only_from):
                return False
            if unconfirmed:
                images, cost = int(found["num_images"]), int(found["cost_reserved"])
            row.update(state=DONE, images=images, cost=cost)
            assignments = ", ".join(f"{k} = ?" for k in row)
            db.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", (*row.values(), job_id))
            spend.end(db, dict(found), images, cost, ok, unconfirmed)
        return True

    def claim(self, job_id: str, owner: str, limit: int | None) -> int | str:
        """Move a waiting job of ``owner`` to submitting if the class has an upstream slot free: its dispatch
        sequence number; "full" when every slot is taken (by any instance); "gone" when it is not waiting any
        more (cancelled through another instance, or taken over)."""
        with self._write() as db:
            found = db.execute("SELECT state, owner FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if found is None or found["state"] != WAITING or found["owner"] not in (owner, None):
                return "gone"
            if limit is not None:
                running = db.execute("SELECT COUNT(*) FROM jobs WHERE state IN (?, ?)", (SUBMITTING, UPSTREAM))
                if int(running.fetchone()[0]) >= limit:
                    return "full"
            seq = int(db.execute("SELECT COALESCE(MAX(dispatch_seq), 0) + 1 FROM jobs").fetchone()[0])
            db.execute(
                "UPDATE jobs SET state = ?, dispatched = ?, dispatch_seq = ?, owner = ? WHERE id = ?",
                (SUBMITTING, time.time(), seq, owner, job_id),
            )
        return seq

    def job(self, job_id: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM jobs WHERE id = ?", job_id)
        return _decode(rows[0]) if rows else None

    def job_status(self, job_id: str) -> dict[str, Any] | None:
        """What another instance needs to answer a status poll: the row without its body, arguments and result
        (a body may hold megabytes of data URIs)."""
        rows = self._rows(f"SELECT {_STATUS_COLUMNS}, NULL AS body FROM jobs WHERE id = ?", job_id)
        return _decode(rows[0]) if rows else None

    def waiting_before(self, job_id: str) -> int:
        """How many jobs of the class wait in front of this one (its place in line, as any instance sees it)."""
        rows = self._rows(
            "SELECT COUNT(*) FROM jobs WHERE state = ? AND created < (SELECT created FROM jobs WHERE id = ?)",
            WAITING,
            job_id,
        )
        return int(rows[0][0])

    def active_jobs(self, owner: str | None = None) -> list[dict[str, Any]]:
        """Jobs waiting, being sent or running upstream (those of ``owner`` if given), oldest first."""
        marks = ", ".join("?" * len(ACTIVE_STATES))
        sql, args = f"SELECT * FROM jobs WHERE state IN ({marks})", list(ACTIVE_STATES)
        if owner is not None:
            sql, args = sql + " AND owner = ?", [*args, owner]
        return [_decode(r) for r in self._rows(sql + " ORDER BY created", *args)]

    def dispatch_log(self, session: str | None = None) -> list[tuple[int, str, str]]:
        """(sequence number, student, job id) of every job sent upstream, in the order it was sent."""
        sql = "SELECT dispatch_seq, student, id FROM jobs WHERE dispatch_seq IS NOT NULL"
        args: tuple[Any, ...] = ()
        if session is not None:
            sql, args = sql + " AND session = ?", (session,)
        return [(r[0], r[1], r[2]) for r in self._rows(sql + " ORDER BY dispatch_seq", *args)]

    def student_usage(self, name: str, day: str, session: str) -> Usage:
        return _usage(_Reads(self.database), day, session, name)

    def class_usage(self, day: str, session: str) -> Usage:
        return _usage(_Reads(self.database), day, session, None)

    # ---- uploads -------------------------------------------------------------------------
    def uploaded(self, name: str, day: str) -> int:
        """Bytes the student has uploaded on this day."""
        rows = self._rows("SELECT bytes FROM uploads WHERE student = ? AND day = ?", name, day)
        return int(rows[0]["bytes"]) if rows else 0

    def add_upload(self, name: str, day: str, size: int, files: int = 1) -> None:
        with self._write() as db:
            _count_upload(db, name, day, size, files)

    def reserve_upload(self, name: str, day: str, size: int, cap: int | None) -> int | None:
        """Count an upload of ``size`` bytes against the student's day if it fits under ``cap``, in one
        transaction (uploads racing through two instances cannot both take the last megabytes); else the bytes
        already used."""
        with self._write() as db:
            row = db.execute("SELECT bytes FROM uploads WHERE student = ? AND day = ?", (name, day)).fetchone()
            used = int(row[0]) if row else 0
            if cap is not None and used + size > cap:
                return used
            _count_upload(db, name, day, size, 1)
        return None

    def add_upload_size(self, url: str, size: tuple[int, int]) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO upload_sizes (url, width, height) VALUES (?, ?, ?) ON CONFLICT (url) DO UPDATE SET "
                "width = excluded.width, height = excluded.height",
                (url, *size),
            )

    def upload_size(self, url: str) -> tuple[int, int] | None:
        """The size of an image uploaded through the proxy, by its upstream URL; None for any other URL."""
        rows = self._rows("SELECT width, height FROM upload_sizes WHERE url = ?", url)
        return (int(rows[0]["width"]), int(rows[0]["height"])) if rows else None

    # ---- refusals ------------------------------------------------------------------------
    def add_refusal(
        self, student: str | None, endpoint: str | None, prompt: str | None, kind: str, message: str
    ) -> None:
        """Count a refusal: one row per student, reason and minute, so a flood of them stays a few rows."""
        excerpt = None if prompt is None else (prompt if len(prompt) <= 200 else prompt[:199] + "…")
        now = time.time()
        with self._write() as db:
            db.execute(
                "INSERT INTO refusals (student, at, endpoint, prompt, kind, message, minute, count) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 1) ON CONFLICT (student, kind, minute) DO UPDATE SET "
                "count = refusals.count + 1, at = excluded.at, endpoint = excluded.endpoint, "
                "prompt = COALESCE(excluded.prompt, refusals.prompt), message = excluded.message",
                (student or "", now, endpoint, excerpt, kind, message, int(now // 60)),
            )

    # ---- reports (reports.py) ------------------------------------------------------------
    def students(self, session: str | None = None, day: str | None = None) -> list[dict[str, Any]]:
        """One row per student: status, images today, spent this session, job counts, last seen."""
        return reports.students(self, session, day)

    def recent_images(self, limit: int = 12) -> list[dict[str, Any]]:
        return reports.recent_images(self, limit)

    def recent_refusals(self, since: float, per_student: int = 5) -> list[dict[str, Any]]:
        return reports.recent_refusals(self, since, per_student)

    def usage(self, session: str | None = None, day: str | None = None) -> dict[str, Any]:
        """Everything the instructor page shows, as plain data (also served as JSON)."""
        return reports.usage(self, session, day)


def _usage(db: Any, day: str, session: str, student: str | None) -> Usage:
    """What a student (None: the class) has counted: images today and dollars this session from the ledger,
    jobs waiting or running from the jobs table (the class's in-flight count: jobs upstream only)."""
    if student is None:
        images = db.execute(spend.IMAGES_ON_DAY, (day,)).fetchone()[0]
        spent = db.execute(spend.MICROS_IN_SESSION, (session,)).fetchone()[0]
        flying = db.execute("SELECT COUNT(*) FROM jobs WHERE state IN (?, ?)", (SUBMITTING, UPSTREAM)).fetchone()[0]
    else:
        images = db.execute(spend.STUDENT_IMAGES_ON_DAY, (day, student)).fetchone()[0]
        spent = db.execute(spend.STUDENT_MICROS_IN_SESSION, (session, student)).fetchone()[0]
        flying = db.execute("SELECT COUNT(*) FROM jobs WHERE student = ? AND state != ?", (student, DONE)).fetchone()[0]
    return Usage(int(images), int(spent), int(flying))


_STATUS_COLUMNS = (
    "id, student, endpoint, headers, state, upstream_id, upstream_urls, metrics, outcome, error, error_type, owner, "
    "upstream_status, cancel_requested"
)


def _count_upload(db: Any, name: str, day: str, size: int, files: int) -> None:
    db.execute(
        "INSERT INTO uploads (student, day, bytes, files) VALUES (?, ?, ?, ?) ON CONFLICT (student, day) "
        "DO UPDATE SET bytes = uploads.bytes + excluded.bytes, files = uploads.files + excluded.files",
        (name, day, size, files),
    )


def _students_changed(db: Any) -> None:
    """A new revision of the students table: every instance reloads its token cache on its next request."""
    db.execute(
        "INSERT INTO settings (key, value) VALUES ('students_revision', ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (uuid.uuid4().hex,),
    )


class _Reads:
    """Reads outside a transaction, as a transaction's ``execute(...).fetchone()`` reads (for _usage)."""

    def __init__(self, db: database.Database) -> None:
        self.db = db

    def execute(self, sql: str, params: Any = ()) -> _Fetched:
        return _Fetched(self.db.read(sql, params))


class _Fetched:
    def __init__(self, rows: list[Any]) -> None:
        self.rows = rows

    def fetchone(self) -> Any:
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list[Any]:
        return self.rows


def _decode(row: Any) -> dict[str, Any]:
    out = dict(row)
    for key in _JSON_COLUMNS:
        if out.get(key) is not None:
            out[key] = json.loads(out[key])
    return out
