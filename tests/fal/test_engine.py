"""The engine against the real sandbox over HTTP: results, status paths, cancel, limits."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable

import pytest

import kontext_nb.sandbox as sandbox
from kontext_nb import endpoints
from kontext_nb.config import Settings
from kontext_nb.errors import FalError, JobCancelled, JobTimeout
from kontext_nb.fal.engine import Engine, SubmitOptions
from kontext_nb.request import build_request
from kontext_nb.session import Session

KEY = "engine-test-key-0123456789"
MakeSession = Callable[..., Session]


def test_generate_returns_a_full_result(session: Session, sb: sandbox.SandboxServer) -> None:
    r = session.generate("a red fox", seed=42, aspect_ratio="16:9", num_images=2, output_format="png")
    assert r.seed == 42 and r.request_id and r.endpoint == "fal-ai/flux-pro/kontext/max/text-to-image"
    assert len(r.images) == 2 and all(im.format == "PNG" for im in r.images)
    w, h = r.images[0].size
    assert abs(w / h - 16 / 9) < 0.05
    assert r.content_types == ["image/png", "image/png"]
    assert r.arguments["aspect_ratio"] == "16:9" and r.arguments["num_images"] == 2
    assert r.prompt == "a red fox" and r.has_nsfw_concepts == [False, False]
    assert r.cost == pytest.approx(0.16) and "inference" in r.timings
    assert sb.request_info(r.request_id)["arguments"]["seed"] == 42
    assert sb.stats()["submits"] == 1


def test_pro_model_and_drawn_seed(session: Session) -> None:
    r = session.generate("a lighthouse", model="pro")
    assert r.endpoint == "fal-ai/flux-pro/kontext/text-to-image"
    assert isinstance(r.seed, int) and r.cost == pytest.approx(0.04)
    again = session.generate("a lighthouse", model="pro", seed=r.seed)
    assert again.image_bytes == r.image_bytes, "the seed fal drew reproduces the image"


def test_job_reports_every_status_change_in_order(session: Session, sb: sandbox.SandboxServer) -> None:
    sb.configure(workers=1, inference_time=0.8)
    seen: list[tuple[str, int | None]] = []
    blockers = [session.generate("first", wait=False), session.generate("second", wait=False)]
    _wait_for(lambda: all(b.request_id for b in blockers))  # both ahead of the third in fal's queue
    job = session.generate("third", wait=False, on_update=lambda j, s: seen.append((s.state, s.position)))
    result = job.result(timeout=30)
    assert job.state == "done" and job.status.finished and result.request_id == job.request_id
    states = [s for s, _ in seen]
    assert states[0] == "queued" and states[-1] == "done" and "running" in states
    positions = [p for s, p in seen if s == "queued" and p is not None]
    # a stream may skip an intermediate position when changes come fast; it never goes back up
    assert positions and positions == sorted(positions, reverse=True) and positions[0] >= 1
    assert any(line["message"] for line in job.status.logs)
    for b in blockers:
        b.result(timeout=30)


def test_stream_path_uses_at_most_four_requests_per_job(make_session: MakeSession, sb: sandbox.SandboxServer) -> None:
    s = make_session()
    try:
        s.generate("warm up")  # credentials and connection set up once
        before = s.engine.transport.requests_sent
        s.generate("counted", seed=1)
        assert s.engine.transport.requests_sent - before <= 4
        assert s.engine._stream_supported is True
    finally:
        s.close()


def test_polling_path_gives_the_same_images(make_session: MakeSession, sb: sandbox.SandboxServer) -> None:
    streamed = make_session()
    polled = make_session(use_stream=False, poll_interval=0.02)
    try:
        a = streamed.generate("same picture", seed=5)
        b = polled.generate("same picture", seed=5)
        assert a.image_bytes == b.image_bytes
        assert polled.engine._stream_supported is None, "polling never touched the stream"
    finally:
        streamed.close()
        polled.close()


def test_a_server_without_a_stream_falls_back_to_polling(make_session: MakeSession, sb: sandbox.SandboxServer) -> None:
    sb.configure(stream=False)
    s = make_session()
    try:
        r = s.generate("no stream here", seed=3)
        assert r.images and s.engine._stream_supported is False
    finally:
        s.close()


def test_cancel_a_queued_job(session: Session, sb: sandbox.SandboxServer) -> None:
    sb.configure(workers=1, inference_time=3600.0)  # the busy job holds the one worker until it is cancelled
    busy = session.generate("busy", wait=False)
    _wait_for(lambda: busy.state == "running", timeout=60)  # sent together, "waiting" could take the worker first
    job = session.generate("waiting", wait=False)
    _wait_for(lambda: job.request_id is not None and job.state == "queued", timeout=60)
    assert job.cancel() is True
    with pytest.raises(JobCancelled):
        job.result(timeout=10)
    assert job.state == "cancelled"
    assert sb.request_info(job.request_id)["status"] != "OK"
    assert sb.stats()["cancelled"] >= 1
    busy.cancel()


def test_cancel_a_running_job_and_cancel_after_done(session: Session, sb: sandbox.SandboxServer) -> None:
    sb.configure(inference_time=2.0)
    job = session.generate("long", wait=False)
    _wait_for(lambda: job.state == "running")
    assert job.cancel() is True
    with pytest.raises(JobCancelled, match="cancelled on fal"):
        job.result(timeout=10)
    sb.configure(inference_time=0.05)
    done = session.generate("short", wait=False)
    done.result(timeout=10)
    assert done.cancel() is False and done.state == "done"


def test_cancel_before_sending_sends_nothing(make_session: MakeSession, sb: sandbox.SandboxServer) -> None:
    sb.configure(inference_time=1.0)
    s = make_session(concurrency=1)
    try:
        first = s.generate("occupies the only slot", wait=False)
        second = s.generate("never sent", wait=False)
        time.sleep(0.1)
        assert second.request_id is None and second.status.position is None
        assert second.cancel() is True
        with pytest.raises(JobCancelled, match="nothing was charged"):
            second.result(timeout=5)
        first.result(timeout=10)
        assert sb.stats()["submits"] == 1
    finally:
        s.close()


def test_kernel_interrupt_while_blocking_cancels_on_fal(session: Session, sb: sandbox.SandboxServer) -> None:
    sb.configure(inference_time=3.0)
    seen: list[str] = []

    def interrupt_when_running() -> None:
        _wait_for(lambda: "running" in seen)
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)  # what a kernel interrupt sends

    threading.Thread(target=interrupt_when_running, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        session.generate("interrupt me", on_update=lambda j, s: seen.append(s.state))
    _wait_for(lambda: sb.stats()["cancelled"] == 1)


def test_concurrency_limit_holds(make_session: MakeSession, sb: sandbox.SandboxServer) -> None:
    sb.configure(workers=8, inference_time=0.2)
    s = make_session(concurrency=2)
    try:
        jobs = [s.generate(f"job {i}", wait=False) for i in range(6)]
        for j in jobs:
            j.result(timeout=30)
        spans = [sb.request_info(j.request_id) for j in jobs]
        events = sorted([(i["submitted_at"], 1) for i in spans] + [(i["completed_at"], -1) for i in spans])
        level = peak = 0
        for _, delta in events:
            level += delta
            peak = max(peak, level)
        assert peak <= 2
    finally:
        s.close()


def test_job_timeout_leaves_the_job_on_fal_and_attach_collects_it(
    make_session: MakeSession, sb: sandbox.SandboxServer
) -> None:
    sb.configure(inference_time=1.0)
    s = make_session(job_timeout=0.3)
    try:
        job = s.generate("slow", wait=False)
        with pytest.raises(JobTimeout, match=r"kx\.attach") as info:
            job.result(timeout=10)
        assert job.request_id in str(info.value) and job.state == "failed"
        s.configure(Settings(base_url=sb.url, key=KEY))  # a patient engine from now on
        collected = s.attach(job.request_id, endpoint=job.endpoint, wait=True)
        assert collected.request_id == job.request_id and collected.images
        assert sb.stats()["submits"] == 1, "attaching never submits again"
    finally:
        s.close()


def test_wait_timeout_does_not_stop_the_job(session: Session, sb: sandbox.SandboxServer) -> None:
    sb.configure(inference_time=0.6)
    job = session.generate("patience", wait=False)
    with pytest.raises(TimeoutError, match="keeps running"):
        job.result(timeout=0.05)
    assert job.result(timeout=10).images


def test_submit_options_reach_the_server(session: Session, sb: sandbox.SandboxServer) -> None:
    r = session.generate(
        "private", private=True, priority="low", start_timeout=30, webhook_url="http://127.0.0.1:9/hook"
    )
    info = sb.request_info(r.request_id)
    assert info["headers_seen"]["store_io"] == "0"
    assert info["headers_seen"]["priority"] == "low"
    assert float(info["headers_seen"]["timeout"]) == 30
    assert info["arguments"]["sync_mode"] is True
    assert r.urls == ["data:"] and r.images[0].size[0] > 0


def test_server_side_422_is_turned_into_field_errors(sb: sandbox.SandboxServer) -> None:
    engine = Engine(Settings(base_url=sb.url, key=KEY))
    try:
        job = engine.submit(endpoints.endpoint_for("text-to-image", "max").id, {"prompt": "", "num_images": 9})
        with pytest.raises(FalError) as info:
            job.result(timeout=10)
        text = str(info.value)
        assert text.startswith("fal rejected the input:") and "num_images" in text and "prompt" in text
        assert info.value.status_code == 422 and len(info.value.field_errors) == 2
    finally:
        engine.close()


def test_wrong_key_is_refused_clearly_without_showing_it() -> None:
    with sandbox.running(require_key="the-right-key", inference_time=0.05, image_scale=0.25) as url:
        s = Session(Settings(base_url=url, key="a-wrong-key-xyz"), notice=lambda m: None)
        try:
            with pytest.raises(FalError, match=r"refused the request \(HTTP 401\).*Check FAL_KEY") as info:
                s.generate("hello")
            assert "a-wrong-key-xyz" not in str(info.value)
        finally:
            s.close()


def test_build_request_checks_options_before_anything_is_sent() -> None:
    for kwargs, words in (
        ({"priority": "high"}, "priority='high' is not allowed"),
        ({"start_timeout": 0.5}, "start_timeout=0.5"),
        ({"webhook_url": "ftp://x"}, "webhook_url='ftp://x'"),
        ({"private": True, "sync_mode": False}, "private=True needs sync_mode=True"),
    ):
        with pytest.raises(ValueError, match=words):
            build_request("text-to-image", "x", **kwargs)
    assert build_request("text-to-image", "x", private=True).options == SubmitOptions(store_io=False)


def _wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)
