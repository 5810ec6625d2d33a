"""Issue 21, point 4: the class duel is blind and one pair at a time.

Before: pair keys were the proxy's request ids (each author holds hers), any pair of the duel could be voted on
(11 of 11 self-votes on pairs never offered counted), one pair showed the same image twice.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import sqlite3
from collections.abc import Callable

import httpx

from kontext_nb.proxy import ProxyServer

from .conftest import T2I, auth, poll_completed

AUTHORS = {"Mallory": 3, "Ada": 2, "Grace": 2, "Linus": 1}


def start_duel(server: ProxyServer, count: int) -> None:
    client = httpx.Client(base_url=server.url, trust_env=False, timeout=30.0)
    token = server.classroom.new_instructor_token()
    client.post("/instructor/login", data={"token": token})
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/instructor").text)
    assert csrf
    assert client.post("/instructor/duel/start", data={"csrf": csrf.group(1), "count": str(count)}).status_code in (
        200,
        303,
    )
    client.close()


def test_a_student_is_offered_one_blind_pair_at_a_time_never_her_own_and_votes_only_on_it(
    make_proxy: Callable[..., ProxyServer],
) -> None:
    server = make_proxy()
    tokens = {name: server.classroom.add_student(name) for name in AUTHORS}
    own: dict[str, set[str]] = {name: set() for name in AUTHORS}  # what each author holds: ids and image URLs
    with httpx.Client(base_url=server.url, trust_env=False, timeout=30.0) as client:
        for name, n in AUTHORS.items():
            for k in range(n):
                job = client.post(f"/{T2I}", json={"prompt": f"{name} {k}"}, headers=auth(tokens[name])).json()
                done = poll_sync(client, job["status_url"], tokens[name])
                assert done["status"] == "COMPLETED"
                result = client.get(job["response_url"], headers=auth(tokens[name])).json()
                own[name] |= {job["request_id"], *(i["url"] for i in result["images"])}
        start_duel(server, sum(AUTHORS.values()))
        mallory = auth(tokens["Mallory"])
        pair = client.get("/kontext/duel/pair", headers=mallory).json()
        assert client.get("/kontext/duel/pair", headers=mallory).json() == pair  # the same pair until answered
        every_id = set().union(*own.values())
        keys = {pair["left"]["key"], pair["right"]["key"]}
        assert not keys & every_id and len(keys) == 2  # opaque: no request id, no image URL
        duel = pair["duel"]
        # votes on pairs never offered: her own job ids, the offered keys swapped or mixed with an id
        mine = sorted(i for i in own["Mallory"] if "/" not in i)
        for left, right in [*itertools.permutations(mine, 2), (pair["right"]["key"], pair["left"]["key"])]:
            refused = client.post(
                "/kontext/duel/vote",
                json={"duel": duel, "left": left, "right": right, "choice": "left"},
                headers=mallory,
            )
            assert refused.status_code == 409, refused.text
        others = sum(n for name, n in AUTHORS.items() if name != "Mallory")
        voted = 0
        while not pair.get("done"):
            urls = {pair["left"]["url"], pair["right"]["url"]}
            assert len(urls) == 2 and not urls & {server.url + u if u.startswith("/") else u for u in own["Mallory"]}
            assert not {u.rsplit("/", 1)[-1] for u in urls} & {u.rsplit("/", 1)[-1] for u in own["Mallory"]}
            body = {"duel": duel, "left": pair["left"]["key"], "right": pair["right"]["key"], "choice": "left"}
            assert client.post("/kontext/duel/vote", json=body, headers=mallory).status_code == 200
            assert client.post("/kontext/duel/vote", json=body, headers=mallory).status_code == 409  # offer used
            voted += 1
            pair = client.get("/kontext/duel/pair", headers=mallory).json()
        assert voted == others * (others - 1) // 2  # every pair of the others' images, none of hers
        linus = client.get("/kontext/duel/pair", headers=auth(tokens["Linus"])).json()
        assert linus["left"]["key"] not in keys and linus["right"]["key"] not in keys  # keys are per voter
    with sqlite3.connect(server.classroom.state_dir / "duel.db") as db:
        rows = db.execute("SELECT job_a, job_b FROM duel_votes").fetchall()
    assert all(a != b and a not in own["Mallory"] and b not in own["Mallory"] for a, b in rows)


def poll_sync(client: httpx.Client, status_url: str, token: str) -> dict[str, object]:
    async def go() -> dict[str, object]:
        async with httpx.AsyncClient(timeout=30.0, trust_env=False) as c:
            return await poll_completed(c, status_url, token)

    return asyncio.run(go())
