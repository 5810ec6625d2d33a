"""Issue 24: two proxy instances serve one class behind a load balancer, sharing one state.

Two real proxies on two ports, one state (a shared SQLite file; PostgreSQL where the server is there), the
students' requests alternating between them as a round-robin load balancer sends them: quotas, the class's
upstream slots, jobs, the instructor's login and page, revocations, audit and the class duel are the class's,
whichever instance a request reaches.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from postgres import PostgresServer  # tests/postgres.py

from kontext_nb.proxy import Bounds, Limits, ProxyServer, instances
from kontext_nb.proxy.classroom import today
from kontext_nb.sandbox import SandboxServer

from .conftest import CLASS_KEY, PAUSED, T2I, UNLIMITED, auth, enroll, poll_completed, wait_completed, wait_until

Pair = Callable[..., tuple[ProxyServer, ProxyServer]]
LIMITS_ONE_SLOT = Limits(images_per_day=None, dollars_per_session=None, jobs_in_flight=None, class_in_flight=1)


def moved(url: str, a: ProxyServer, b: ProxyServer) -> str:
    """The same address at the other instance (what the load balancer's next pick means)."""
    return url.replace(a.url, b.url)


def post(client: httpx.Client, server: ProxyServer, token: str, prompt: str, **body: Any) -> httpx.Response:
    return client.post(f"{server.url}/{T2I}", json={"prompt": prompt, **body}, headers=auth(token))


def test_a_students_quota_holds_when_requests_alternate(make_pair: Pair, upstream: SandboxServer) -> None:
    upstream.configure(queue_delay=PAUSED)  # nothing ends: every accepted job is still reserved
    a, b = make_pair(Limits(images_per_day=3, dollars_per_session=None, jobs_in_flight=None))
    ada = a.classroom.add_student("Ada")

    async def alternate() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30.0, trust_env=False) as client:
            calls = [
                client.post(f"{(a, b)[i % 2].url}/{T2I}", json={"prompt": f"ada {i}"}, headers=auth(ada))
                for i in range(10)
            ]
            return list(await asyncio.gather(*calls))

    answers = asyncio.run(alternate())
    kinds = Counter((r.status_code, r.headers.get("x-kontext-limit")) for r in answers)
    assert kinds == Counter({(200, None): 3, (429, "images-per-day"): 7}), kinds
    with httpx.Client(timeout=30.0, trust_env=False) as client:  # one at a time, each instance in turn
        for server in (a, b, a, b):
            refused = post(client, server, ada, "one more")
            assert refused.status_code == 429 and "3 of your 3 images today" in refused.json()["detail"]
    for server in (a, b):  # the audit: every refusal, whichever instance made it
        rows = {s["name"]: s for s in server.classroom.students(server.proxy.session)}
        assert (rows["Ada"]["images_today"], rows["Ada"]["refused_today"]) == (3, 11)
    assert not [line for line in a.banner() + b.banner() if line.startswith("warning")]  # the same settings
    instances.beat(a.classroom, "elsewhere:8900", "per student 99 images/day")  # one started with others
    assert "warning: instance elsewhere:8900 serves this class with other settings: per student 99" in "\n".join(
        b.banner()
    )


def test_the_class_upstream_slots_are_shared_and_jobs_are_followed_anywhere(
    make_pair: Pair, upstream: SandboxServer
) -> None:
    upstream.configure(queue_delay=PAUSED)
    a, b = make_pair(Limits(images_per_day=None, dollars_per_session=None, jobs_in_flight=None, class_in_flight=2))
    tokens = enroll(a, 3)
    with httpx.Client(timeout=30.0, trust_env=False) as client:
        jobs = [(post(client, server, t, f"{n} via {i}").json(), t) for n, t in tokens.items() for i, server in
                enumerate((a, b))]  # fmt: skip
        assert len(a.classroom.dispatch_log()) == 2  # two upstream for the whole class; four wait
        assert upstream.stats()["submits"] <= 2
        waiting = [job for job, _ in jobs if job["status_url"].startswith(a.url)][-1]
        token = next(t for job, t in jobs if job is waiting)
        elsewhere = client.get(moved(waiting["status_url"], a, b), headers=auth(token))
        assert (elsewhere.status_code, elsewhere.json()["status"]) == (202, "IN_QUEUE")
        assert elsewhere.json()["queue_position"] is not None
        cancel = client.put(moved(waiting["cancel_url"], a, b), headers=auth(token))  # waiting on A, cancelled on B
        assert (cancel.status_code, cancel.json()) == (202, {"status": "CANCELLATION_REQUESTED"})
        upstream.configure(queue_delay=0)

        async def follow() -> list[dict[str, Any]]:
            async with httpx.AsyncClient(timeout=30.0, trust_env=False) as aclient:
                waits = [  # each job followed on the instance it was not sent to: streams and polls
                    (wait_completed if k % 2 else poll_completed)(aclient, moved(job["status_url"], a, b)
                     if job["status_url"].startswith(a.url) else moved(job["status_url"], b, a), t)
                    for k, (job, t) in enumerate(jobs)
                ]  # fmt: skip
                return list(await asyncio.gather(*waits))

        finals = asyncio.run(follow())
        outcomes = Counter(f.get("error_type") for f in finals)
        assert outcomes == Counter({None: 5, "request_cancelled": 1}), outcomes
        assert upstream.stats()["submits"] == 5  # the cancelled one never went; none went twice
        log = a.classroom.dispatch_log()
        assert len(log) == 5 and len({seq for seq, _, _ in log}) == 5
        for job, t in jobs:
            if job is not waiting:
                result = client.get(moved(job["response_url"], a, b), headers=auth(t))
                assert result.status_code == 200 and len(result.json()["images"]) == 1
        assert post(client, b, token, "after the cancel").status_code == 200


def instructor_login(client: httpx.Client, server: ProxyServer) -> str:
    token = server.classroom.new_instructor_token()
    assert client.post(f"{server.url}/instructor/login", data={"token": token}).status_code in (200, 303)
    found = re.search(r'name="csrf" value="([^"]+)"', client.get(f"{server.url}/instructor").text)
    assert found, "not logged in"
    return found.group(1)


def test_the_instructor_logs_in_once_and_a_revocation_holds_everywhere(
    make_pair: Pair, upstream: SandboxServer
) -> None:
    a, b = make_pair()
    ada = a.classroom.add_student("Ada")
    with httpx.Client(timeout=30.0, trust_env=False) as browser, httpx.Client(trust_env=False) as client:
        job = post(client, a, ada, "a fox").json()
        poll_completed_sync(client, job["status_url"], ada)
        csrf = instructor_login(browser, a)  # logged in through A; the cookie is the class's
        usage = browser.get(f"{b.url}/instructor/api/usage").json()
        assert usage["class"]["done"] == 1 and usage["recent_images"][0]["job"] == job["request_id"]
        assert 'data-student="Ada"' in browser.get(f"{b.url}/instructor").text
        revoked = browser.post(f"{b.url}/instructor/revoke", data={"name": "Ada", "csrf": csrf})
        assert revoked.status_code in (200, 303)
        for server in (a, b):
            denied = post(client, server, ada, "x")
            assert (denied.status_code, denied.headers["x-kontext-limit"]) == (403, "revoked")
        browser.post(f"{a.url}/instructor/restore", data={"name": "Ada", "csrf": csrf})
        assert post(client, b, ada, "back again").status_code == 200
        browser.post(f"{b.url}/instructor/logout")
        assert browser.get(f"{a.url}/instructor/api/usage").status_code == 401  # logged out everywhere


def poll_completed_sync(client: httpx.Client, status_url: str, token: str) -> None:
    wait_until(lambda: client.get(status_url, headers=auth(token)).status_code == 200, f"{status_url} done")


def test_the_class_duel_is_one_duel_on_both_instances(make_pair: Pair, upstream: SandboxServer) -> None:
    a, b = make_pair()
    tokens = enroll(a, 3)
    names = list(tokens)
    with httpx.Client(timeout=30.0, trust_env=False) as browser, httpx.Client(trust_env=False) as client:
        for k, (name, token) in enumerate(tokens.items()):
            job = post(client, (a, b)[k % 2], token, f"{name}'s lighthouse", seed=k + 1).json()
            poll_completed_sync(client, job["status_url"], token)
        csrf = instructor_login(browser, a)
        assert browser.post(f"{a.url}/instructor/duel/start", data={"csrf": csrf, "count": "3"}).status_code in (
            200,
            303,
        )
        voter = tokens[names[0]]
        offered = client.get(f"{b.url}/kontext/duel/pair", headers=auth(voter)).json()  # asked on B
        same = client.get(f"{a.url}/kontext/duel/pair", headers=auth(voter)).json()  # and again on A: one offer
        assert (offered["left"]["key"], offered["right"]["key"]) == (same["left"]["key"], same["right"]["key"])
        vote = {"duel": offered["duel"], "left": offered["left"]["key"], "right": offered["right"]["key"]}
        assert client.post(
            f"{a.url}/kontext/duel/vote", json={**vote, "choice": "left"}, headers=auth(voter)
        ).is_success
        twice = client.post(f"{b.url}/kontext/duel/vote", json={**vote, "choice": "right"}, headers=auth(voter))
        assert twice.status_code == 409
        other = tokens[names[1]]
        pair = client.get(f"{a.url}/kontext/duel/pair", headers=auth(other)).json()
        body = {"duel": pair["duel"], "left": pair["left"]["key"], "right": pair["right"]["key"], "choice": "tie"}
        assert client.post(f"{b.url}/kontext/duel/vote", json=body, headers=auth(other)).is_success
        page = browser.get(f"{b.url}/instructor").text
        assert '<span id="duel-votes">2</span> votes' in page and '<span id="duel-voters">2</span> students' in page
        assert browser.post(f"{b.url}/instructor/duel/stop", data={"csrf": csrf}).status_code in (200, 303)
        stopped = client.get(f"{a.url}/kontext/duel/pair", headers=auth(voter))
        assert stopped.status_code == 404


def test_an_upload_begun_on_one_instance_ends_on_the_other(make_pair: Pair, upstream: SandboxServer) -> None:
    from .test_reservations import png

    a, b = make_pair()
    ada = a.classroom.add_student("Ada")
    with httpx.Client(timeout=30.0, trust_env=False) as client:
        start = client.post(
            f"{a.url}/storage/upload/initiate?storage_type=gcs",
            json={"file_name": "a.png", "content_type": "image/png"},
            headers=auth(ada),
        ).json()
        assert start["upload_url"].startswith(a.url)
        assert client.put(moved(start["upload_url"], a, b), content=png(64)).status_code == 200
        assert client.get(moved(start["file_url"], a, b)).status_code == 200


def test_a_stopped_instance_hands_its_jobs_to_the_other(make_pair: Pair, upstream: SandboxServer) -> None:
    """A rolling restart: A stops with one job upstream and two waiting; B takes them up, nothing is sent twice."""
    upstream.configure(queue_delay=PAUSED)
    a, b = make_pair(Limits(images_per_day=None, dollars_per_session=None, jobs_in_flight=None, class_in_flight=1))
    ada = a.classroom.add_student("Ada")
    with httpx.Client(timeout=30.0, trust_env=False) as client:
        jobs = [post(client, a, ada, f"before the stop {i}").json() for i in range(3)]
        wait_until(lambda: upstream.stats()["submits"] == 1, "one job upstream")
        a.stop()
        upstream.configure(queue_delay=0)
        for job in jobs:
            poll_completed_sync(client, moved(job["status_url"], a, b), ada)
            result = client.get(moved(job["response_url"], a, b), headers=auth(ada))
            assert result.status_code == 200 and result.json()["images"][0]["url"].startswith(b.url)
    assert upstream.stats()["submits"] == 3


def test_the_database_going_away_mid_run_loses_nothing_paid(
    make_proxy: Callable[..., ProxyServer], upstream: SandboxServer, pg_server: PostgresServer, pg_url: str
) -> None:
    """PostgreSQL stops with jobs upstream and comes back: meanwhile students get one clear line (and a 503 their
    clients retry), the jobs that finished upstream are stored once it is back, nothing is sent twice."""
    url = pg_url.replace("kontext@", "kontext:never-shown@")  # trust ignores it; no output may show it
    upstream.configure(queue_delay=PAUSED)
    a, b = make_proxy(UNLIMITED, state_dir=url), make_proxy(UNLIMITED, state_dir=url)
    ada = a.classroom.add_student("Ada")
    with httpx.Client(timeout=30.0, trust_env=False) as client:
        jobs = [post(client, server, ada, f"through the outage {i}").json() for i, server in enumerate((a, b))]
        wait_until(lambda: upstream.stats()["submits"] == 2, "both jobs upstream")
        pg_server.stop()
        try:
            upstream.configure(queue_delay=0)  # they finish upstream while the state is away
            for server in (a, b):
                refused = post(client, server, ada, "during the outage")
                assert refused.status_code == 503 and refused.headers["retry-after"]
                assert refused.json()["detail"].startswith("the classroom proxy cannot reach its database just now")
                assert "never-shown" not in refused.text and "postgresql" not in refused.text
            elsewhere = client.get(moved(jobs[0]["status_url"], a, b), headers=auth(ada))
            assert elsewhere.status_code == 503
        finally:
            pg_server.start()
        for job, server, other in ((jobs[0], a, b), (jobs[1], b, a)):
            poll_completed_sync(client, moved(job["status_url"], server, other), ada)
            result = client.get(moved(job["response_url"], server, other), headers=auth(ada))
            assert result.status_code == 200 and len(result.json()["images"]) == 1
    assert upstream.stats()["submits"] == 2
    rows = {s["name"]: s for s in a.classroom.students(a.proxy.session)}
    assert (rows["Ada"]["images_today"], rows["Ada"]["done"]) == (2, 2)  # settled once each, in the ledger
    assert "never-shown" not in repr(a) + "\n".join(a.banner())


LOST = """
import sys, time
from kontext_nb.config import RetryPolicy
from kontext_nb.proxy import Limits, ProxyConfig, start
limits = Limits(images_per_day=None, dollars_per_session=None, jobs_in_flight=None, class_in_flight=1)
retry = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.1)
server = start(ProxyConfig(state_dir=sys.argv[1], port=0, upstream=sys.argv[2], limits=limits, retry=retry,
                           heartbeat=0.3, poll_interval=0.02))
print(server.url, flush=True)
time.sleep(600)
"""


@pytest.mark.slow
def test_a_killed_instances_jobs_are_taken_over_only_once_its_heartbeat_lapses(
    make_proxy: Callable[..., ProxyServer], upstream: SandboxServer, pg_url: str
) -> None:
    """kill -9 of the instance (a process of its own, as on another host) that sent a job and holds another waiting:
    the other takes both over once the killed one's heartbeat is six beats old (never while it lives); the job at
    fal is watched, not sent again. (On a SQLite folder the same code runs: the stopped-instance test covers it.)"""
    upstream.configure(queue_delay=PAUSED)
    state = pg_url
    b = make_proxy(LIMITS_ONE_SLOT, state_dir=state, heartbeat=0.3)
    ada = b.classroom.add_student("Ada")
    env = {**os.environ, "FAL_KEY": CLASS_KEY}
    lost = subprocess.Popen(
        [sys.executable, "-c", LOST, state, upstream.url], stdout=subprocess.PIPE, env=env, text=True
    )
    try:
        assert lost.stdout is not None
        a_url = lost.stdout.readline().strip()
        assert a_url.startswith("http://"), "the instance to be killed did not start"
        with httpx.Client(timeout=30.0, trust_env=False) as client:
            jobs = [client.post(f"{a_url}/{T2I}", json={"prompt": f"a {i}"}, headers=auth(ada)).json() for i in (0, 1)]
            wait_until(lambda: upstream.stats()["submits"] == 1, "one job upstream, one waiting")
            first = b.classroom.query("SELECT last_seen FROM instances WHERE id <> ?", b.proxy.dispatcher.me)[0][0]
            wait_until(  # alive for longer than a takeover would take: B must not have taken its jobs
                lambda: (
                    b.classroom.query("SELECT MAX(last_seen) FROM instances WHERE id <> ?", b.proxy.dispatcher.me)[0][0]
                    > first + 3.0
                ),
                "the other instance beating for 3 s",
            )
            owners = {r[0] for r in b.classroom.query("SELECT owner FROM jobs")}
            assert owners == {next(iter(owners))} and b.proxy.dispatcher.me not in owners, owners
            lost.kill()  # kill -9
            lost.wait()
            upstream.configure(queue_delay=0)
            for job in jobs:
                status_url = job["status_url"].replace(a_url, b.url)
                poll_completed_sync(client, status_url, ada)
                result = client.get(status_url.removesuffix("/status"), headers=auth(ada))
                assert result.status_code == 200 and result.json()["images"][0]["url"].startswith(b.url)
        assert upstream.stats()["submits"] == 2  # the one at fal was watched again, not sent again
        assert {r[0] for r in b.classroom.query("SELECT owner FROM jobs")} == {b.proxy.dispatcher.me}
    finally:
        lost.kill()
        lost.wait()
        if lost.stdout is not None:
            lost.stdout.close()


def test_the_daily_upload_allowance_holds_when_uploads_race_across_instances(make_pair: Pair) -> None:
    from .test_reservations import png

    image = png(64)
    a, b = make_pair(bounds=Bounds(upload_bytes_per_day=2 * len(image)))
    ada = a.classroom.add_student("Ada")

    async def race() -> list[tuple[int, str | None]]:
        async with httpx.AsyncClient(timeout=30.0, trust_env=False) as client:
            calls = [
                client.post(f"{server.url}/files/upload", content=image, headers=auth(ada)) for server in (a, b, a, b)
            ]
            return [(r.status_code, r.headers.get("x-kontext-limit")) for r in await asyncio.gather(*calls)]

    answers = Counter(asyncio.run(race()))  # counted before the bytes are sent upstream, in one transaction
    assert answers == Counter({(200, None): 2, (429, "upload-bytes-per-day"): 2}), answers
    assert a.classroom.uploaded("Ada", today()) == 2 * len(image)


def test_a_job_being_sent_by_one_instance_is_cancelled_through_the_other(
    make_pair: Pair, upstream: SandboxServer
) -> None:
    """The cancel reaches B while A is still sending the job (its submit is slow): A cancels it upstream as soon as
    the submit answers (or B does, if A had looked before B wrote): the job ends cancelled, its images given back."""
    upstream.configure(queue_delay=PAUSED, slow_seconds=1.0)
    upstream.set_faults([{"route": "submit", "kind": "slow", "count": 1}])
    a, b = make_pair(Limits(images_per_day=1, dollars_per_session=None, jobs_in_flight=None))
    ada = a.classroom.add_student("Ada")
    with httpx.Client(timeout=30.0, trust_env=False) as client:
        job = post(client, a, ada, "slow to send").json()
        assert a.classroom.job(job["request_id"])["state"] == "submitting"  # type: ignore[index]
        cancel = client.put(moved(job["cancel_url"], a, b), headers=auth(ada))
        assert (cancel.status_code, cancel.json()) == (202, {"status": "CANCELLATION_REQUESTED"})
        final = asyncio.run(_poll(moved(job["status_url"], a, b), ada))
        assert final["error_type"] in ("request_cancelled", "client_cancelled"), final
        assert post(client, b, ada, "the image given back").status_code == 200
    wait_until(lambda: upstream.stats()["submits"] == 2, "the second job sent")


async def _poll(status_url: str, token: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=30.0, trust_env=False) as client:
        return await poll_completed(client, status_url, token)
