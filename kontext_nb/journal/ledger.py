"""The spend ledger: append-only entries of money reserved, settled and released, the only source of spend.

Spend used to be summed from the jobs table, whose rows delete, prune and salvage remove; then housekeeping reset
the caps. Every entry here is written once and never updated or deleted (delete, prune and salvage leave them):

- ``reserve``: a job's price held before it is sent (``held`` +price);
- ``settle``: its real cost once it ends with images (``spent`` +cost, ``held`` -what it still held);
- ``release``: a job that ended without images gives back what it held (``held`` -that);
- ``unconfirmed``: a submit fal may have received: what it held counts as spent (never undercount);
- ``overrun``: a settlement above its reservation (a defect of the estimate): sends stop until acknowledged;
- ``acknowledge``: the user has seen every overrun before it;
- ``not_sent``: an unconfirmed submit that fal's request history proves never arrived gives back what it counted
  as spent (the one entry whose ``spent`` is negative, and only with that proof: journal/unconfirmed.py).

Every entry of a job carries the day and the kernel of its reservation: a job's money belongs to the day it was
sent and to the kernel that sent it, whoever collects it and whenever it ends. ``spent`` deltas are never
negative but for ``not_sent``, so nothing the user does makes spend go down. The runs folder keeps its
``budget_timezone`` in the ``folder_settings`` table, so every kernel on it agrees on "today" (UTC when none was set).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..errors import ValidationError

SCHEMA = """
    CREATE TABLE ledger (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at REAL NOT NULL,
        day TEXT NOT NULL,
        job_id INTEGER NOT NULL,
        kind TEXT NOT NULL,
        amount REAL NOT NULL,
        spent REAL NOT NULL DEFAULT 0,
        held REAL NOT NULL DEFAULT 0,
        kernel TEXT,
        endpoint TEXT
    );
    CREATE INDEX ledger_job ON ledger (job_id);
    CREATE INDEX ledger_day ON ledger (day);
    CREATE INDEX ledger_kernel ON ledger (kernel);
    CREATE TABLE folder_settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
"""The ledger's tables (and the folder's settings)."""
MIGRATION = (
    SCHEMA
    + """;
    INSERT INTO ledger (at, day, job_id, kind, amount, spent, held, kernel, endpoint)
        SELECT created, date(created, 'unixepoch'), id, 'reserve', reserved, 0, reserved, session, endpoint
        FROM jobs WHERE reserved > 0;
    INSERT INTO ledger (at, day, job_id, kind, amount, spent, held, kernel, endpoint)
        SELECT updated, date(created, 'unixepoch'), id,
               CASE status WHEN 'unconfirmed' THEN 'unconfirmed' ELSE 'settle' END, cost, cost, 0, session, endpoint
        FROM jobs WHERE cost > 0
"""
)
"""Schema 7: the ledger, filled once from the jobs that exist (their cost spent, their reservation held)."""

KINDS = ("reserve", "settle", "release", "unconfirmed", "overrun", "acknowledge", "not_sent")
TIMEZONE_SETTING = "budget_timezone"
DEFAULT_ZONE = "UTC"
EPSILON = 1e-9


def clock() -> float:
    """Now, in seconds since the epoch (UTC): the one clock of the ledger's days (a test may replace it)."""
    return time.time()


class Cursor(Protocol):
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class Executor(Protocol):
    """A connection, or a write transaction's (``db._Tx``)."""

    def execute(self, sql: str, params: Any = ...) -> Any: ...


@dataclass(frozen=True)
class Entry:
    """One ledger entry, as written."""

    id: int
    at: float
    """When it was written (seconds since the epoch: UTC)."""
    day: str
    """The runs folder's day (YYYY-MM-DD in its budget_timezone) of the job's reservation."""
    job_id: int
    kind: str
    amount: float
    spent: float
    held: float
    kernel: str | None
    """The kernel (session id) whose spending it is: the one that reserved the job."""


def check_zone(name: str) -> str:
    """A time zone name (IANA, like 'Europe/Berlin' or 'UTC'), or a one-line error naming what is allowed."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValidationError(
            f"budget_timezone={name!r} is not a time zone: give an IANA name like 'UTC', 'Europe/Berlin' or "
            "'America/New_York'",
            field="budget_timezone",
        ) from None
    return name


def day_of(when: float, zone: str) -> str:
    """The calendar day (YYYY-MM-DD) at ``when`` in ``zone``."""
    return dt.datetime.fromtimestamp(when, ZoneInfo(zone)).date().isoformat()


def zone(db: Executor) -> str:
    """The runs folder's budget time zone: what it stores, else UTC."""
    row = db.execute("SELECT value FROM folder_settings WHERE name = ?", (TIMEZONE_SETTING,)).fetchone()
    return str(row[0]) if row else DEFAULT_ZONE


def today(db: Executor, now: float | None = None) -> str:
    return day_of(clock() if now is None else now, zone(db))


def agree_zone(db: Executor, wanted: str | None) -> tuple[str, str | None]:
    """Store ``wanted`` as the folder's zone when it has none; returns (the zone in force, a one-line notice when
    ``wanted`` differs from what the folder keeps). Run inside a write transaction."""
    row = db.execute("SELECT value FROM folder_settings WHERE name = ?", (TIMEZONE_SETTING,)).fetchone()
    if row is None:
        if wanted is not None:
            db.execute("INSERT INTO folder_settings (name, value) VALUES (?, ?)", (TIMEZONE_SETTING, wanted))
            return wanted, None
        return DEFAULT_ZONE, None
    kept = str(row[0])
    if wanted is not None and wanted != kept:
        return kept, (
            f"kontext_nb: this runs folder counts budget_daily's days in {kept} (set by the first kernel that used "
            f"it, so every kernel agrees); budget_timezone={wanted!r} is not used here"
        )
    return kept, None


def write(
    db: Executor, job_id: int, kind: str, *, amount: float, spent: float = 0.0, held: float = 0.0,
    day: str, kernel: str | None, now: float | None = None, endpoint: str | None = None,
) -> None:  # fmt: skip
    assert kind in KINDS and (spent >= 0 or kind == "not_sent")
    db.execute(
        "INSERT INTO ledger (at, day, job_id, kind, amount, spent, held, kernel, endpoint)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (clock() if now is None else now, day, job_id, kind, amount, spent, held, kernel, endpoint),
    )


def reserve(
    db: Executor, job_id: int, price: float, *, kernel: str | None, endpoint: str | None = None,
    now: float | None = None,
) -> None:  # fmt: skip
    """Hold a job's price (written with its row, in the transaction that checked the caps); the endpoint is kept so
    the ledger alone can be put beside fal's usage per endpoint (journal/reconcile.py), deleted jobs included."""
    now = clock() if now is None else now
    write(
        db, job_id, "reserve", amount=price, held=price, day=today(db, now), kernel=kernel, now=now, endpoint=endpoint
    )


def _job(db: Executor, job_id: int) -> tuple[float, float, float, str, str | None]:
    """(reserved in all, spent so far, still held, the reservation's day, its kernel) of one job."""
    row = db.execute(
        "SELECT COALESCE(SUM(CASE kind WHEN 'reserve' THEN amount ELSE 0 END), 0), COALESCE(SUM(spent), 0),"
        " COALESCE(SUM(held), 0) FROM ledger WHERE job_id = ?",
        (job_id,),
    ).fetchone()
    first = db.execute("SELECT day, kernel FROM ledger WHERE job_id = ? ORDER BY id LIMIT 1", (job_id,)).fetchone()
    day, kernel = (first[0], first[1]) if first else (today(db), None)
    return float(row[0]), float(row[1]), float(row[2]), day, kernel


def job_totals(db: Executor, job_id: int) -> tuple[float, float]:
    """(spent, held) for one job."""
    _, spent, held, _, _ = _job(db, job_id)
    return spent, max(0.0, held)


def settle(db: Executor, job_id: int, cost: float, *, kernel: str | None = None) -> float | None:
    """A job ended with images: its real cost is spent and what it held released. Spend never goes down (a job
    counted before, as unconfirmed, adds only what its real cost is above that). Returns by how much the cost is
    above the job's reservation (an overrun, also written), else None."""
    reserved, spent, held, day, owner = _job(db, job_id)
    owner = owner if owner is not None else kernel
    flagged = db.execute("SELECT 1 FROM ledger WHERE job_id = ? AND kind = 'overrun'", (job_id,)).fetchone()
    write(db, job_id, "settle", amount=cost, spent=max(0.0, cost - spent), held=-held, day=day, kernel=owner)
    if reserved > 0 and cost > reserved + EPSILON and flagged is None:
        write(db, job_id, "overrun", amount=round(cost - reserved, 6), day=day, kernel=owner)
        return cost - reserved
    return None


def release(db: Executor, job_id: int) -> None:
    """A job ended without images (failed, cancelled): what it held is given back."""
    _, _, held, day, owner = _job(db, job_id)
    if abs(held) > EPSILON:
        write(db, job_id, "release", amount=held, held=-held, day=day, kernel=owner)


def unconfirmed(db: Executor, job_id: int) -> None:
    """A submit fal may have received: what the job held counts as spent."""
    _, _, held, day, owner = _job(db, job_id)
    if abs(held) > EPSILON:
        write(db, job_id, "unconfirmed", amount=held, spent=max(0.0, held), held=-held, day=day, kernel=owner)


def not_sent(db: Executor, job_id: int) -> None:
    """fal's request history proves an unconfirmed submit never arrived: what it counted as spent is given back."""
    _, spent, held, day, owner = _job(db, job_id)
    if spent > EPSILON or abs(held) > EPSILON:
        write(db, job_id, "not_sent", amount=spent, spent=-spent, held=-held, day=day, kernel=owner)


def totals(db: Executor, *, day: str | None = None, kernel: str | None = None) -> tuple[float, float]:
    """(spent, held) over the entries of one day and/or one kernel (all when not given)."""
    sql = "SELECT COALESCE(SUM(spent), 0), COALESCE(SUM(held), 0) FROM ledger WHERE 1 = 1"
    params: list[str] = []
    if day is not None:
        sql += " AND day = ?"
        params.append(day)
    if kernel is not None:
        sql += " AND kernel = ?"
        params.append(kernel)
    spent, held = db.execute(sql, params).fetchone()
    return float(spent), max(0.0, float(held))


@dataclass(frozen=True)
class JobMoney:
    """One job's money as the ledger has it (its row may be deleted): for putting beside fal's usage."""

    job_id: int
    created: float
    """When its first entry was written (its reservation): seconds since the epoch."""
    endpoint: str
    cost: float
    """Spent."""
    reserved: float
    """Still held."""
    cached: bool = False


def per_job(db: Executor, *, since: float) -> list[JobMoney]:
    """Every job whose money the ledger holds, reserved at or after ``since``; a job with no endpoint recorded (a
    journal from before the ledger kept one) takes its row's, when the row is still there."""
    rows = db.execute(
        "SELECT l.job_id, MIN(l.at), COALESCE(MAX(l.endpoint), (SELECT endpoint FROM jobs WHERE id = l.job_id)),"
        " SUM(l.spent), SUM(l.held) FROM ledger l WHERE l.job_id > 0 GROUP BY l.job_id HAVING MIN(l.at) >= ?",
        (since,),
    ).fetchall()
    return [JobMoney(int(r[0]), float(r[1]), str(r[2] or "?"), float(r[3]), max(0.0, float(r[4]))) for r in rows]


def overruns(db: Executor) -> list[Entry]:
    """Overruns written after the last acknowledgement: while there is one, nothing more is sent."""
    rows = db.execute(
        "SELECT * FROM ledger WHERE kind = 'overrun' AND id > COALESCE((SELECT MAX(id) FROM ledger"
        " WHERE kind = 'acknowledge'), 0) ORDER BY id"
    ).fetchall()
    return [entry(r) for r in rows]


def acknowledge(db: Executor, kernel: str | None) -> int:
    """The user has seen every overrun so far; returns how many that was."""
    seen = overruns(db)
    if seen:  # job 0: no job's (SQLite's job ids start at 1)
        write(db, 0, "acknowledge", amount=0.0, day=today(db), kernel=kernel)
    return len(seen)


def entries(db: Executor, job_id: int | None = None) -> list[Entry]:
    rows = db.execute(
        "SELECT * FROM ledger" + (" WHERE job_id = ?" if job_id is not None else "") + " ORDER BY id",
        (job_id,) if job_id is not None else (),
    ).fetchall()
    return [entry(r) for r in rows]


def entry(row: Any) -> Entry:
    return Entry(
        int(row["id"]), float(row["at"]), str(row["day"]), int(row["job_id"]), str(row["kind"]),
        float(row["amount"]), float(row["spent"]), float(row["held"]), row["kernel"],
    )  # fmt: skip
