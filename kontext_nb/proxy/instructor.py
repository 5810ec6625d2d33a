"""The instructor's page: who spent what, recent images and refusals, and a Revoke button per student.

Plain server-rendered HTML that refreshes itself every 10 s; no script. Behind the instructor
token: a login form sets an HttpOnly, SameSite=Strict session cookie; every form carries a
CSRF token; every string a student or a roster supplied (names, prompts) is HTML-escaped, and
a Content-Security-Policy forbids scripts besides. Scripts and benches may instead send
``Authorization: Bearer <instructor token>`` to ``/instructor/api/usage``.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from html import escape
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from kontext_nb.serving import read_body

from . import instances
from .roster import token_hash
from .state import LoginSession, Proxy, proxy_of

COOKIE = "kontext_instructor"
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; img-src 'self' https:; style-src 'unsafe-inline'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
SECTIONS: list[Callable[[Proxy, str], str]] = []
"""More sections for the page, each ``section(proxy, csrf) -> HTML`` (the class duel adds one)."""
RUNNING_NOTE = "Revoking refuses the student's next request at once; jobs already running are left to finish."
_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}h1{font-size:1.4em;margin:0}
h2{font-size:1.1em;margin:1.5em 0 .4em}header{display:flex;gap:1em;align-items:center}
table{border-collapse:collapse}th,td{padding:.25em .6em;border-bottom:1px solid #ddd;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}tr[data-status=revoked] td{color:#999}
dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em;margin:0}dt{color:#666}
.note{color:#666;font-size:.9em}button{cursor:pointer}#recent-images{display:flex;flex-wrap:wrap;gap:.8em}
figure{margin:0;width:160px}figure img{width:160px;height:160px;object-fit:cover;background:#eee}
figcaption{font-size:.8em;overflow-wrap:anywhere}.error{color:#b00}
"""


def _current(request: Request) -> tuple[Proxy, LoginSession | None]:
    proxy = proxy_of(request)
    wanted = proxy.classroom.instructor_token_hash()
    if wanted is None:
        return proxy, None
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(token_hash(token.strip()), wanted):
        return proxy, LoginSession(wanted, "", time.time())  # a script: no forms, so no CSRF token
    found = instances.login(proxy.classroom, request.cookies.get(COOKIE, ""))  # through any instance
    if found is None or not hmac.compare_digest(found[0], wanted):
        return proxy, None
    return proxy, LoginSession(*found)


async def _form(request: Request) -> dict[str, str]:
    """A small urlencoded form (no python-multipart needed); anything over 16 KB reads as empty."""

    raw = await read_body(request, 16384)
    return {k: v[0] for k, v in parse_qs((raw or b"").decode("utf-8", "replace")).items()}


def _html(body: str, status: int = 200, *, refresh: bool = False, title: str = "Classroom proxy") -> HTMLResponse:
    meta = '<meta http-equiv="refresh" content="10">' if refresh else ""
    page = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">{meta}<title>{escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body>{body}</body></html>"
    )
    return HTMLResponse(page, status, headers=PAGE_HEADERS)


def _login_form(message: str = "") -> str:
    note = f'<p class="error" id="login-error">{escape(message)}</p>' if message else ""
    return (
        "<h1>Classroom proxy</h1>"
        f'{note}<form id="login" method="post" action="/instructor/login">'
        '<label>Instructor token <input type="password" name="token" autocomplete="current-password" autofocus>'
        '</label> <button type="submit" class="login">Log in</button></form>'
        '<p class="note">The token was printed when the proxy first started; '
        "<code>kontext-nb proxy instructor-token</code> issues a new one.</p>"
    )


async def page(request: Request) -> Response:
    proxy, session = _current(request)
    if session is None:
        return _html(_login_form())
    body = render(proxy.report(""), session.csrf) + "".join(extra(proxy, session.csrf) for extra in SECTIONS)
    return _html(body, refresh=True, title=f"Classroom proxy · {proxy.session}")


async def login(request: Request) -> Response:
    proxy = proxy_of(request)
    wanted = proxy.classroom.instructor_token_hash()
    given = (await _form(request)).get("token", "").strip()
    if wanted is None or not given or not hmac.compare_digest(token_hash(given), wanted):
        return _html(_login_form("That is not the instructor token."), 403)
    sid = secrets.token_urlsafe(32)
    instances.end_old_logins(proxy.classroom, wanted)
    instances.add_login(proxy.classroom, sid, wanted, secrets.token_urlsafe(24))
    response = RedirectResponse("/instructor", 303)
    secure = proxy.base(request).startswith("https://")
    response.set_cookie(COOKIE, sid, httponly=True, samesite="strict", path="/instructor", secure=secure)
    return response


async def logout(request: Request) -> Response:
    proxy = proxy_of(request)
    instances.end_login(proxy.classroom, request.cookies.get(COOKIE, ""))
    response = RedirectResponse("/instructor", 303)
    response.delete_cookie(COOKIE, path="/instructor")
    return response


async def _change(request: Request, revoke: bool) -> Response:
    proxy, session = _current(request)
    form = await _form(request)
    if session is None or not session.csrf or not hmac.compare_digest(form.get("csrf", ""), session.csrf):
        return _html('<h1>Not allowed</h1><p>Log in again: <a href="/instructor">instructor page</a>.</p>', 403)
    name = form.get("name", "")
    try:
        (proxy.classroom.revoke if revoke else proxy.classroom.restore)(name)
    except (KeyError, ValueError):
        return _html(f'<h1>No such student</h1><p>{escape(name)}</p><p><a href="/instructor">back</a></p>', 404)
    return RedirectResponse("/instructor", 303)


async def revoke(request: Request) -> Response:
    return await _change(request, revoke=True)


async def restore(request: Request) -> Response:
    return await _change(request, revoke=False)


async def api_usage(request: Request) -> Response:
    proxy, session = _current(request)
    if session is None:
        return Response('{"detail": "log in at /instructor or send Authorization: Bearer <instructor token>"}', 401)
    return proxy.relay(proxy.report(proxy.base(request)), request)


def routes() -> list[Route]:
    return [
        Route("/instructor", page, methods=["GET"]),
        Route("/instructor/login", login, methods=["POST"]),
        Route("/instructor/logout", logout, methods=["POST"]),
        Route("/instructor/revoke", revoke, methods=["POST"]),
        Route("/instructor/restore", restore, methods=["POST"]),
        Route("/instructor/api/usage", api_usage, methods=["GET"]),
    ]


# ---- rendering -------------------------------------------------------------------------------
def _when(stamp: float | None) -> str:
    if not stamp:
        return "never"
    t = time.localtime(stamp)
    same_day = time.strftime("%Y-%m-%d", t) == time.strftime("%Y-%m-%d")
    return time.strftime("%H:%M:%S" if same_day else "%Y-%m-%d %H:%M", t)


def _of(used: Any, limit: Any, money: bool = False) -> str:
    shown = f"${used:.2f}" if money else str(used)
    if limit is None:
        return f"{shown} / no limit"
    return f"{shown} / " + (f"${limit:.2f}" if money else str(limit))


def _image_src(url: str) -> str | None:
    """Only the proxy's own paths and https URLs become <img> sources (inline images are not kept)."""
    if url.startswith(("/", "https://")):
        return url
    return None


def render(report: dict[str, Any], csrf: str) -> str:
    """The page body for a usage report (Proxy.report("")); every string from outside is escaped."""
    e = escape
    limits, klass = report["limits"], report["class"]
    spent = _of(klass["spent_session"], limits["class_dollars_per_session"], True)
    summary = (
        '<section id="summary"><dl>'
        f'<dt>session</dt><dd id="session">{e(report["session"])}</dd>'
        f'<dt>upstream</dt><dd id="upstream">{e(report["upstream"])}</dd>'
        f'<dt>limits</dt><dd id="limits">{e(report["limits_text"])}</dd>'
        f'<dt>spent this session</dt><dd id="spent">{spent}</dd>'
        f'<dt>images today</dt><dd id="images-today">{_of(klass["images_today"], limits["class_images_per_day"])}</dd>'
        f'<dt>jobs</dt><dd id="jobs"><span class="waiting">{klass["jobs_waiting"]}</span> waiting, '
        f'<span class="in-flight">{klass["jobs_in_flight"]}</span> upstream; {klass["done"]} done, '
        f"{klass['failed']} failed, {klass['cancelled']} cancelled</dd>"
        "</dl></section>"
    )
    rows = []
    for s in report["students"]:
        revoked = s["status"] == "revoked"
        action, label = ("restore", "Restore") if revoked else ("revoke", "Revoke")
        rows.append(
            f'<tr data-student="{e(s["name"])}" data-status="{s["status"]}">'
            f'<td class="name">{e(s["name"])}</td><td class="status">{s["status"]}</td>'
            f'<td class="num images">{_of(s["images_today"], limits["images_per_day"])}</td>'
            f'<td class="num spent">{_of(s["spent_session"], limits["dollars_per_session"], True)}</td>'
            f'<td class="num in-flight">{s["in_flight"]}</td>'
            f'<td class="num done">{s["done"]}</td><td class="num failed">{s["failed"]}</td>'
            f'<td class="num refused">{s["refused_today"]}</td>'
            f'<td class="last-seen">{_when(s["last_seen"])}</td>'
            f'<td><form method="post" action="/instructor/{action}">'
            f'<input type="hidden" name="csrf" value="{e(csrf)}">'
            f'<input type="hidden" name="name" value="{e(s["name"])}">'
            f'<button type="submit" class="{action}">{label}</button></form></td></tr>'
        )
    students = (
        f'<section><h2>Students</h2><p class="note">{RUNNING_NOTE}</p><table id="students"><thead><tr>'
        "<th>name</th><th>status</th><th>images today</th><th>spent this session</th><th>in flight</th>"
        "<th>done</th><th>failed</th><th>refused today</th><th>last seen</th><th></th></tr></thead>"
        f"<tbody>{''.join(rows) or '<tr><td colspan=10>no students yet</td></tr>'}</tbody></table></section>"
    )
    figures = []
    for item in report["recent_images"]:
        src = _image_src(item["urls"][0]) if item["urls"] else None
        img = f'<img src="{e(src)}" alt="{e(item["prompt"])}" loading="lazy">' if src else ""
        figures.append(
            f'<figure class="recent-image" data-job="{e(item["job"])}" data-student="{e(item["student"])}">{img}'
            f"<figcaption><b>{e(item['student'])}</b> · {e(item['prompt'])} · ${item['cost']:.2f} · "
            f"{_when(item['finished'])}</figcaption></figure>"
        )
    images = (
        '<section><h2>Recent images</h2><div id="recent-images">'
        f"{''.join(figures) or '<p class=note>none yet</p>'}</div></section>"
    )
    refusal_rows = [
        f'<tr class="refusal" data-kind="{e(r["kind"])}" data-student="{e(r["student"] or "")}">'
        f"<td>{_when(r['at'])}</td><td>{e(r['student'] or '?')}</td><td>{e(r['kind'])}</td>"
        f'<td class="num count">{r["count"]}</td><td>{e(r["message"])}</td><td>{e(r["prompt"] or "")}</td></tr>'
        for r in report["recent_refusals"]
    ]
    refusals = (
        '<section><h2>Refusals today, per student</h2><table id="refusals"><thead><tr><th>latest</th>'
        "<th>student</th><th>limit</th><th>times</th><th>latest message</th><th>latest prompt</th></tr></thead>"
        f"<tbody>{''.join(refusal_rows) or '<tr><td colspan=6>none</td></tr>'}</tbody></table></section>"
    )
    header = (
        "<header><h1>Classroom proxy</h1>"
        '<form method="post" action="/instructor/logout"><button type="submit" class="logout">Log out</button>'
        "</form></header>"
    )
    return header + summary + students + images + refusals


# the class duel's routes (duel.py) use the same login, form reading and page shell
current, form, html_page = _current, _form, _html
