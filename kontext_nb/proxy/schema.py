"""The classroom's tables, for SQLite (a state folder) and PostgreSQL (``--state postgresql://…``).

Written once in the SQL both engines share; database.ddl turns SQLite's column types into PostgreSQL's
(``REAL`` into double precision, ``INTEGER`` into 64 bits, ``INTEGER PRIMARY KEY`` into an identity). A state
folder from an older version gets its missing columns (SQLite only: there were no PostgreSQL states before
these tables) and its jobs' reservations entered once into the spend ledger (spend.py).
"""

from __future__ import annotations

import re

from kontext_nb.journal import database

from . import spend


class StateError(Exception):
    """The class's state (its SQLite file or PostgreSQL database) cannot be used just now: one line, without the
    database's password. The server answers 503 with it; the next request tries again."""


SCHEMA = """
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
    image_urls TEXT,
    owner TEXT,                      -- the proxy instance that sends and watches it (instances.py)
    cancel_requested INTEGER NOT NULL DEFAULT 0,  -- asked through another instance while being sent
    upstream_status TEXT             -- IN_QUEUE | IN_PROGRESS, for the instances not watching it
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
    message TEXT NOT NULL,
    minute INTEGER,                  -- the minute counted in (epoch seconds // 60)
    count INTEGER NOT NULL DEFAULT 1
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
CREATE TABLE IF NOT EXISTS logins (  -- the instructor's logged-in browsers, whichever instance they reach
    sid_hash TEXT PRIMARY KEY,       -- SHA-256 of the session cookie
    token_hash TEXT NOT NULL,        -- the instructor token it was opened with: replaced, the login ends
    csrf TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS signed_uploads (  -- upload ids handed out; the PUT may reach another instance
    id TEXT PRIMARY KEY,
    student TEXT NOT NULL,
    file_url TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS instances (  -- proxy instances serving this class, alive by heartbeat
    id TEXT PRIMARY KEY,             -- host:port
    pid INTEGER NOT NULL,
    started REAL NOT NULL,
    last_seen REAL NOT NULL,
    settings TEXT NOT NULL DEFAULT ''  -- its limits and session: every instance of a class should have the same
);
"""
ADDED_COLUMNS = {  # columns a state folder from an older version lacks
    "jobs": (
        ("result_headers", "TEXT"),  # fal's error headers
        ("owner", "TEXT"),
        ("cancel_requested", "INTEGER NOT NULL DEFAULT 0"),
        ("upstream_status", "TEXT"),
    ),
    "refusals": (("minute", "INTEGER"), ("count", "INTEGER NOT NULL DEFAULT 1")),  # counted per minute
}


def statements(script: str) -> list[str]:
    """The statements of a schema script, comments dropped (they may hold a semicolon)."""
    text = re.sub(r"--[^\n]*", "", script)
    return [part.strip() for part in text.split(";") if part.strip()]


def migrate(db: database.Tx, where: str) -> None:
    """Create the tables, or bring an older state folder's up to date (in one write transaction)."""
    script = SCHEMA + spend.SCHEMA
    if db.dialect == "postgresql":
        journal = db.execute("SELECT to_regclass('jobs') IS NOT NULL, to_regclass('students') IS NULL").fetchone()
        if journal[0] and journal[1]:
            raise StateError(f"{where} holds a kontext_nb journal: give the proxy a database of its own")
        had_ledger = bool(db.execute("SELECT to_regclass('ledger') IS NOT NULL").fetchone()[0])
        script = database.ddl(script)
    else:
        had_ledger = bool(db.execute("SELECT 1 FROM sqlite_master WHERE name = 'ledger'").fetchone())
    for statement in statements(script):
        db.execute(statement)
    for table, added in ADDED_COLUMNS.items() if db.dialect == "sqlite" else ():  # PostgreSQL: all new
        columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})").fetchall()}
        for name, kind in added:
            if name not in columns:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
    db.execute("CREATE UNIQUE INDEX IF NOT EXISTS refusals_bucket ON refusals (student, kind, minute)")
    db.execute("CREATE INDEX IF NOT EXISTS jobs_owner ON jobs (owner, state)")
    if not had_ledger:  # the jobs of a state folder from before the ledger, entered once
        for statement in statements(spend.FILL):
            db.execute(statement)
