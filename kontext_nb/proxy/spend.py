"""The proxy's spend ledger: append-only entries of images and money reserved, settled and released.

Quotas used to be summed from the jobs table, whose rows are updated in place as jobs end; with several
instances finishing jobs at once, a row rewritten twice could count a job twice or not at all. As the
journal's ledger (kontext_nb/journal/ledger.py) does for a notebook, every entry here is written once and
never updated or deleted:

- ``reserve``: a job's requested images and upper-bound price, written with its job row, in the same
  transaction as the quota check (``images`` +n, ``micros`` +price);
- ``settle``: the job ended with images: the difference between what it made and cost, and what was
  reserved (usually negative or zero; positive only where the estimate was low), ``spent`` its real cost;
- ``release``: the job ended without images: what it reserved is given back;
- ``unconfirmed``: the job was caught half-sent (its instance stopped or died during the submit): fal may have
  it and bill it, so what it reserved stays counted, as spent (never undercount).

One ending per job (a unique index), written in the same transaction that marks the job done, so two
instances racing to end one job (a cancel on B, the upstream's answer on A) count it once. A job's
entries carry the student, day and session of its reservation: the quota counts sum them.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    job_id TEXT NOT NULL,
    student TEXT NOT NULL,
    day TEXT NOT NULL,                   -- the proxy's day of the reservation
    session TEXT NOT NULL,               -- the session of the reservation
    kind TEXT NOT NULL,                  -- reserve | settle | release | unconfirmed
    images INTEGER NOT NULL,             -- counted against the images quotas (a delta)
    micros BIGINT NOT NULL,              -- counted against the dollar quotas (a delta, micro-dollars)
    spent BIGINT NOT NULL DEFAULT 0      -- real cost, on settle
);
CREATE INDEX IF NOT EXISTS ledger_student_day ON ledger (student, day);
CREATE INDEX IF NOT EXISTS ledger_session ON ledger (session, student);
CREATE INDEX IF NOT EXISTS ledger_day ON ledger (day);
CREATE UNIQUE INDEX IF NOT EXISTS ledger_one_end ON ledger (job_id) WHERE kind <> 'reserve';
"""
FILL = """
INSERT INTO ledger (at, job_id, student, day, session, kind, images, micros, spent)
    SELECT created, id, student, day, session, 'reserve', num_images, cost_reserved, 0 FROM jobs;
INSERT INTO ledger (at, job_id, student, day, session, kind, images, micros, spent)
    SELECT COALESCE(finished, created), id, student, day, session,
           CASE outcome WHEN 'ok' THEN 'settle' ELSE 'release' END,
           images - num_images, cost - cost_reserved, CASE outcome WHEN 'ok' THEN cost ELSE 0 END
    FROM jobs WHERE state = 'done';
"""
"""A state folder from before the ledger: its jobs' reservations and endings, written once."""


class Executor(Protocol):
    def execute(self, sql: str, params: Any = ...) -> Any: ...


def reserve(db: Executor, job: dict[str, Any]) -> None:
    """The reservation of a new job (its row is written in the same transaction)."""
    _entry(db, job, "reserve", int(job["num_images"]), int(job["cost_reserved"]), 0)


def end(db: Executor, job: dict[str, Any], images: int, cost: int, ok: bool, unconfirmed: bool = False) -> None:
    """The job's one ending: settle what it made and cost, release what it reserved, or keep it (unconfirmed)."""
    if unconfirmed:
        _entry(db, job, "unconfirmed", 0, 0, int(job["cost_reserved"]))
    elif ok:
        _entry(db, job, "settle", images - int(job["num_images"]), cost - int(job["cost_reserved"]), cost)
    else:
        _entry(db, job, "release", -int(job["num_images"]), -int(job["cost_reserved"]), 0)


def _entry(db: Executor, job: dict[str, Any], kind: str, images: int, micros: int, spent: int) -> None:
    db.execute(
        "INSERT INTO ledger (at, job_id, student, day, session, kind, images, micros, spent) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (time.time(), job["id"], job["student"], job["day"], job["session"], kind, images, micros, spent),
    )


IMAGES_ON_DAY = "SELECT COALESCE(SUM(images), 0) FROM ledger WHERE day = ?"
MICROS_IN_SESSION = "SELECT COALESCE(SUM(micros), 0) FROM ledger WHERE session = ?"
STUDENT_IMAGES_ON_DAY = IMAGES_ON_DAY + " AND student = ?"
STUDENT_MICROS_IN_SESSION = MICROS_IN_SESSION + " AND student = ?"
