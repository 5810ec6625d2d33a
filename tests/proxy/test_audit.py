"""Issue 21, point 6: refusals are counted, not logged one row each, and the page shows them per student."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable

import httpx

from kontext_nb.proxy import Limits, ProxyServer

from .conftest import T2I, auth

FLOOD = 300


def rows_and_count(server: ProxyServer) -> tuple[int, int]:
    with sqlite3.connect(server.classroom.path) as db:
        rows, total = db.execute("SELECT COUNT(*), COALESCE(SUM(count), 0) FROM refusals").fetchone()
    return int(rows), int(total)


def test_a_flood_of_refusals_is_a_few_counted_rows_and_another_students_refusal_stays_on_the_page(
    make_proxy: Callable[..., ProxyServer],
) -> None:
    server = make_proxy(limits=Limits(images_per_day=0, dollars_per_session=None), blocklist=["gore"])
    mallory, ada = server.classroom.add_student("Mallory"), server.classroom.add_student("Ada")

    async def flood() -> list[int]:
        async with httpx.AsyncClient(timeout=30.0, trust_env=False) as client:
            calls = [
                client.post(f"{server.url}/{T2I}", json={"prompt": "x"}, headers=auth(mallory)) for _ in range(FLOOD)
            ]
            answers = []
            for start in range(0, FLOOD, 15):  # under the 16 requests at once a token may have
                answers += await asyncio.gather(*calls[start : start + 15])
            return [r.status_code for r in answers]

    with httpx.Client(timeout=30.0, trust_env=False) as client:
        blocked = client.post(f"{server.url}/{T2I}", json={"prompt": "some gore"}, headers=auth(ada))
        assert blocked.status_code == 403
    assert asyncio.run(flood()) == [429] * FLOOD
    rows, total = rows_and_count(server)
    assert total == FLOOD + 1 and rows <= 3  # one per student, reason and minute (a minute may turn once)
    usage = server.classroom.usage(server.proxy.session)
    by_student = {(r["student"], r["kind"]): r for r in usage["recent_refusals"]}
    assert by_student["Ada", "blocklist"]["prompt"] == "some gore" and by_student["Ada", "blocklist"]["count"] == 1
    assert by_student["Mallory", "images-per-day"]["count"] == FLOOD
    students = {s["name"]: s for s in usage["students"]}
    assert (students["Mallory"]["refused_today"], students["Ada"]["refused_today"]) == (FLOOD, 1)

    server.classroom.revoke("Mallory")
    with httpx.Client(timeout=30.0, trust_env=False) as client:
        for _ in range(50):
            assert client.post(f"{server.url}/{T2I}", json={"prompt": "x"}, headers=auth(mallory)).status_code == 403
    rows_after, total_after = rows_and_count(server)
    assert total_after == total + 50 and rows_after <= rows + 2
