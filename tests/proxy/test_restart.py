"""A proxy stopped with jobs waiting and running upstream, and started again on the same state folder:
students collect every result, nothing is sent upstream twice, and quotas go on from where they were."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from kontext_nb.config import RetryPolicy, Settings
from kontext_nb.jobs import Job
from kontext_nb.proxy import Limits, ProxyServer
from kontext_nb.result import Result
from kontext_nb.sandbox import SandboxServer
from kontext_nb.session import Session

from .conftest import PAUSED, T2I, auth, wait_until

LIMITS = Limits(images_per_day=5, dollars_per_session=None, jobs_in_flight=None, class_in_flight=2)

pytestmark = pytest.mark.usefixtures("proxy_state")  # every test on both state backends: SQLite, PostgreSQL


def submit(client: httpx.Client, url: str, token: str, prompt: str, **body: object) -> httpx.Response:
    return client.post(f"{url}/{T2I}", json={"prompt": prompt, **body}, headers=auth(token))


@pytest.mark.slow
def test_results_and_quotas_survive_a_restart(make_proxy: Callable[..., ProxyServer], upstream: SandboxServer) -> None:
    first = make_proxy(LIMITS)
    ada, bo = first.classroom.add_student("Ada"), first.classroom.add_student("Bo")
    with httpx.Client(timeout=30.0, trust_env=False) as client:
        early = submit(client, first.url, ada, "before the restart").json()
        wait_until(lambda: client.get(early["status_url"], headers=auth(ada)).status_code == 200, "first job done")
        upstream.configure(queue_delay=PAUSED)
        jobs = [(submit(client, first.url, ada, f"ada {i}").json(), ada) for i in range(3)]
        jobs.append((submit(client, first.url, bo, "bo").json(), bo))
        assert len(first.classroom.dispatch_log()) == 3  # the first job and two more upstream; two wait here
        first.stop()

        second = make_proxy(LIMITS, port=first.port)  # same state folder, same address
        upstream.configure(queue_delay=0)
        for job, token in [(early, ada), *jobs]:
            wait_until(
                lambda job=job, token=token: client.get(job["status_url"], headers=auth(token)).status_code == 200,
                f"job {job['request_id']} done after the restart",
            )
            result = client.get(job["response_url"], headers=auth(token))
            assert result.status_code == 200 and len(result.json()["images"]) == 1
            assert result.json()["images"][0]["url"].startswith(second.url)
        assert upstream.stats()["submits"] == 5  # five jobs, each sent once: those upstream were watched again
        assert len(second.classroom.dispatch_log()) == 5
        refused = submit(client, second.url, ada, "two more", num_images=2)  # Ada has made 4 of her 5 today
        assert (refused.status_code, refused.headers["x-kontext-limit"]) == (429, "images-per-day")
        assert submit(client, second.url, ada, "one more").status_code == 200


@pytest.mark.slow
def test_a_students_session_rides_through_a_restart(
    make_proxy: Callable[..., ProxyServer], upstream: SandboxServer, tmp_path: Path
) -> None:
    upstream.configure(queue_delay=PAUSED)
    first = make_proxy(LIMITS)
    settings = Settings(
        base_url=first.url,
        key=first.classroom.add_student("Ada"),
        retry=RetryPolicy(attempts=40, base_delay=0.02, max_delay=0.25),
        runs_dir=str(tmp_path / "runs"),
    )
    session = Session(settings, notice=lambda message: None)
    try:
        jobs = [session.generate(f"through a restart {i}", seed=i, wait=False) for i in range(3)]
        assert all(isinstance(job, Job) for job in jobs)
        wait_until(lambda: all(job.request_id for job in jobs), "all three accepted by the proxy")  # type: ignore[union-attr]
        first.stop()
        make_proxy(LIMITS, port=first.port)
        upstream.configure(queue_delay=0)
        results = [job.result(timeout=60) for job in jobs]  # type: ignore[union-attr]
        assert all(isinstance(r, Result) and r.images for r in results)
        assert [r.seed for r in results] == [0, 1, 2]
        assert upstream.stats()["submits"] == 3
    finally:
        session.close()
