"""The classroom's state in SQLite: students, the job audit log, refusals, the instructor token.

One file, ``<state>/classroom.db``, in WAL mode, so the server and the management commands
(``kontext-nb proxy add-student``, ``revoke``, ...) can use it at the same time. Tokens are kept
only as SHA-256 hashes. Quotas are computed from the jobs table, which is the one record of what
was reserved, settled and released; the server writes it before it answers, so a restart
continues exactly where the last run stopped.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from . import roster
from .limits import Usage, to_dollars

DB_NAME = "classroom.db"
WAITING, SUBMITTING, UPSTREAM, DONE = "waiting", "submitting", "upstream", "done"
ACTIVE_STATES = (WAITING, SUBMITTING, UPSTREAM)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS students (
    name TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    revoked_at REAL,
    last_seen REAL
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,             -- the proxy's request id (students never see upstream ids)
    student TEXT NOT NULL,
    session TEXT NOT NULL,
    day TEXT NOT NULL,               -- the proxy's local calendar day at submit
    endpoint TEXT NOT NULL,
    prompt TEXT NOT NULL,
    arguments TEXT NOT NULL,         -- what is sent, inline image data shortened
    body TEXT,                       -- the full body to send; dropped when the job ends
    headers TEXT NOT NULL,           -- the fal headers passed on
    num_images INTEGER NOT NULL,
    images INTEGER NOT NULL,         -- counted against quotas: requested, then settled (0 if none made)
    cost_reserved INTEGER NOT NULL,  -- micro-dollars
    cost INTEGER NOT NULL,           -- micro-dollars counted: reserved, then settled
    safety_tolerance TEXT,
    safety_note TEXT,
    state TEXT NOT NULL,             -- waiting | submitting | upstream | done
    outcome TEXT,                    -- ok | failed | cancelled
    error TEXT,
    error_type TEXT,
    upstream_id TEXT,
    upstream_urls TEXT,
    created REAL NOT NULL,
    dispatched REAL,
    dispatch_seq INTEGER,
    finished REAL,
    metrics TEXT,
    result_status INTEGER,
    result_headers TEXT,
    result TEXT,                     -- the result body as served (JSON text, upstream addresses)
    image_urls TEXT
);
CREATE INDEX IF NOT EXISTS jobs_student_day ON jobs (student, day);
CREATE INDEX IF NOT EXISTS jobs_session_student ON jobs (session, student);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state);
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finished);
CREATE TABLE IF NOT EXISTS refusals (  -- one row per student, reason and minute, with a count
    id INTEGER PRIMARY KEY,
    student TEXT,
    at REAL NOT NULL,                -- the latest refusal counted here
    endpoint TEXT,
    prompt TEXT,                     -- the latest prompt refused (an excerpt)
    kind TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS uploads (  -- bytes each student stored upstream per day (the upload quota)
    student TEXT NOT NULL,
    day TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    files INTEGER NOT NULL,
    PRIMARY KEY (student, day)
);
CREATE TABLE IF NOT EXISTS upload_sizes (  -- images stored through the proxy: their size, read from the header
    url TEXT PRIMARY KEY,            -- the upstream URL, as a submit that names it sends it
    width INTEGER NOT NULL,
    height INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_JSON_COLUMNS = (
    "arguments",
    "body",
    "headers",
    "upstream_urls",
    "metrics",
    "image_urls",
    "result_headers",
)  # result stays text


def today() -> str:
    return date.today().isoformat()


@dataclass(frozen=True)
class Student:
    name: str
    revoked: bool


class Classroom:
    """The state folder of one class. Safe to share between threads; other processes may open it too."""

    def __init__(self, state_dir: str | Path) -> None:
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = self.state_dir / DB_NAME
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
        if "result_headers" not in columns:  # a state folder from before fal's error headers were kept
            self._db.execute("ALTER TABLE jobs ADD COLUMN result_headers TEXT")
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(refusals)")}
        if "minute" not in columns:  # a state folder from before refusals were counted per minute
            self._db.execute("ALTER TABLE refusals ADD COLUMN minute INTEGER")
            self._db.execute("ALTER TABLE refusals ADD COLUMN count INTEGER NOT NULL DEFAULT 1")
        self._db.execute("CREATE UNIQUE INDEX IF NOT EXISTS refusals_bucket ON refusals (student, kind, minute)")
        self._tokens: dict[str, Student] = {}
        self._tokens_version: int | None = None
        self.last_tokens_file: Path | None = None
        """Where import_roster last wrote the tokens it issued."""

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __repr__(self) -> str:
        return f"<Classroom {self.path}>"

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _rows(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

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
        self._tokens_version = None
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
        self.last_tokens_file = roster.write_new_tokens(self.state_dir, issued) if issued else None
        return issued

    def has_student(self, name: str) -> bool:
        return bool(self._rows("SELECT 1 FROM students WHERE name = ?", roster.clean_name(name)))

    def _set_revoked(self, name: str, when: float | None) -> None:
        name = roster.clean_name(name)
        with self._write() as db:
            if db.execute("UPDATE students SET revoked_at = ? WHERE name = ?", (when, name)).rowcount == 0:
                raise KeyError(f"no student called {name!r}")
        self._tokens_version = None

    def revoke(self, name: str) -> None:
        """Refuse the student's requests from now on (jobs already running finish)."""
        self._set_revoked(name, time.time())

    def restore(self, name: str) -> None:
        self._set_revoked(name, None)

    def student_for_token(self, token: str) -> Student | None:
        """The student a token belongs to: a dict lookup by hash, reloaded when any process changed the table."""
        with self._lock:
            version = self._db.execute("PRAGMA data_version").fetchone()[0]
            if version != self._tokens_version:
                rows = self._db.execute("SELECT name, token_hash, revoked_at FROM students").fetchall()
                self._tokens = {r["token_hash"]: Student(r["name"], r["revoked_at"] is not None) for r in rows}
                self._tokens_version = version
            return self._tokens.get(roster.token_hash(token))

    def touch(self, names_seen: dict[str, float]) -> None:
        """Store when students were last seen (the server batches these)."""
        with self._write() as db:
            db.executemany("UPDATE students SET last_seen = ? WHERE name = ?", [(t, n) for n, t in names_seen.items()])

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
    def add_job(self, job: dict[str, Any]) -> None:
        """Insert a job row: this is the reservation of its images and dollars."""
        row = {k: (json.dumps(v) if k in _JSON_COLUMNS and v is not None else v) for k, v in job.items()}
        columns = ", ".join(row)
        with self._write() as db:
            db.execute(f"INSERT INTO jobs ({columns}) VALUES ({', '.join('?' * len(row))})", tuple(row.values()))

    def update_job(self, job_id: str, **fields: Any) -> None:
        row = {k: (json.dumps(v) if k in _JSON_COLUMNS and v is not None else v) for k, v in fields.items()}
        assignments = ", ".join(f"{k} = ?" for k in row)
        with self._write() as db:
            db.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", (*row.values(), job_id))

    def job(self, job_id: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM jobs WHERE id = ?", job_id)
        return _decode(rows[0]) if rows else None

    def active_jobs(self) -> list[dict[str, Any]]:
        """Jobs waiting, being sent or running upstream, oldest first (what a restart picks up)."""
        marks = ", ".join("?" * len(ACTIVE_STATES))
        rows = self._rows(f"SELECT * FROM jobs WHERE state IN ({marks}) ORDER BY created", *ACTIVE_STATES)
        return [_decode(r) for r in rows]

    def next_dispatch_seq(self) -> int:
        return int(self._rows("SELECT COALESCE(MAX(dispatch_seq), 0) AS n FROM jobs")[0]["n"]) + 1

    def dispatch_log(self, session: str | None = None) -> list[tuple[int, str, str]]:
        """(sequence number, student, job id) of every job sent upstream, in the order it was sent."""
        sql = "SELECT dispatch_seq, student, id FROM jobs WHERE dispatch_seq IS NOT NULL"
        args: tuple[Any, ...] = ()
        if session is not None:
            sql, args = sql + " AND session = ?", (session,)
        return [(r[0], r[1], r[2]) for r in self._rows(sql + " ORDER BY dispatch_seq", *args)]

    def student_usage(self, name: str, day: str, session: str) -> Usage:
        with self._lock:
            images = self._db.execute(
                "SELECT COALESCE(SUM(images), 0) FROM jobs WHERE student = ? AND day = ?", (name, day)
            ).fetchone()[0]
            spent = self._db.execute(
                "SELECT COALESCE(SUM(cost), 0) FROM jobs WHERE student = ? AND session = ?", (name, session)
            ).fetchone()[0]
            flying = self._db.execute(
                "SELECT COUNT(*) FROM jobs WHERE student = ? AND state != ?", (name, DONE)
            ).fetchone()[0]
        return Usage(int(images), int(spent), int(flying))

    def class_usage(self, day: str, session: str) -> Usage:
        with self._lock:
            images = self._db.execute("SELECT COALESCE(SUM(images), 0) FROM jobs WHERE day = ?", (day,)).fetchone()[0]
            spent = self._db.execute(
                "SELECT COALESCE(SUM(cost), 0) FROM jobs WHERE session = ?", (session,)
            ).fetchone()[0]
            flying = self._db.execute(
                "SELECT COUNT(*) FROM jobs WHERE state IN (?, ?)", (SUBMITTING, UPSTREAM)
            ).fetchone()[0]
        return Usage(int(images), int(spent), int(flying))

    # ---- uploads -------------------------------------------------------------------------
    def uploaded(self, name: str, day: str) -> int:
        """Bytes the student has uploaded on this day."""
        rows = self._rows("SELECT bytes FROM uploads WHERE student = ? AND day = ?", name, day)
        return int(rows[0]["bytes"]) if rows else 0

    def add_upload(self, name: str, day: str, size: int) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO uploads (student, day, bytes, files) VALUES (?, ?, ?, 1) ON CONFLICT (student, day) "
                "DO UPDATE SET bytes = bytes + excluded.bytes, files = files + 1",
                (name, day, size),
            )

    def add_upload_size(self, url: str, size: tuple[int, int]) -> None:
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO upload_sizes (url, width, height) VALUES (?, ?, ?)", (url, *size))

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
                "count = count + 1, at = excluded.at, endpoint = excluded.endpoint, "
                "prompt = COALESCE(excluded.prompt, prompt), message = excluded.message",
                (student or "", now, endpoint, excerpt, kind, message, int(now // 60)),
            )

    # ---- reports -------------------------------------------------------------------------
    def students(self, session: str | None = None, day: str | None = None) -> list[dict[str, Any]]:
        """One row per student: status, images today, spent this session, job counts, last seen."""
        session, day = session or today(), day or today()
        rows = self._rows(
            """
            SELECT s.name, s.revoked_at, s.last_seen, s.created,
              (SELECT COALESCE(SUM(images), 0) FROM jobs j WHERE j.student = s.name AND j.day = ?) AS images_today,
              (SELECT COALESCE(SUM(cost), 0) FROM jobs j WHERE j.student = s.name AND j.session = ?) AS spent,
              (SELECT COUNT(*) FROM jobs j WHERE j.student = s.name AND j.session = ?) AS jobs,
              (SELECT COUNT(*) FROM jobs j WHERE j.student = s.name AND j.outcome = 'ok' AND j.session = ?) AS done,
              (SELECT COUNT(*) FROM jobs j WHERE j.student = s.name AND j.outcome = 'failed' AND j.session = ?)
                AS failed,
              (SELECT COUNT(*) FROM jobs j WHERE j.student = s.name AND j.outcome = 'cancelled' AND j.session = ?)
                AS cancelled,
              (SELECT COUNT(*) FROM jobs j WHERE j.student = s.name AND j.state = 'waiting') AS waiting,
              (SELECT COUNT(*) FROM jobs j WHERE j.student = s.name AND j.state IN ('submitting', 'upstream'))
                AS running,
              (SELECT COALESCE(SUM(count), 0) FROM refusals r WHERE r.student = s.name AND r.at >= ?) AS refused,
              (SELECT MAX(created) FROM jobs j WHERE j.student = s.name) AS last_job
            FROM students s ORDER BY s.name COLLATE NOCASE
            """,
            day,
            session,
            session,
            session,
            session,
            session,
            _day_start(day),
        )
        out = []
        for r in rows:
            seen = max(filter(None, (r["last_seen"], r["last_job"])), default=None)
            out.append(
                {
                    "name": r["name"],
                    "status": "revoked" if r["revoked_at"] is not None else "active",
                    "images_today": r["images_today"],
                    "spent_session": to_dollars(r["spent"]),
                    "jobs": r["jobs"],
                    "done": r["done"],
                    "failed": r["failed"],
                    "cancelled": r["cancelled"],
                    "refused_today": r["refused"],
                    "waiting": r["waiting"],
                    "running": r["running"],
                    "in_flight": r["waiting"] + r["running"],
                    "last_seen": seen,
                }
            )
        return out

    def recent_images(self, limit: int = 12) -> list[dict[str, Any]]:
        rows = self._rows(
            "SELECT id, student, prompt, endpoint, cost, finished, image_urls FROM jobs "
            "WHERE outcome = 'ok' ORDER BY finished DESC LIMIT ?",
            limit,
        )
        return [
            {
                "job": r["id"],
                "student": r["student"],
                "prompt": r["prompt"],
                "endpoint": r["endpoint"],
                "cost": to_dollars(r["cost"]),
                "finished": r["finished"],
                "urls": json.loads(r["image_urls"] or "[]"),
            }
            for r in rows
        ]

    def recent_refusals(self, since: float, per_student: int = 5) -> list[dict[str, Any]]:
        """Refusals since ``since`` per student and reason (count, latest time, message and prompt), each student's
        latest ``per_student`` reasons: one student's flood cannot push another's refusal off the page."""
        rows = self._rows(
            """
            SELECT student, kind, total AS count, at, endpoint, prompt, message FROM (
              SELECT student, kind, SUM(count) OVER w AS total,
                ROW_NUMBER() OVER (PARTITION BY student, kind ORDER BY at DESC) AS latest,
                at, endpoint, prompt, message
              FROM refusals WHERE at >= ? WINDOW w AS (PARTITION BY student, kind)
            ) WHERE latest = 1 ORDER BY at DESC
            """,
            since,
        )
        shown: dict[str, int] = {}
        out = []
        for r in rows:
            name = r["student"] or None
            shown[name or ""] = shown.get(name or "", 0) + 1
            if shown[name or ""] <= per_student:
                out.append({**dict(r), "student": name})
        return out

    def usage(self, session: str | None = None, day: str | None = None) -> dict[str, Any]:
        """Everything the instructor page shows, as plain data (also served as JSON)."""
        session, day = session or today(), day or today()
        with self._lock:
            klass = self.class_usage(day, session)
            waiting = self._db.execute("SELECT COUNT(*) FROM jobs WHERE state = ?", (WAITING,)).fetchone()[0]
            outcomes = dict(
                self._db.execute(
                    "SELECT outcome, COUNT(*) FROM jobs WHERE session = ? AND outcome IS NOT NULL GROUP BY outcome",
                    (session,),
                ).fetchall()
            )
        return {
            "session": session,
            "day": day,
            "class": {
                "images_today": klass.images_today,
                "spent_session": to_dollars(klass.spent_micros),
                "jobs_waiting": int(waiting),
                "jobs_in_flight": klass.in_flight,
                "done": outcomes.get("ok", 0),
                "failed": outcomes.get("failed", 0),
                "cancelled": outcomes.get("cancelled", 0),
            },
            "students": self.students(session, day),
            "recent_images": self.recent_images(),
            "recent_refusals": self.recent_refusals(_day_start(day)),
        }


def _decode(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    for key in _JSON_COLUMNS:
        if out.get(key) is not None:
            out[key] = json.loads(out[key])
    return out


def _day_start(day: str) -> float:
    return time.mktime(date.fromisoformat(day).timetuple())
