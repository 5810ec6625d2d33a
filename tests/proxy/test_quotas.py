"""Thirty students submitting at once: every quota holds exactly, and refusals never reach the upstream.

Each student is its own httpx client; all requests go out together (asyncio.gather), so the
proxy's checks and reservations meet real concurrency.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from kontext_nb.proxy import Limits, ProxyServer
from kontext_nb.sandbox import SandboxServer

from .conftest import PAUSED, PRO_T2I, T2I, Recorder, auth, enroll, leaks, wait_completed

STUDENTS = 30
LIMIT_HEADER = "x-kontext-limit"

pytestmark = pytest.mark.usefixtures("proxy_state")  # every test on both state backends: SQLite, PostgreSQL


async def burst(
    url: str, tokens: dict[str, str], per_student: int, recorder: Recorder, endpoint: str = T2I, **body: Any
) -> dict[str, list[httpx.Response]]:
    """Every student sends ``per_student`` submits, all at the same time; answers by student."""
    clients = {name: recorder.client() for name in tokens}
    try:
        calls = [
            clients[name].post(f"{url}/{endpoint}", json={"prompt": f"{name} #{i}", **body}, headers=auth(token))
            for name, token in tokens.items()
            for i in range(per_student)
        ]
        answers = await asyncio.gather(*calls)
    finally:
        await asyncio.gather(*(c.aclose() for c in clients.values()))
    by_student: dict[str, list[httpx.Response]] = {name: [] for name in tokens}
    for (name, _), response in zip([(n, i) for n in tokens for i in range(per_student)], answers, strict=True):
        by_student[name].append(response)
    return by_student


async def finish_all(
    url: str, tokens: dict[str, str], answers: dict[str, list[httpx.Response]]
) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=30.0, trust_env=False) as client:
        waits = [
            wait_completed(client, r.json()["status_url"], tokens[name])
            for name, responses in answers.items()
            for r in responses
            if r.status_code == 200
        ]
        return list(await asyncio.gather(*waits))


def accepted(responses: list[httpx.Response]) -> int:
    return sum(r.status_code == 200 for r in responses)


def refused_kinds(responses: list[httpx.Response]) -> Counter[tuple[int, str | None]]:
    return Counter((r.status_code, r.headers.get(LIMIT_HEADER)) for r in responses if r.status_code != 200)


@pytest.mark.slow
def test_images_per_day_exactly_three_each(make_proxy: Callable[..., ProxyServer], upstream: SandboxServer) -> None:
    server = make_proxy(Limits(images_per_day=3, dollars_per_session=None, jobs_in_flight=None))
    tokens = enroll(server, STUDENTS)
    recorder = Recorder()
    answers = asyncio.run(burst(server.url, tokens, 5, recorder))
    for name, responses in answers.items():
        assert accepted(responses) == 3, name
        assert refused_kinds(responses) == Counter({(429, "images-per-day"): 2}), name
        refusal = next(r for r in responses if r.status_code == 429)
        assert refusal.headers["x-kontext-proxy"] == "1"
        assert refusal.json()["detail"].startswith("you have made 3 of your 3 images today")
    finals = asyncio.run(finish_all(server.url, tokens, answers))
    assert len(finals) == 90 and all("error" not in f for f in finals)
    assert upstream.stats()["submits"] == 90  # refusals never reached the upstream
    rows = {s["name"]: s for s in server.classroom.students(server.proxy.session)}
    assert all(rows[name]["images_today"] == 3 and rows[name]["spent_session"] == 0.24 for name in tokens)
    assert rows["student 00"]["refused_today"] == 2
    assert recorder.leaks() == []


@pytest.mark.slow
def test_dollars_per_session_exactly_at_the_cap(
    make_proxy: Callable[..., ProxyServer], upstream: SandboxServer
) -> None:
    """$0.20 buys exactly five pro images at $0.04 (where float sums would refuse the fifth)."""
    server = make_proxy(Limits(images_per_day=None, dollars_per_session=0.20, jobs_in_flight=None))
    tokens = enroll(server, STUDENTS)
    answers = asyncio.run(burst(server.url, tokens, 7, Recorder(), endpoint=PRO_T2I))
    for name, responses in answers.items():
        assert accepted(responses) == 5, name
        assert refused_kinds(responses) == Counter({(429, "dollars-per-session"): 2}), name
    usage = server.classroom.usage(server.proxy.session)  # reserved at submit, whether run yet or not
    assert usage["class"]["spent_session"] == pytest.approx(30 * 0.20)
    assert {s["spent_session"] for s in usage["students"]} == {0.2}


@pytest.mark.slow
def test_class_images_per_day_is_reached_exactly(
    make_proxy: Callable[..., ProxyServer], upstream: SandboxServer
) -> None:
    server = make_proxy(
        Limits(images_per_day=None, dollars_per_session=None, jobs_in_flight=None, class_images_per_day=50)
    )
    tokens = enroll(server, STUDENTS)
    answers = asyncio.run(burst(server.url, tokens, 3, Recorder()))
    everyone = [r for responses in answers.values() for r in responses]
    assert sum(r.status_code == 200 for r in everyone) == 50
    assert refused_kinds(everyone) == Counter({(429, "class-images-per-day"): 40})
    assert "the class has made 50 of its 50 images today" in next(r for r in everyone if r.status_code == 429).text


@pytest.mark.slow
def test_jobs_in_flight_and_release_on_cancel(make_proxy: Callable[..., ProxyServer], upstream: SandboxServer) -> None:
    """Two jobs each while the upstream holds them; a cancel gives the slot and the images back."""
    upstream.configure(queue_delay=PAUSED)
    server = make_proxy(Limits(images_per_day=3, dollars_per_session=None, jobs_in_flight=2, class_in_flight=8))
    tokens = enroll(server, STUDENTS)
    answers = asyncio.run(burst(server.url, tokens, 4, Recorder()))
    for name, responses in answers.items():
        assert accepted(responses) == 2, name
        assert refused_kinds(responses) == Counter({(429, "jobs-in-flight"): 2}), name
    name, token = "student 07", tokens["student 07"]
    first = next(r for r in answers[name] if r.status_code == 200).json()
    klass = server.classroom.usage(server.proxy.session)["class"]
    assert (klass["jobs_in_flight"], klass["jobs_waiting"]) == (8, 52)  # class_in_flight upstream, the rest here

    async def cancel_then_resubmit() -> tuple[httpx.Response, httpx.Response, dict[str, Any]]:
        async with httpx.AsyncClient(timeout=30.0, trust_env=False) as client:
            cancel = await client.put(first["cancel_url"], headers=auth(token))
            final = await wait_completed(client, first["status_url"], token)
            body = {"prompt": "again", "num_images": 2}  # 1 image left unless the cancelled one was released
            again = await client.post(f"{server.url}/{T2I}", json=body, headers=auth(token))
            return cancel, again, final

    cancel, again, final = asyncio.run(cancel_then_resubmit())
    assert (cancel.status_code, cancel.json()) == (202, {"status": "CANCELLATION_REQUESTED"})
    assert final["error_type"] == "request_cancelled"
    assert again.status_code == 200, again.text  # the cancelled job's image and slot were released
    upstream.configure(queue_delay=0)
    asyncio.run(finish_all(server.url, tokens, answers))


def test_forged_missing_and_revoked_tokens_never_reach_upstream(
    make_proxy: Callable[..., ProxyServer], upstream: SandboxServer
) -> None:
    server = make_proxy()
    tokens = enroll(server, 10)
    for name in tokens:
        server.classroom.revoke(name)
    forged = {f"forged {i}": "kxs-" + "A" * 32 + str(i) for i in range(10)}
    recorder = Recorder()

    async def attempts() -> list[httpx.Response]:
        async with recorder.client() as client:
            calls = []
            for token in [*tokens.values(), *forged.values(), *[""] * 5, *["Key"] * 5]:
                headers = {"Authorization": token if token in ("", "Key") else f"Key {token}"}
                calls.append(client.post(f"{server.url}/{T2I}", json={"prompt": "x"}, headers=headers))
                calls.append(client.post(f"{server.url}/storage/auth/token?storage_type=fal-cdn-v3", headers=headers))
                calls.append(client.post(f"{server.url}/files/upload", content=b"\x89PNG", headers=headers))
                calls.append(client.post(f"{server.url}/storage/upload/initiate", json={}, headers=headers))
            return list(await asyncio.gather(*calls))

    answers = asyncio.run(attempts())
    codes = Counter(r.status_code for r in answers)
    assert codes == Counter({403: 40, 401: 80})
    revoked = [r for r in answers if r.status_code == 403]
    assert all(r.headers[LIMIT_HEADER] == "revoked" for r in revoked)
    assert all(
        r.json() == {"detail": "unknown token: ask your instructor for yours"} for r in answers if r.status_code == 401
    )
    stats = upstream.stats()
    assert stats["submits"] == 0 and stats["requests"] == {}  # nothing at all reached the upstream
    assert recorder.leaks() == []
    assert all(not leaks(r.text, token) for r in answers for token in tokens.values())
