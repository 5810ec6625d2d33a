"""Owners alive by heartbeat rows, for a journal shared by hosts (PostgreSQL): a process id means nothing on
another host, so each kernel writes its row in ``owners`` (session, host, pid, last seen) every ``every()`` seconds,
and a job's owner is alive while its row was seen within ``lapse()`` seconds. Both times are read on the database
server's clock, so hosts whose clocks differ still agree. A kernel killed with -9 stops beating: its jobs are taken
over only once its heartbeat has lapsed; a kernel that closes its session removes its row (its jobs are left behind
at once). A server that was down stopped every beat: for ``lapse()`` seconds after it starts, every kernel with a
row still counts as alive. On SQLite (one host) liveness stays the local process check (db.owner_alive).
"""

from __future__ import annotations

import logging
import os
import socket
import threading

from .database import Database

log = logging.getLogger(__name__)

EVERY_ENV = "KONTEXT_HEARTBEAT_SECONDS"
LAPSE_ENV = "KONTEXT_HEARTBEAT_LAPSE"
HOST_ENV = "KONTEXT_HOST_ID"
EVERY = 5.0
LAPSE = 30.0
NOW = "EXTRACT(EPOCH FROM clock_timestamp())"
"""The server's clock, in seconds since the epoch."""


def _seconds(name: str, default: float) -> float:
    try:
        return max(0.05, float(os.environ.get(name, default)))
    except ValueError:
        return default


def every() -> float:
    """Seconds between two beats (KONTEXT_HEARTBEAT_SECONDS, else 5)."""
    return _seconds(EVERY_ENV, EVERY)


def lapse() -> float:
    """Seconds without a beat after which an owner counts as gone (KONTEXT_HEARTBEAT_LAPSE, else 30: six beats)."""
    return _seconds(LAPSE_ENV, LAPSE)


def host_id() -> str:
    """This host's name in kernel ids and the journal's host column (KONTEXT_HOST_ID, else the host name)."""
    return os.environ.get(HOST_ENV, "").strip() or socket.gethostname()


def beat(db: Database, session: str) -> None:
    db.read(
        f"INSERT INTO owners (session, host, pid, seen) VALUES (?, ?, ?, {NOW})"
        " ON CONFLICT (session) DO UPDATE SET seen = EXCLUDED.seen, host = EXCLUDED.host, pid = EXCLUDED.pid"
        " RETURNING seen",
        (session, host_id(), os.getpid()),
    )


def alive(db: Database, session: str | None) -> bool:
    """Whether ``session`` beat within ``lapse()`` seconds; a kernel with a row counts as alive for ``lapse()``
    seconds after the server (re)started too, since nobody could beat while it was down."""
    if not session:
        return False
    seconds = lapse()
    row = db.one(
        f"SELECT 1 FROM owners WHERE session = ? AND (seen > {NOW} - ?"
        f" OR EXTRACT(EPOCH FROM pg_postmaster_start_time()) > {NOW} - ?)",
        (session, seconds, seconds),
    )
    return row is not None


class _Beating:
    def __init__(self, db: Database, session: str) -> None:
        self.db, self.session = db, session
        self.stopped = threading.Event()
        beat(db, session)  # at once: a kernel is alive from its first job on
        self.thread = threading.Thread(target=self._run, name="kontext-heartbeat", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while not self.stopped.wait(every()):
                try:
                    beat(self.db, self.session)
                except Exception as exc:  # the server is down or restarting: beat again next time
                    log.warning("kontext_nb: no heartbeat written (%s); trying again in %.0f s", exc, every())
        finally:
            self.db.close()


_BEATING: dict[tuple[str, str], _Beating] = {}
_LOCK = threading.Lock()


def keep(db: Database, key: str, session: str) -> None:
    """Beat for ``session`` on the database named ``key`` until ``stop`` (one thread per pair, however asked)."""
    with _LOCK:
        if (key, session) not in _BEATING:
            _BEATING[(key, session)] = _Beating(db, session)


def stop(db: Database, key: str, session: str) -> None:
    """Stop beating and remove the row: this kernel's unfinished jobs are left behind for others at once."""
    with _LOCK:
        beating = _BEATING.pop((key, session), None)
    if beating is None:
        return
    beating.stopped.set()
    try:
        db.read("DELETE FROM owners WHERE session = ? RETURNING session", (session,))
    except Exception as exc:
        log.warning("kontext_nb: the heartbeat row of %s was not removed (%s): it lapses by itself", session, exc)
