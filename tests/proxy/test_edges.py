"""Edges of the protocol: size caps, fal's 422 shape, a failed job's release, revoking mid-job."""

from __future__ import annotations

import logging
from collections.abc import Callable

import httpx
import pytest

from kontext_nb.proxy import Limits, ProxyServer
from kontext_nb.sandbox import SandboxServer

from .conftest import EDIT, PAUSED, T2I, auth, wait_until

LIMITS = Limits(images_per_day=2, dollars_per_session=None, jobs_in_flight=None)


def done(client: httpx.Client, job: dict[str, str], token: str) -> bool:
    return client.get(job["status_url"], headers=auth(token)).status_code == 200


def test_uploads_and_bodies_over_the_cap_get_413(
    make_proxy: Callable[..., ProxyServer], upstream: SandboxServer
) -> None:
    server = make_proxy(LIMITS, max_upload_bytes=4096)
    token = server.classroom.add_student("Ada")
    with httpx.Client(timeout=30.0, trust_env=False) as client:
        upload = client.post(f"{server.url}/files/upload", content=b"x" * 5000, headers=auth(token))
        assert upload.status_code == 413
        assert upload.json() == {"detail": "too large: the classroom proxy accepts at most 4096 bytes per request"}
        body = {"prompt": "x", "image_url": "data:image/png;base64," + "A" * 5000}
        assert client.post(f"{server.url}/{EDIT}", json=body, headers=auth(token)).status_code == 413
        png = b"\x89PNG\r\n\x1a\n" + b"x" * 3992  # issue 13: only images are stored (the bytes are sniffed)
        assert client.post(f"{server.url}/files/upload", content=png, headers=auth(token)).status_code == 200
    assert upstream.stats()["submits"] == 0


def test_bad_input_is_a_422_in_fals_shape_and_reserves_nothing(
    make_proxy: Callable[..., ProxyServer], upstream: SandboxServer
) -> None:
    server = make_proxy(LIMITS)
    token = server.classroom.add_student("Ada")
    with httpx.Client(timeout=30.0, trust_env=False) as client:
        bad = client.post(f"{server.url}/{T2I}", json={"prompt": "x", "num_images": 9}, headers=auth(token))
        assert bad.status_code == 422
        [item] = bad.json()["detail"]
        # issue 13: validated as fal's pydantic models do (types and messages are pydantic's)
        assert item["loc"] == ["body", "num_images"] and item["type"] == "less_than_equal"
        assert item["msg"] == "Input should be less than or equal to 4"
        not_json = client.post(f"{server.url}/{T2I}", content=b"{", headers=auth(token))
        assert not_json.status_code == 422 and not_json.json()["detail"][0]["msg"].startswith("Invalid JSON")
        assert client.post(f"{server.url}/{T2I}", json=["x"], headers=auth(token)).status_code == 422
    assert server.classroom.students(server.proxy.session)[0]["images_today"] == 0
    assert upstream.stats()["submits"] == 0


def test_a_failed_job_releases_its_images(make_proxy: Callable[..., ProxyServer], upstream: SandboxServer) -> None:
    server = make_proxy(LIMITS)
    token = server.classroom.add_student("Ada")
    with httpx.Client(timeout=30.0, trust_env=False) as client:
        missing = f"{server.url}/files/0000/gone.png"  # the upstream cannot fetch it: the job fails there
        job = client.post(
            f"{server.url}/{EDIT}", json={"prompt": "x", "image_url": missing}, headers=auth(token)
        ).json()
        wait_until(lambda: done(client, job, token), "the failing job finished")
        status = client.get(job["status_url"], headers=auth(token)).json()
        assert status["status"] == "COMPLETED" and status["error_type"] == "file_download_error"
        result = client.get(job["response_url"], headers=auth(token))
        assert result.status_code == 422 and result.headers["x-fal-error-type"] == "file_download_error"
        assert result.json()["detail"][0]["loc"] == ["body", "image_url"]
        row = server.classroom.job(job["request_id"])
        assert row is not None and (row["outcome"], row["images"], row["cost"], row["cost_reserved"]) == (
            "failed",
            0,
            0,
            80_000,
        )
        two = client.post(f"{server.url}/{T2I}", json={"prompt": "x", "num_images": 2}, headers=auth(token))
        assert two.status_code == 200  # both of today's images are still Ada's to use


def test_revoking_leaves_running_jobs_to_finish(
    make_proxy: Callable[..., ProxyServer], upstream: SandboxServer
) -> None:
    upstream.configure(queue_delay=PAUSED)
    server = make_proxy(LIMITS)
    token = server.classroom.add_student("Ada")
    with httpx.Client(timeout=30.0, trust_env=False) as client:
        job = client.post(f"{server.url}/{T2I}", json={"prompt": "x"}, headers=auth(token)).json()
        server.classroom.revoke("Ada")
        refused = client.get(job["status_url"], headers=auth(token))
        assert (refused.status_code, refused.headers["x-kontext-limit"]) == (403, "revoked")
        upstream.configure(queue_delay=0)
        wait_until(lambda: (server.classroom.job(job["request_id"]) or {}).get("outcome") == "ok", "the job finished")
        server.classroom.restore("Ada")
        assert client.get(job["response_url"], headers=auth(token)).status_code == 200


def test_an_upstream_that_fails_to_answer_the_result_is_waited_out(
    make_proxy: Callable[..., ProxyServer], upstream: SandboxServer, caplog: pytest.LogCaptureFixture
) -> None:
    """fal has done (and billed) the job: the proxy keeps trying for its result instead of failing the student."""
    caplog.set_level(logging.WARNING, logger="kontext_nb.proxy")
    server = make_proxy(LIMITS)
    token = server.classroom.add_student("Ada")
    # the load balancer's 502 (no fal request id) is an outage; a 5xx with fal's headers would be the stored result.
    # On every result read until a whole collection has failed and the proxy said it will try again; then cleared
    # (a fixed count of faults made the proxy back off 1 + 2 + ... + 32 s: a minute of the suite's time)
    upstream.set_faults([{"route": "result", "kind": "502"}])
    with httpx.Client(timeout=30.0, trust_env=False) as client:
        job = client.post(f"{server.url}/{T2I}", json={"prompt": "x", "seed": 1}, headers=auth(token)).json()
        wait_until(lambda: "trying again" in caplog.text, "a collection failed and the proxy will try again")
        assert not done(client, job, token), "the student was told the job ended while its result was unread"
        upstream.set_faults([])
        wait_until(lambda: done(client, job, token), "the job completed for the student", tries=6000)
        result = client.get(job["response_url"], headers=auth(token))
    assert result.status_code == 200 and result.json()["seed"] == 1
    row = server.classroom.job(job["request_id"])
    assert row is not None and (row["outcome"], row["images"]) == ("ok", 1)
    assert upstream.stats()["requests"]["result"] >= 2 and upstream.stats()["submits"] == 1
