"""The class duel: the instructor starts a blind duel over the class's images; students vote from their notebooks.

The instructor page's "Class duel" section starts one over the last N finished images (and stops it); while it
runs, a student's ``kx.duel()`` (a session whose base URL is the proxy) asks ``GET /kontext/duel/pair`` for two
images it has not judged yet, the pair that teaches the class the most, and answers ``POST /kontext/duel/vote``.

Blind and one pair at a time: each voter is offered one pair (asking again gives the same one until it is
answered), never an image of their own and never an image against itself; its two sides carry opaque keys issued
for that voter and that offer only, and a vote counts only when it names the pair on offer. One vote per student
per pair: the pair is the primary key, so a second answer is refused (409), however many requests race. The
prompts are revealed only in the answer to the vote, never who made the images. Votes and
duels live in ``duel.db`` beside ``classroom.db`` in the state folder; the ranking on the instructor page is the
same Bradley–Terry fit as ``kx.ranking``. On PostgreSQL the duel's tables are in the class's database: one duel
for every instance.
"""

from __future__ import annotations

import hmac
import json
import random
import secrets
import threading
import time
import weakref
from html import escape
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from kontext_nb.journal import database
from kontext_nb.journal.db import Vote
from kontext_nb.judging.ranking import fit, next_pair
from kontext_nb.serving import read_body

from . import instructor
from .classroom import LOCK, StateError
from .schema import statements
from .state import proxy_of

if TYPE_CHECKING:
    from .state import Proxy

DB_NAME = "duel.db"
DEFAULT_COUNT = 12
MAX_COUNT = 200
_SCHEMA = """
CREATE TABLE IF NOT EXISTS duels (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    stopped REAL,
    jobs TEXT NOT NULL                 -- JSON list of the classroom job ids in the duel
);
CREATE TABLE IF NOT EXISTS duel_votes (
    duel_id INTEGER NOT NULL,
    student TEXT NOT NULL,
    job_a TEXT NOT NULL,               -- the pair, in sorted order
    job_b TEXT NOT NULL,
    winner TEXT,                       -- job_a, job_b, or NULL for a tie
    at REAL NOT NULL,
    PRIMARY KEY (duel_id, student, job_a, job_b)
);
CREATE TABLE IF NOT EXISTS duel_offers (  -- the one pair on offer to each voter, under keys only they were given
    duel_id INTEGER NOT NULL,
    student TEXT NOT NULL,
    left_key TEXT NOT NULL,
    left_job TEXT NOT NULL,
    right_key TEXT NOT NULL,
    right_job TEXT NOT NULL,
    PRIMARY KEY (duel_id, student)
);
"""


class Duels:
    """The class duels of one state: ``duel.db`` beside ``classroom.db`` (SQLite), or the class's PostgreSQL
    database (the tables of every instance). Safe between threads."""

    def __init__(self, db: database.Database) -> None:
        self.db = db
        with db.write(LOCK) as tx:
            for statement in statements(database.ddl(_SCHEMA) if tx.dialect == "postgresql" else _SCHEMA):
                tx.execute(statement)

    def close(self) -> None:
        self.db.close()

    def start(self, jobs: list[str]) -> int:
        """A new duel over these classroom jobs; any running one stops."""
        with self.db.write(LOCK) as tx:
            now = time.time()
            tx.execute("UPDATE duels SET stopped = ? WHERE stopped IS NULL", (now,))
            return int(tx.insert("INSERT INTO duels (created, jobs) VALUES (?, ?)", (now, json.dumps(jobs))))

    def stop(self) -> None:
        with self.db.write(LOCK) as tx:
            tx.execute("UPDATE duels SET stopped = ? WHERE stopped IS NULL", (time.time(),))

    def active(self) -> tuple[int, list[str]] | None:
        row = self.db.one("SELECT id, jobs FROM duels WHERE stopped IS NULL ORDER BY id DESC")
        return (int(row["id"]), list(json.loads(row["jobs"]))) if row else None

    def offer(self, duel_id: int, student: str, tx: database.Tx | None = None) -> tuple[str, str, str, str] | None:
        """(left key, left job, right key, right job) on offer to this student, if any."""
        sql = "SELECT left_key, left_job, right_key, right_job FROM duel_offers WHERE duel_id = ? AND student = ?"
        row = tx.execute(sql, (duel_id, student)).fetchone() if tx is not None else self.db.one(sql, (duel_id, student))
        return (row[0], row[1], row[2], row[3]) if row else None

    def make_offer(self, duel_id: int, student: str, left: str, right: str) -> tuple[str, str, str, str]:
        """Offer this pair to this student under fresh opaque keys (replacing nothing: one offer at a time, asked
        through any instance)."""
        if left == right:
            raise ValueError("a pair needs two different images")
        offer = (secrets.token_urlsafe(12), left, secrets.token_urlsafe(12), right)
        with self.db.write(LOCK) as tx:
            tx.execute(
                "INSERT INTO duel_offers VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (duel_id, student) DO NOTHING",
                (duel_id, student, *offer),
            )
            found = self.offer(duel_id, student, tx)
        assert found is not None
        return found

    def vote(self, duel_id: int, student: str, left_key: str, right_key: str, choice: str) -> str:
        """Record a vote on the pair on offer: 'ok', 'not-offered' (keys of no pair offered to this student) or
        'voted' (already voted on this pair). The offer ends with the vote. One writer at a time: two answers
        racing through two instances are one vote and one refusal."""
        with self.db.write(LOCK) as tx:
            offer = self.offer(duel_id, student, tx)
            if offer is None or (left_key, right_key) != (offer[0], offer[2]):
                return "not-offered"
            left, right = offer[1], offer[3]
            a, b = sorted((left, right))
            winner = None if choice == "tie" else (left if choice == "left" else right)
            voted = tx.execute(
                "SELECT 1 FROM duel_votes WHERE duel_id = ? AND student = ? AND job_a = ? AND job_b = ?",
                (duel_id, student, a, b),
            ).fetchone()
            if voted:
                return "voted"
            tx.execute("DELETE FROM duel_offers WHERE duel_id = ? AND student = ?", (duel_id, student))
            tx.execute(
                "INSERT INTO duel_votes (duel_id, student, job_a, job_b, winner, at) VALUES (?, ?, ?, ?, ?, ?)",
                (duel_id, student, a, b, winner, time.time()),
            )
            return "ok"

    def votes(self, duel_id: int) -> list[dict[str, Any]]:
        rows = self.db.read("SELECT * FROM duel_votes WHERE duel_id = ? ORDER BY at", (duel_id,))
        return [dict(r) for r in rows]


def as_votes(rows: list[dict[str, Any]], index: dict[str, int]) -> list[Vote]:
    """Class votes as journal-style votes between integer ids (for the Bradley–Terry fit)."""
    out = []
    for k, r in enumerate(rows):
        a, b = index[r["job_a"]], index[r["job_b"]]
        winner, loser = (b, a) if r["winner"] == r["job_b"] else (a, b)
        out.append(Vote(k, r["at"], winner, loser, r["winner"] is None, r["student"], None))
    return out


_OPEN: weakref.WeakKeyDictionary[Proxy, Duels] = weakref.WeakKeyDictionary()
_OPEN_LOCK = threading.Lock()


def duels_of(proxy: Proxy) -> Duels:
    """The duels of a proxy's state folder (opened on first use, one connection per proxy)."""
    with _OPEN_LOCK:
        found = _OPEN.get(proxy)
        if found is None:
            room = proxy.classroom
            db = (
                room.database
                if room.path is None
                else database.SqliteDatabase(room.state_dir / DB_NAME, error=StateError)
            )
            found = _OPEN[proxy] = Duels(db)
        return found


def close_for(proxy: Proxy) -> None:
    """Close the calling thread's connection to the proxy's duels, if they were opened."""
    with _OPEN_LOCK:
        found = _OPEN.get(proxy)
    if found is not None:
        found.close()


def error(status: int, detail: Any) -> JSONResponse:
    """fal's error shape, {"detail": ...}."""
    return JSONResponse({"detail": detail}, status)


def invalid(field: str | None, message: str) -> JSONResponse:
    """A 422 in fal's shape."""
    return error(422, [{"loc": ["body", field] if field else ["body"], "msg": message, "type": "value_error"}])


def _image_url(proxy: Proxy, job: dict[str, Any], base: str) -> str | None:
    urls = job.get("image_urls") or []
    return proxy.upstream.outbound(urls[0], base) if urls else None


# ---- students ---------------------------------------------------------------------------------------
async def pair(request: Request) -> Response:
    """The next pair for this student: {"duel", "number", "left": {"key", "url"}, "right": ...} or {"done": true}."""
    proxy = proxy_of(request)
    student = proxy.authenticate(request)
    if isinstance(student, Response):
        return student
    duels = duels_of(proxy)
    active = duels.active()
    if active is None:
        return error(404, "no class duel is running: your instructor starts one on the instructor page")
    duel_id, jobs = active
    index = {job: k for k, job in enumerate(jobs)}
    rows = duels.votes(duel_id)
    mine = {(r["job_a"], r["job_b"]) for r in rows if r["student"] == student.name}
    offer = duels.offer(duel_id, student.name)
    if offer is None:
        authors = {job: (proxy.classroom.job(job) or {}).get("student") for job in jobs}
        theirs = [index[job] for job in jobs if authors[job] != student.name]  # never a student's own image
        if len(mine) >= len(theirs) * (len(theirs) - 1) // 2:
            return JSONResponse({"duel": duel_id, "done": True, "voted": len(mine)})
        chosen = next_pair(theirs, as_votes(rows, index), student.name, random.Random())
        if chosen is None:
            return error(404, "the class duel has fewer than two images by other students")
        offer = duels.make_offer(duel_id, student.name, jobs[chosen[0]], jobs[chosen[1]])
    base = proxy.base(request)
    answer: dict[str, Any] = {"duel": duel_id, "number": len(mine) + 1, "done": False}
    for side, key, job_id in (("left", offer[0], offer[1]), ("right", offer[2], offer[3])):
        job = proxy.classroom.job(job_id) or {}
        answer[side] = {"key": key, "url": _image_url(proxy, job, base)}
    return JSONResponse(answer)


async def vote(request: Request) -> Response:
    """{"duel", "left", "right", "choice"}: one vote; answers with what the two images were (prompts only)."""
    proxy = proxy_of(request)
    student = proxy.authenticate(request)
    if isinstance(student, Response):
        return student
    raw = await read_body(request, 4096)
    try:
        body = json.loads(raw or b"")
    except ValueError:
        return invalid(None, "the body must be JSON: {duel, left, right, choice}")
    if not isinstance(body, dict):
        return invalid(None, "the body must be a JSON object: {duel, left, right, choice}")
    choice, left, right = body.get("choice"), body.get("left"), body.get("right")
    if choice not in ("left", "right", "tie"):
        return invalid("choice", f"choice={choice!r} is not allowed: choose one of left, right, tie")
    duels = duels_of(proxy)
    active = duels.active()
    if active is None or active[0] != body.get("duel"):
        return error(404, "that class duel is not running any more")
    offer = duels.offer(active[0], student.name)
    if not isinstance(left, str) or not isinstance(right, str):
        return invalid("left", "left and right must be the keys of the pair you were offered")
    outcome = duels.vote(active[0], student.name, left, right, str(choice))
    if outcome == "voted":
        return error(409, "you already voted on this pair")
    if outcome != "ok" or offer is None:
        return error(409, "you can vote only on the pair you were offered: ask for a pair (GET /kontext/duel/pair)")
    reveal = {}
    for side, job_id in (("left", offer[1]), ("right", offer[3])):
        job = proxy.classroom.job(job_id) or {}
        reveal[side] = {"ref": "", "prompt": job.get("prompt", ""), "model": "", "settings": ""}
    return JSONResponse({"ok": True, **reveal})


# ---- the instructor ---------------------------------------------------------------------------------
async def start(request: Request) -> Response:
    return await _change(request, start=True)


async def stop(request: Request) -> Response:
    return await _change(request, start=False)


async def _change(request: Request, *, start: bool) -> Response:
    proxy, session = instructor.current(request)
    form = await instructor.form(request)
    if session is None or not session.csrf or not hmac.compare_digest(form.get("csrf", ""), session.csrf):
        return instructor.html_page('<h1>Not allowed</h1><p>Log in again: <a href="/instructor">back</a>.</p>', 403)
    duels = duels_of(proxy)
    if start:
        try:
            count = max(2, min(MAX_COUNT, int(form.get("count", DEFAULT_COUNT))))
        except ValueError:
            count = DEFAULT_COUNT
        seen: set[str] = set()  # one entry per picture: the same image twice would be a pair against itself
        jobs = []
        for item in proxy.classroom.recent_images(count):
            if item["urls"] and item["urls"][0] not in seen:
                seen.add(item["urls"][0])
                jobs.append(item["job"])
        if len(jobs) < 2:
            return instructor.html_page(
                '<h1>Not enough images</h1><p>A duel needs two finished images.</p><p><a href="/instructor">back</a>',
                409,
            )
        duels.start(jobs)
    else:
        duels.stop()
    return RedirectResponse("/instructor", 303)


def section(proxy: Proxy, csrf: str) -> str:
    """The instructor page's "Class duel" section: start/stop, votes so far, the ranking with thumbnails."""
    duels = duels_of(proxy)
    active = duels.active()
    token = f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
    if active is None:
        return (
            '<section id="class-duel"><h2>Class duel</h2><p class="note">A blind duel over the class\'s latest '
            "images: students run <code>kx.duel()</code> in their notebooks and vote with ← → and =.</p>"
            f'<form method="post" action="/instructor/duel/start">{token}'
            f'<label>images <input type="number" name="count" value="{DEFAULT_COUNT}" min="2" max="{MAX_COUNT}">'
            '</label> <button type="submit" class="start-duel">Start a class duel</button></form></section>'
        )
    duel_id, jobs = active
    rows = duels.votes(duel_id)
    index = {job: k for k, job in enumerate(jobs)}
    result = fit(list(range(len(jobs))), as_votes(rows, index))
    order = sorted(range(len(jobs)), key=lambda k: -result.score[k])
    table = []
    for place, k in enumerate(order, start=1):
        job = proxy.classroom.job(jobs[k]) or {}
        src = _image_url(proxy, job, "")
        img = f'<img src="{escape(src)}" alt="" style="width:64px;height:64px">' if src and src.startswith("/") else ""
        table.append(
            f'<tr class="duel-rank" data-job="{escape(jobs[k])}"><td class="num">{place}</td><td>{img}</td>'
            f"<td>{escape(str(job.get('student', '?')))}</td><td>{escape(str(job.get('prompt', '')))}</td>"
            f'<td class="num">{result.score[k]:+.2f} ± {result.uncertainty[k]:.2f}</td>'
            f'<td class="num">{int(result.wins[k])}</td><td class="num">{int(result.losses[k])}</td>'
            f'<td class="num">{int(result.ties[k])}</td></tr>'
        )
    voters = len({r["student"] for r in rows})
    votes_word, voters_word = ("vote" if len(rows) == 1 else "votes"), ("student" if voters == 1 else "students")
    return (
        f'<section id="class-duel" data-duel="{duel_id}"><h2>Class duel</h2>'
        f'<p><span id="duel-votes">{len(rows)}</span> {votes_word} from '
        f'<span id="duel-voters">{voters}</span> {voters_word} over '
        f"{len(jobs)} images (one vote per student per pair; Bradley–Terry score ± standard error).</p>"
        '<table id="duel-ranking"><thead><tr><th>#</th><th></th><th>student</th><th>prompt</th><th>score</th>'
        f"<th>wins</th><th>losses</th><th>ties</th></tr></thead><tbody>{''.join(table)}</tbody></table>"
        f'<form method="post" action="/instructor/duel/stop">{token}'
        '<button type="submit" class="stop-duel">Stop the duel</button></form></section>'
    )


instructor.SECTIONS.append(section)


def routes() -> list[Route]:
    return [
        Route("/kontext/duel/pair", pair, methods=["GET"]),
        Route("/kontext/duel/vote", vote, methods=["POST"]),
        Route("/instructor/duel/start", start, methods=["POST"]),
        Route("/instructor/duel/stop", stop, methods=["POST"]),
    ]
