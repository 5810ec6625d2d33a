"""Round-robin between students: one student's burst cannot starve the others.

The upstream is held (a long queue_delay) while a blocker fills the class's upstream slots
and thirty students each send a burst of three; then it is released. The order in which the
proxy sent jobs upstream is in its db.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

import httpx
import pytest

from kontext_nb.proxy import Limits, ProxyServer
from kontext_nb.sandbox import SandboxServer

from .conftest import PAUSED, T2I, auth, enroll, wait_completed, wait_until

STUDENTS, BURST, SLOTS = 30, 3, 3


@pytest.mark.slow
def test_every_waiting_student_is_served_before_anyone_twice(
    make_proxy: Callable[..., ProxyServer], upstream: SandboxServer
) -> None:
    upstream.configure(queue_delay=PAUSED)
    server = make_proxy(
        Limits(images_per_day=None, dollars_per_session=None, jobs_in_flight=None, class_in_flight=SLOTS)
    )
    blocker = server.classroom.add_student("blocker")
    tokens = enroll(server, STUDENTS)

    async def scenario() -> list[str]:
        async with httpx.AsyncClient(timeout=30.0, trust_env=False) as client:
            first = [
                await client.post(f"{server.url}/{T2I}", json={"prompt": f"block {i}"}, headers=auth(blocker))
                for i in range(SLOTS)
            ]
            assert [r.status_code for r in first] == [200] * SLOTS
            sends = [
                client.post(f"{server.url}/{T2I}", json={"prompt": f"{name} {i}"}, headers=auth(token))
                for name, token in tokens.items()
                for i in range(BURST)
            ]
            burst = await asyncio.gather(*sends)
            assert {r.status_code for r in burst} == {200}
            assert len(server.classroom.dispatch_log()) == SLOTS  # all of the burst waits in the proxy
            owners = [blocker] * SLOTS + [t for t in tokens.values() for _ in range(BURST)]
            statuses = await asyncio.gather(
                *(
                    client.get(r.json()["status_url"], headers=auth(t))
                    for r, t in zip(burst, owners[SLOTS:], strict=True)
                )
            )
            assert {(s.status_code, s.json()["status"]) for s in statuses} == {(202, "IN_QUEUE")}
            positions = [s.json()["queue_position"] for s in statuses]
            assert sorted(positions) == list(range(STUDENTS * BURST))  # a place in line each, told to its student
            for i in range(STUDENTS):  # a student's three are one round apart: k, k+30, k+60
                mine = sorted(positions[i * BURST : (i + 1) * BURST])
                assert mine == [mine[0] + k * STUDENTS for k in range(BURST)]
            upstream.configure(queue_delay=0)
            finals = await asyncio.gather(
                *(
                    wait_completed(client, r.json()["status_url"], tok)
                    for r, tok in zip(first + burst, owners, strict=True)
                )
            )
            assert all("error" not in f for f in finals)
        return [student for _, student, _ in server.classroom.dispatch_log()]

    order = asyncio.run(scenario())
    assert order[:SLOTS] == ["blocker"] * SLOTS
    rest = order[SLOTS:]
    assert len(rest) == STUDENTS * BURST
    for k in range(BURST):  # each round: every student exactly once
        assert sorted(rest[k * STUDENTS : (k + 1) * STUDENTS]) == sorted(tokens), f"round {k + 1}"
    counts: Counter[str] = Counter()
    for student in rest:  # nobody gets k+1 while someone still waiting has fewer than k
        counts[student] += 1
        assert counts[student] - min(counts[s] for s in tokens) <= 1


def test_waiting_positions_count_down(make_proxy: Callable[..., ProxyServer], upstream: SandboxServer) -> None:
    upstream.configure(queue_delay=PAUSED)
    server = make_proxy(Limits(images_per_day=None, dollars_per_session=None, jobs_in_flight=None, class_in_flight=1))
    ada, bo = server.classroom.add_student("Ada"), server.classroom.add_student("Bo")

    def submit(client: httpx.Client, token: str) -> dict[str, str]:
        response = client.post(f"{server.url}/{T2I}", json={"prompt": "x"}, headers=auth(token))
        assert response.status_code == 200
        return dict(response.json())

    def position(client: httpx.Client, job: dict[str, str], token: str) -> tuple[str, object]:
        body = client.get(job["status_url"], headers=auth(token)).json()
        return body["status"], body["queue_position"]

    with httpx.Client(timeout=30.0, trust_env=False) as client:
        a1, a2, a3, b1 = submit(client, ada), submit(client, ada), submit(client, ada), submit(client, bo)
        assert position(client, a1, ada) == ("IN_QUEUE", 0)  # upstream, in the upstream's queue
        assert [position(client, j, t)[1] for j, t in ((a2, ada), (b1, bo), (a3, ada))] == [0, 1, 2]
        upstream.configure(queue_delay=0)
        wait_until(lambda: position(client, a3, ada)[0] == "COMPLETED", "all four jobs done")
        order = [s for _, s, _ in server.classroom.dispatch_log()]
        assert order == ["Ada", "Ada", "Bo", "Ada"]
