"""What the instructor sees, read from the classroom's state: students, recent images, refusals, the class's usage.

Every number is read from the state every instance shares (quotas from the spend ledger), so the page is the
same whichever instance serves it.
"""

from __future__ import annotations

import json
import time
from datetime import date
from typing import TYPE_CHECKING, Any

from .limits import to_dollars

if TYPE_CHECKING:
    from .classroom import Classroom


def today() -> str:
    """The proxy's local calendar day: images per day count over it."""
    return date.today().isoformat()


def students(room: Classroom, session: str | None = None, day: str | None = None) -> list[dict[str, Any]]:
    """One row per student: status, images today, spent this session, job counts, last seen."""
    session, day = session or today(), day or today()
    rows = room.query(
        """
        SELECT s.name, s.revoked_at, s.last_seen, s.created,
          (SELECT COALESCE(SUM(images), 0) FROM ledger l WHERE l.student = s.name AND l.day = ?) AS images_today,
          (SELECT COALESCE(SUM(micros), 0) FROM ledger l WHERE l.student = s.name AND l.session = ?) AS spent,
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
        FROM students s ORDER BY lower(s.name), s.name
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
                "images_today": int(r["images_today"]),  # PostgreSQL sums are decimals
                "spent_session": to_dollars(int(r["spent"])),
                "jobs": int(r["jobs"]),
                "done": int(r["done"]),
                "failed": int(r["failed"]),
                "cancelled": int(r["cancelled"]),
                "refused_today": int(r["refused"]),
                "waiting": int(r["waiting"]),
                "running": int(r["running"]),
                "in_flight": int(r["waiting"]) + int(r["running"]),
                "last_seen": seen,
            }
        )
    return out


def recent_images(room: Classroom, limit: int = 12) -> list[dict[str, Any]]:
    rows = room.query(
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


def recent_refusals(room: Classroom, since: float, per_student: int = 5) -> list[dict[str, Any]]:
    """Refusals since ``since`` per student and reason (count, latest time, message and prompt), each student's
    latest ``per_student`` reasons: one student's flood cannot push another's refusal off the page."""
    rows = room.query(
        """
        SELECT student, kind, total AS count, at, endpoint, prompt, message FROM (
          SELECT student, kind, SUM(count) OVER w AS total,
            ROW_NUMBER() OVER (PARTITION BY student, kind ORDER BY at DESC) AS latest,
            at, endpoint, prompt, message
          FROM refusals WHERE at >= ? WINDOW w AS (PARTITION BY student, kind)
        ) AS counted WHERE latest = 1 ORDER BY at DESC
        """,
        since,
    )
    shown: dict[str, int] = {}
    out = []
    for r in rows:
        name = r["student"] or None
        shown[name or ""] = shown.get(name or "", 0) + 1
        if shown[name or ""] <= per_student:
            out.append({**dict(r), "student": name, "count": int(r["count"])})
    return out


def usage(room: Classroom, session: str | None = None, day: str | None = None) -> dict[str, Any]:
    """Everything the instructor page shows, as plain data (also served as JSON)."""
    session, day = session or today(), day or today()
    klass = room.class_usage(day, session)
    waiting = room.query("SELECT COUNT(*) FROM jobs WHERE state = 'waiting'")[0][0]
    outcomes = {
        str(r[0]): int(r[1])
        for r in room.query(
            "SELECT outcome, COUNT(*) FROM jobs WHERE session = ? AND outcome IS NOT NULL GROUP BY outcome", session
        )
    }
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
        "students": students(room, session, day),
        "recent_images": recent_images(room),
        "recent_refusals": recent_refusals(room, _day_start(day)),
    }


def _day_start(day: str) -> float:
    return time.mktime(date.fromisoformat(day).timetuple())
