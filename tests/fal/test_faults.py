"""Every sandbox fault kind ends in success after retries or in one clear error."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

import kontext_nb.sandbox as sandbox
from kontext_nb.config import RetryPolicy
from kontext_nb.errors import FalError
from kontext_nb.session import Session


@pytest.fixture(params=["stream", "poll"])
def session(request: pytest.FixtureRequest, make_session: Callable[..., Session]) -> Session:
    """Each fault is met on both status paths: the SSE stream and polling."""
    return make_session(
        retry=RetryPolicy(attempts=4, base_delay=0.01, max_delay=2.0),
        use_stream=request.param == "stream",
        poll_interval=0.02,
    )


# (route, kind, count): faults the engine must ride out, ending with the images.
RECOVERABLE = [
    ("submit", "429", 2),
    ("submit", "502", 2),
    ("submit", "503", 1),
    # ("submit", "drop") is not recoverable by design: a submit may have reached fal (tests/test_money.py)
    ("status", "429", 2),
    ("status", "500", 2),
    ("status", "502", 1),
    ("status", "drop", 2),
    ("status", "slow", 2),
    ("stream", "drop", 1),
    ("stream", "503", 1),
    ("stream", "slow", 1),
    ("result", "500", 2),
    ("result", "drop", 1),
    ("result", "429", 1),
    ("media", "500", 2),
    ("media", "drop", 1),
    ("media", "503", 1),
]


@pytest.mark.parametrize(("route", "kind", "count"), RECOVERABLE, ids=lambda v: str(v))
def test_recoverable_faults_end_in_success(
    session: Session, sb: sandbox.SandboxServer, route: str, kind: str, count: int
) -> None:
    sb.set_faults([{"route": route, "kind": kind, "count": count}])
    r = session.generate("weathering the storm", seed=11)
    assert r.images and r.seed == 11
    stats = sb.stats()
    assert stats["submits"] == 1, "a retried submit was not queued twice"
    if route in ("submit", "result", "media") or (route == "status") == (not session.engine.settings.use_stream):
        injected = sum(stats["faults_injected"].values())
        # errors are retried until every scripted fault is used up; a slow answer is just waited for
        assert injected == count if kind != "slow" else injected >= 1, "the fault really happened"


def test_429_waits_for_retry_after(session: Session, sb: sandbox.SandboxServer) -> None:
    sb.set_faults([{"route": "submit", "kind": "429", "count": 1}])
    start = time.monotonic()
    session.generate("patient", seed=1)
    assert time.monotonic() - start >= 0.9, "Retry-After: 1 was honoured"


def test_persistent_rate_limit_is_a_clear_error(session: Session, sb: sandbox.SandboxServer) -> None:
    sb.configure(retry_after=0)
    sb.set_faults([{"route": "submit", "kind": "429", "count": 50}])
    with pytest.raises(FalError, match=r"HTTP 429.*on every try \(4 tries of POST") as info:
        session.generate("never accepted")
    assert "\n" not in str(info.value)
    assert sb.stats()["submits"] == 0


def test_500_on_submit_is_not_retried(session: Session, sb: sandbox.SandboxServer) -> None:
    sb.set_faults([{"route": "submit", "kind": "500", "count": 1}])
    with pytest.raises(FalError, match="HTTP 500"):
        session.generate("server error")
    assert sb.stats()["faults_injected"] == {"500": 1}, "a 500 on submit may have queued the job: no blind retry"


def test_vanished_request_is_a_clear_error_naming_it(session: Session, sb: sandbox.SandboxServer) -> None:
    sb.configure(inference_time=0.5)
    sb.set_faults(
        [{"route": "status", "kind": "vanish", "count": 1}, {"route": "stream", "kind": "vanish", "count": 1}]
    )
    job = session.generate("gone", wait=False)
    with pytest.raises(FalError, match="no longer knows request") as info:
        job.result(timeout=20)
    assert job.request_id in str(info.value) and job.state == "failed"


def test_media_that_never_downloads_is_a_clear_error(session: Session, sb: sandbox.SandboxServer) -> None:
    sb.set_faults([{"route": "media", "kind": "500", "count": 100}])
    job = session.generate("undownloadable", wait=False)
    with pytest.raises(FalError, match="HTTP 500") as info:
        job.result(timeout=30)
    assert job.request_id and job.request_id in str(info.value)


def test_faults_by_rate_across_many_jobs(session: Session, sb: sandbox.SandboxServer) -> None:
    sb.set_faults(
        [
            {"route": "submit", "kind": "429", "rate": 0.3},
            {"route": "status", "kind": "502", "rate": 0.2},
            {"route": "media", "kind": "503", "rate": 0.2},
        ],
        seed=7,
    )
    sb.configure(retry_after=0)
    session.configure(session.engine.settings.with_(retry=RetryPolicy(attempts=10, base_delay=0.01, max_delay=0.1)))
    jobs = [session.generate(f"job {i}", seed=i, wait=False) for i in range(12)]
    results = [j.result(timeout=60) for j in jobs]
    assert sorted(r.seed for r in results) == list(range(12))
    assert sb.stats()["submits"] == 12


def test_one_dropped_stream_does_not_turn_streaming_off(make_session, sb: sandbox.SandboxServer) -> None:
    s = make_session()
    sb.set_faults([{"route": "stream", "kind": "drop", "count": 1}])
    s.generate("first, its stream dropped", seed=1)
    before = sb.stats()["requests"].get("stream", 0)
    s.generate("second", seed=2)
    assert sb.stats()["requests"]["stream"] == before + 1 and s.engine._stream_supported is not False


def test_an_uncollected_failure_says_resume_collects_it(make_session, sb: sandbox.SandboxServer) -> None:
    s = make_session()
    sb.set_faults([{"route": "media", "kind": "500", "count": 100}])
    with pytest.raises(FalError, match=r"kx\.resume\(\) \(or %kontext resume\) collects it later"):
        s.generate("paid, not downloaded", seed=3)
