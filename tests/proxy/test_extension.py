"""The real extension through the proxy: a kontext_nb Session with base_url = the proxy and key = a student token,
and unmodified fal_client. Nothing else changes for the student."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fal_client
import pytest
from PIL import Image

from kontext_nb.config import RetryPolicy
from kontext_nb.errors import FalError, JobCancelled
from kontext_nb.fal.engine import _RoutedAsyncClient
from kontext_nb.fal.transport import FalTransport
from kontext_nb.jobs import Job
from kontext_nb.proxy import Limits, ProxyServer
from kontext_nb.result import Result
from kontext_nb.sandbox import SandboxServer
from kontext_nb.session import Session

from .conftest import PAUSED, T2I, wait_until

LIMITS = Limits(images_per_day=10, dollars_per_session=None, jobs_in_flight=None, max_safety_tolerance="2")


@pytest.fixture
def student_session(make_session: Callable[..., Session], tmp_path: Path) -> Callable[..., Session]:
    """``student_session(proxy, token, **settings)``: a session whose base URL is the proxy and whose key the token."""
    count = iter(range(1_000))

    def make(server: ProxyServer, token: str, **changes: Any) -> Session:
        runs = str(tmp_path / f"runs-{next(count)}")
        return make_session(
            base_url=server.url,
            key=token,
            retry=RetryPolicy(attempts=5, base_delay=0.01, max_delay=0.2),
            runs_dir=runs,
            **changes,
        )

    return make


@pytest.mark.slow
def test_generate_edit_and_upload_through_the_proxy(
    make_proxy: Callable[..., ProxyServer],
    upstream: SandboxServer,
    student_session: Callable[..., Session],
    tmp_path: Path,
) -> None:
    server = make_proxy(LIMITS)
    session = student_session(server, server.classroom.add_student("Ada"), inline_max_bytes=0)  # always upload
    fox = session.generate("a red fox in snow", seed=3, num_images=2)
    assert isinstance(fox, Result) and len(fox.images) == 2 and fox.seed == 3
    row = server.classroom.job(fox.request_id)
    assert row is not None and row["student"] == "Ada" and row["outcome"] == "ok" and row["images"] == 2
    assert all(url.startswith(server.url + "/media/") for url in fox.urls)
    photo = tmp_path / "cat.png"
    Image.new("RGB", (96, 64), (20, 180, 40)).save(photo)
    edited = session.edit(str(photo), "make it night", seed=4)
    assert isinstance(edited, Result) and edited.images[0].size[0] > 0
    assert upstream.stats()["requests"].get("upload", 0) >= 2  # CDN token + upload, made by the proxy
    by_url = session.edit(fox.urls[0], "make it winter", seed=5)  # the proxy's own URL, sent upstream as fal's
    from_result = session.edit(fox, "add a hat", seed=6)  # bytes of a result, uploaded through the proxy
    assert isinstance(by_url, Result) and isinstance(from_result, Result)
    usage = server.classroom.students(server.proxy.session)[0]
    assert (usage["images_today"], usage["done"]) == (5, 4)


def test_cancel_through_the_proxy(
    make_proxy: Callable[..., ProxyServer], upstream: SandboxServer, student_session: Callable[..., Session]
) -> None:
    upstream.configure(queue_delay=PAUSED)
    server = make_proxy(Limits(**{**LIMITS.as_dict(), "class_in_flight": 1}))
    session = student_session(server, server.classroom.add_student("Ada"))
    # one after the other: sent together, "two" could reach the proxy first and be the one upstream
    upstream_job = session.generate("one", wait=False)
    assert isinstance(upstream_job, Job)
    wait_until(lambda: upstream.stats()["submits"] == 1, "the first is upstream")
    waiting_job = session.generate("two", wait=False)
    assert isinstance(waiting_job, Job)
    wait_until(lambda: upstream_job.request_id is not None and waiting_job.request_id is not None, "both submitted")
    assert waiting_job.cancel() and upstream_job.cancel()  # one waits in the proxy, one is upstream
    for job in (upstream_job, waiting_job):
        with pytest.raises(JobCancelled):
            job.result(timeout=30)

    def outcomes() -> list[Any]:
        return [(server.classroom.job(j.request_id or "") or {}).get("outcome") for j in (upstream_job, waiting_job)]

    wait_until(lambda: None not in outcomes(), "the proxy heard the upstream's cancel")  # it settles once told
    assert outcomes() == ["cancelled", "cancelled"]
    assert server.classroom.students(server.proxy.session)[0]["images_today"] == 0  # released
    assert upstream.stats()["cancelled"] == 1 and upstream.stats()["submits"] == 1


def test_a_refusal_reads_as_the_proxys_message(
    make_proxy: Callable[..., ProxyServer], upstream: SandboxServer, student_session: Callable[..., Session]
) -> None:
    """Policy refusals (403) fail the job at once with the proxy's own words."""
    server = make_proxy(LIMITS, blocklist=["gore"])
    session = student_session(server, server.classroom.add_student("Ada"))
    with pytest.raises(FalError) as refused:
        session.generate("a fox", safety_tolerance="5")
    assert str(refused.value) == (
        "the classroom proxy refused the request (HTTP 403): safety_tolerance='5' is more permissive than this "
        "class allows: choose 1 to 2 (1 is the strictest)"
    )
    with pytest.raises(FalError, match=r"HTTP 403\): the prompt contains a word this class blocks"):
        session.generate("lots of GORE")
    quiet = session.generate("a fox", seed=1)  # kontext_nb sends the default "2" with every request: allowed
    assert isinstance(quiet, Result)
    assert server.classroom.job(quiet.request_id)["safety_tolerance"] == "2"  # type: ignore[index]
    server.classroom.revoke("Ada")
    with pytest.raises(FalError, match=r"refused the request \(HTTP 403\): your access .* was revoked"):
        session.generate("a fox", seed=2)
    assert upstream.stats()["submits"] == 1


def test_a_quota_refusal_is_asked_once_and_read_as_the_proxys_message(
    make_proxy: Callable[..., ProxyServer], upstream: SandboxServer, student_session: Callable[..., Session]
) -> None:
    """A 429 that fal_client would retry ten times: the transport makes it final, so the proxy hears it once."""
    server = make_proxy(Limits(images_per_day=1, dollars_per_session=None, jobs_in_flight=None))
    session = student_session(server, server.classroom.add_student("Ada"))
    assert isinstance(session.generate("a fox", seed=1), Result)
    with pytest.raises(FalError) as refused:
        session.generate("a second fox", seed=2)
    assert str(refused.value).startswith(
        "the classroom proxy refused the request (HTTP 429): you have made 1 of your 1"
    )
    refusals = server.classroom.usage(server.proxy.session)["recent_refusals"]
    assert [r["kind"] for r in refusals] == ["images-per-day"]  # asked once: no retries by anyone
    assert upstream.stats()["submits"] == 1


def test_unmodified_fal_client_through_the_proxy(
    make_proxy: Callable[..., ProxyServer], upstream: SandboxServer
) -> None:
    server = make_proxy(LIMITS)
    token = server.classroom.add_student("Ada")

    async def scenario() -> None:
        client = _RoutedAsyncClient(token, FalTransport(server.url))  # fal_client with its httpx client re-routed
        try:
            handle = await client.submit(T2I, {"prompt": "a harbour", "seed": 8}, priority="low")
            assert handle.status_url.startswith(server.url)
            events = [e async for e in handle.iter_events(with_logs=True, interval=0.02)]
            assert isinstance(events[-1], fal_client.Completed) and events[-1].error is None
            result = await handle.get()
            assert result["seed"] == 8 and result["images"][0]["url"].startswith(server.url)
            again = await client.result(T2I, handle.request_id)  # by-id URL built by fal_client itself
            assert again == result
            status = await client.status(T2I, handle.request_id, with_logs=True)
            assert isinstance(status, fal_client.Completed)
        finally:
            await (await client._client).aclose()

    asyncio.run(scenario())
    assert upstream.stats()["submits"] == 1
