"""Issue 13, fidelity: the proxy and the sandbox answer as fal does, for any client written for fal."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from kontext_nb.proxy import ProxyServer
from kontext_nb.sandbox import SandboxServer
from kontext_nb.sandbox.queue import RUNNER_ERROR_MARK

from .conftest import CLASS_KEY, EDIT, PAUSED, T2I, auth, wait_until


def finished(client: httpx.Client, status_url: str, token: str) -> dict[str, object]:
    box: dict[str, dict[str, object]] = {}

    def done() -> bool:
        box["s"] = client.get(status_url, headers=auth(token)).json()
        return box["s"]["status"] == "COMPLETED"

    wait_until(done, f"{status_url} completed")
    return box["s"]


def test_a_stored_error_result_ends_the_job_with_fals_error_and_releases_it(
    make_proxy: Callable[..., ProxyServer], upstream: SandboxServer
) -> None:
    server = make_proxy()
    token = server.classroom.add_student("Ada")
    with httpx.Client(timeout=30.0, trust_env=False) as client:
        upstream.configure(queue_delay=PAUSED)  # never starts: its start timeout expires upstream (504)
        late = client.post(
            f"{server.url}/{T2I}", json={"prompt": "x"}, headers={**auth(token), "X-Fal-Request-Timeout": "0.2"}
        ).json()
        status = finished(client, late["status_url"], token)
        assert status["error_type"] == "request_timeout"
        result = client.get(late["response_url"], headers=auth(token))
        assert result.status_code == 504 and result.headers["x-fal-request-timeout-type"] == "user"
        assert result.headers["x-fal-error-type"] == "request_timeout" and result.headers["x-fal-retryable"] == "false"
        assert result.headers["x-fal-request-id"] == late["request_id"]
        cancel = client.put(late["cancel_url"], headers=auth(token))
        assert cancel.status_code == 400 and cancel.json() == {"status": "ALREADY_COMPLETED"}
        upstream.configure(queue_delay=0.0)
        broken = client.post(f"{server.url}/{T2I}", json={"prompt": RUNNER_ERROR_MARK}, headers=auth(token)).json()
        assert finished(client, broken["status_url"], token)["error_type"] == "runner_server_error"
        result = client.get(broken["response_url"], headers=auth(token))
        assert result.status_code == 500 and result.json()["error_type"] == "runner_server_error"
    for job in (late, broken):
        row = server.classroom.job(job["request_id"])
        assert row is not None and (row["outcome"], row["images"], row["cost"]) == ("failed", 0, 0)
    assert not server.proxy.dispatcher.running


def test_every_answer_about_a_job_names_it_in_x_fal_request_id(make_proxy: Callable[..., ProxyServer]) -> None:
    server = make_proxy()
    token = server.classroom.add_student("Ada")
    with httpx.Client(timeout=30.0, trust_env=False) as client:
        submitted = client.post(f"{server.url}/{T2I}", json={"prompt": "x"}, headers=auth(token))
        job = submitted.json()
        finished(client, job["status_url"], token)
        answers = [
            submitted,
            client.get(job["status_url"], headers=auth(token)),
            client.get(job["response_url"], headers=auth(token)),
            client.put(job["cancel_url"], headers=auth(token)),
        ]
        with client.stream("GET", job["status_url"] + "/stream", headers=auth(token)) as stream:
            answers.append(stream)
    assert [a.headers.get("x-fal-request-id") for a in answers] == [job["request_id"]] * 5


def test_a_422_lists_every_bad_field_and_converts_what_fal_converts(
    make_proxy: Callable[..., ProxyServer], upstream: SandboxServer
) -> None:
    server = make_proxy()
    token = server.classroom.add_student("Ada")
    bad = {"prompt": 3, "num_images": 9, "aspect_ratio": "5:4", "safety_tolerance": 2, "colour": "red"}
    lax = {"prompt": "x", "num_images": "2", "seed": 3.0, "guidance_scale": "3.5", "colour": "red"}
    with httpx.Client(timeout=30.0, trust_env=False) as client:
        for base, key in ((server.url, token), (upstream.url, CLASS_KEY)):
            answer = client.post(f"{base}/{T2I}", json=bad, headers=auth(key))
            assert answer.status_code == 422
            types = {d["loc"][1]: d["type"] for d in answer.json()["detail"]}
            assert types == {
                "prompt": "string_type",
                "num_images": "less_than_equal",
                "aspect_ratio": "literal_error",
                "safety_tolerance": "literal_error",
            }
            job = client.post(f"{base}/{T2I}", json=lax, headers=auth(key)).json()
            finished(client, job["status_url"], key)
            result = client.get(job["response_url"], headers=auth(key)).json()
            assert (len(result["images"]), result["seed"]) == (2, 3)


def test_fal_run_the_proxy_protocol_and_webhooks(
    make_proxy: Callable[..., ProxyServer], upstream: SandboxServer
) -> None:
    server = make_proxy()
    token = server.classroom.add_student("Ada")
    with httpx.Client(timeout=30.0, trust_env=False) as client:
        for base, key in ((server.url, token), (upstream.url, CLASS_KEY)):
            run = {**auth(key), "x-fal-target-url": f"https://fal.run/{T2I}"}
            output = client.post(f"{base}/api/fal/proxy", json={"prompt": "x", "seed": 5}, headers=run)
            assert output.status_code == 200 and output.json()["seed"] == 5 and output.json()["images"]
            queue = {**auth(key), "x-fal-target-url": f"https://queue.fal.run/{T2I}"}
            job = client.post(f"{base}/api/fal/proxy", json={"prompt": "y"}, headers=queue).json()
            assert job["status"] == "IN_QUEUE"
            by_id = f"https://queue.fal.run/fal-ai/flux-pro/requests/{job['request_id']}"
            status = client.get(f"{base}/api/fal/proxy", headers={**auth(key), "x-fal-target-url": by_id + "/status"})
            assert status.json()["request_id"] == job["request_id"]
            elsewhere = {**auth(key), "x-fal-target-url": "http://127.0.0.1:9/x"}
            assert client.post(f"{base}/api/fal/proxy", json={}, headers=elsewhere).status_code == 403
        webhook = f"?fal_webhook={upstream.url}/_sandbox/webhooks"
        refused = client.post(f"{server.url}/{T2I}{webhook}", json={"prompt": "x"}, headers=auth(token))
        assert refused.status_code == 400 and "webhooks are not available" in refused.json()["detail"]
        body = {"prompt": "x", "image_url": f"{upstream.url}/files/none/gone.png"}
        client.post(f"{upstream.url}/{EDIT}{webhook}", json=body, headers=auth(CLASS_KEY))
        wait_until(lambda: bool(upstream.webhooks()), "the webhook arrived")
    [delivered] = upstream.webhooks()
    assert delivered["status"] == "ERROR" and delivered["error"] == "Invalid status code: 422"
    assert delivered["payload"]["detail"][0]["loc"] == ["body", "image_url"]
