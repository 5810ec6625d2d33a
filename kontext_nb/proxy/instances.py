"""Several proxy instances serving one class: what they share through the state, what each keeps to itself.

Two or more proxies started on one state (``--state postgresql://…``, or one state folder on one machine)
serve one class behind a load balancer that may send any request to any of them. Every piece of state the
proxy holds was sorted into one of three kinds:

Shared (in the state's tables, so any instance answers any request alike):
- students, tokens and revocations (``students``; each instance caches tokens by hash and reloads when the
  ``students_revision`` setting changes: a revocation through one instance is refused by all on the next request);
- quotas: the spend ledger (spend.py), checked and reserved in one write transaction (Classroom.admit);
- jobs and their results (``jobs``): a job is sent and watched by one instance, its ``owner``; the others answer
  its status, stream and result from its row (re-read while it runs) and cancel it through the row (a waiting
  job) or upstream (a running one);
- the class's upstream slots (``class_in_flight``): counted over every instance's jobs when one is claimed
  (Classroom.claim), so the class never has more upstream at once, however many instances there are;
- uploads per day: counted before the body is read, in one write transaction (Classroom.reserve_upload);
- the audit (``refusals``), uploaded images' sizes, the instructor token and the instructor's
  logins (``logins``: a browser logged in through one instance is logged in on all; logging out ends it
  everywhere), signed upload ids (``signed_uploads``: the PUT may reach another instance than the initiate);
- the class duel (its tables: duels, votes and the one pair on offer to each voter).

Per instance by nature (each bounds its own process: N instances hold at most N times these):
- connections and requests at once per client address and per token (serving.ConnectionLimits,
  bounds.RequestCaps), body bytes and uploads being received (bounds.Holdings): they protect this process's
  memory and sockets, which another instance does not share;
- the fair queue: each instance serves its own waiting jobs round-robin between students; the class's slots
  are shared, so a slot freed anywhere is taken by whichever instance asks first (each asks on every change
  and on a short tick);
- the rehearsal sandbox (``--upstream sandbox``) and its key: each instance would start its own, whose files the
  other cannot serve. For a rehearsal on several instances, start one sandbox
  (``python -m kontext_nb.sandbox --require-key KEY``) and give every instance ``--upstream URL`` with that key;
- when students were last seen: batched in memory and written every 30 s (the latest time wins), and the
  upstream's connection pool and retries (upstream.py): each instance's own;
- the live status of a job upstream (its queue position and logs): the owner sees them first; other instances
  show IN_QUEUE / IN_PROGRESS from the row and the logs once the job ends. A load balancer with sticky routing
  (by the Authorization header) gives a student's status stream its live logs; nothing else needs it.

Options are per instance: limits, the session name and the blocklist must be the same on every instance of a
class (each heartbeat carries them; the banner warns when another live instance's differ), and so must the time
zone (images per day count over each instance's local day).

Instances are alive by heartbeat (the ``instances`` table: host:port, process id and settings, every
``ProxyConfig.heartbeat`` seconds). An instance that stops hands its jobs over at once; one that dies is taken
over once its heartbeat is six beats old (30 s by default): another instance adopts its jobs (waiting ones are
queued again, those upstream are watched again; one caught half-sent ends with one line and stays counted as
spent, since fal may have it: spend.py's ``unconfirmed``).
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .classroom import Classroom

HEARTBEAT = 5.0
"""Seconds between an instance's heartbeats (ProxyConfig.heartbeat)."""
LAPSE_BEATS = 6
"""Heartbeats missed after which another instance takes a lost instance's jobs over (30 s by default)."""
LAPSE = HEARTBEAT * LAPSE_BEATS
MAX_SIGNED_UPLOADS = 10_000
UPLOAD_LIFETIME = 3600.0
"""Seconds a signed upload id stays valid (fal's CDN tokens last an hour)."""


def instance_id(port: int) -> str:
    """This instance's name in the state: host and port, so a restart on the same address takes its jobs back."""
    return f"{socket.gethostname()}:{port}"


def beat(room: Classroom, me: str, settings: str = "") -> None:
    """Say this instance is alive (and with which limits and session)."""
    now = time.time()
    with room.transaction() as db:
        db.execute(
            "INSERT INTO instances (id, pid, started, last_seen, settings) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET pid = excluded.pid, last_seen = excluded.last_seen, "
            "settings = excluded.settings",
            (me, os.getpid(), now, now, settings),
        )


def others(room: Classroom, me: str, lapse: float = LAPSE) -> list[tuple[str, str]]:
    """(id, settings) of the other instances alive on this state."""
    rows = room.query("SELECT id, settings FROM instances WHERE id <> ? AND last_seen >= ?", me, time.time() - lapse)
    return [(str(r[0]), str(r[1])) for r in rows]


def leave(room: Classroom, me: str) -> None:
    """This instance stopped: its jobs are free for any other to take over at once."""
    with room.transaction() as db:
        db.execute("DELETE FROM instances WHERE id = ?", (me,))


_ORPHANS = (
    "SELECT id FROM jobs WHERE state <> 'done' AND (owner IS NULL OR owner <> ?) AND (owner IS NULL OR "
    "owner NOT IN (SELECT id FROM instances WHERE last_seen >= ?))"
)


def adopt(room: Classroom, me: str, lapse: float = LAPSE) -> list[str]:
    """Take over the unfinished jobs of instances that stopped or whose heartbeat lapsed (and of none: a state
    from before instances); the ids of the jobs taken."""
    cutoff = time.time() - lapse
    if not room.query(_ORPHANS + " LIMIT 1", me, cutoff):  # the common case, without taking the write lock
        return []
    with room.transaction() as db:
        taken = [str(r[0]) for r in db.execute(_ORPHANS, (me, cutoff)).fetchall()]
        for job_id in taken:
            db.execute("UPDATE jobs SET owner = ? WHERE id = ?", (me, job_id))
    return taken


# ---- the instructor's logins --------------------------------------------------------------------
def _sid_hash(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def add_login(room: Classroom, sid: str, token_hash: str, csrf: str) -> None:
    with room.transaction() as db:
        db.execute(
            "INSERT INTO logins (sid_hash, token_hash, csrf, created) VALUES (?, ?, ?, ?)",
            (_sid_hash(sid), token_hash, csrf, time.time()),
        )


def login(room: Classroom, sid: str) -> tuple[str, str, float] | None:
    """(instructor token hash, CSRF token, created) of a session cookie, if it is a login."""
    if not sid:
        return None
    rows = room.query("SELECT token_hash, csrf, created FROM logins WHERE sid_hash = ?", _sid_hash(sid))
    return (str(rows[0][0]), str(rows[0][1]), float(rows[0][2])) if rows else None


def end_login(room: Classroom, sid: str) -> None:
    with room.transaction() as db:
        db.execute("DELETE FROM logins WHERE sid_hash = ?", (_sid_hash(sid),))


def end_old_logins(room: Classroom, token_hash: str) -> None:
    """A new instructor token: the logins opened with any other end."""
    with room.transaction() as db:
        db.execute("DELETE FROM logins WHERE token_hash <> ?", (token_hash,))


# ---- signed uploads -----------------------------------------------------------------------------
def add_signed_upload(room: Classroom, upload_id: str, student: str, file_url: str) -> None:
    now = time.time()
    with room.transaction() as db:
        db.execute("DELETE FROM signed_uploads WHERE created < ?", (now - UPLOAD_LIFETIME,))
        held = int(db.execute("SELECT COUNT(*) FROM signed_uploads").fetchone()[0])
        if held >= MAX_SIGNED_UPLOADS:  # bounded, as the memory that held them was: the oldest goes
            db.execute("DELETE FROM signed_uploads WHERE created <= (SELECT MIN(created) FROM signed_uploads)")
        db.execute(
            "INSERT INTO signed_uploads (id, student, file_url, created) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (id) DO NOTHING",
            (upload_id, student, file_url, now),
        )


def signed_upload(room: Classroom, upload_id: str) -> tuple[str, str] | None:
    """(student, file URL) of an upload id handed out by any instance within the hour."""
    rows = room.query(
        "SELECT student, file_url FROM signed_uploads WHERE id = ? AND created >= ?",
        upload_id,
        time.time() - UPLOAD_LIFETIME,
    )
    return (str(rows[0][0]), str(rows[0][1])) if rows else None


def drop_signed_upload(room: Classroom, upload_id: str) -> None:
    with room.transaction() as db:
        db.execute("DELETE FROM signed_uploads WHERE id = ?", (upload_id,))
