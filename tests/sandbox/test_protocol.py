"""The sandbox speaks fal's queue protocol: real HTTP against a running server, no mocks."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image, ImageStat
from waiting import wait_for  # tests/waiting.py: tests/ is on sys.path

import kontext_nb.sandbox
from kontext_nb import endpoints

KEY = {"Authorization": "Key sandbox-test"}
T2I = "fal-ai/flux-pro/kontext/max/text-to-image"
EDIT = "fal-ai/flux-pro/kontext/max"
MULTI = "fal-ai/flux-pro/kontext/max/multi"
STATUS_KEYS = {"status", "request_id", "response_url", "status_url", "cancel_url", "queue_position", "logs", "metrics"}
PAUSED = 3600.0
"""A queue_delay (or inference_time) that holds a job where it is until the test moves it on: no race with a clock."""


@pytest.fixture
def http(sandbox: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox, headers=KEY, timeout=30, trust_env=False) as client:
        yield client


@pytest.fixture
def ctl(sandbox_server: kontext_nb.sandbox.SandboxServer, sandbox: str) -> kontext_nb.sandbox.SandboxControl:
    return sandbox_server


def submit(http: httpx.Client, endpoint: str, headers: dict[str, str] | None = None, **args: Any) -> dict[str, Any]:
    response = http.post(f"/{endpoint}", json=args, headers=headers or {})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def wait_done(http: httpx.Client, sub: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    """The final status, polled (the timeout is a safety net against a hang, far above a job's time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = http.get(sub["status_url"], params={"logs": 1})
        if response.status_code == 200:
            return response.json()  # type: ignore[no-any-return]
        assert response.status_code == 202, response.text
        time.sleep(0.01)
    raise AssertionError(f"request {sub['request_id']} did not complete in {timeout} s")


def run(http: httpx.Client, endpoint: str, **args: Any) -> dict[str, Any]:
    sub = submit(http, endpoint, **args)
    done = wait_done(http, sub)
    assert done.get("error") is None, done
    response = http.get(sub["response_url"])
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def image_bytes(http: httpx.Client, url: str) -> bytes:
    if url.startswith("data:"):
        return base64.b64decode(url.partition(",")[2])
    response = http.get(url)
    assert response.status_code == 200
    return response.content


def load(http: httpx.Client, url: str) -> Image.Image:
    return Image.open(io.BytesIO(image_bytes(http, url)))


def data_uri(colour: tuple[int, int, int], size: tuple[int, int] = (96, 64)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def mean(img: Image.Image) -> list[float]:
    return ImageStat.Stat(img.convert("RGB")).mean  # type: ignore[no-any-return]


# ---- queue protocol ----------------------------------------------------------------------
def test_submit_status_202_then_200_with_all_keys(http: httpx.Client, ctl: Any, sandbox: str) -> None:
    ctl.configure(inference_time=0.3, queue_delay=PAUSED)  # queued until the 202 is seen, however slow the machine
    response = http.post(f"/{T2I}", json={"prompt": "a lighthouse", "seed": 1})
    assert response.status_code == 200 and response.headers["x-fal-request-id"]
    sub = response.json()
    rid = sub["request_id"]
    assert sub["status"] == "IN_QUEUE" and isinstance(sub["queue_position"], int)
    assert sub["response_url"] == f"{sandbox}/fal-ai/flux-pro/requests/{rid}"
    assert sub["status_url"] == f"{sandbox}/fal-ai/flux-pro/requests/{rid}/status"
    assert sub["cancel_url"] == f"{sandbox}/fal-ai/flux-pro/requests/{rid}/cancel"
    running = http.get(sub["status_url"], params={"logs": 1})
    assert running.status_code == 202
    assert set(running.json()) == STATUS_KEYS and running.json()["status"] in ("IN_QUEUE", "IN_PROGRESS")
    assert http.get(sub["status_url"]).json()["logs"] is None
    ctl.configure(queue_delay=0.0)
    done = wait_done(http, sub)
    assert set(done) >= STATUS_KEYS and done["status"] == "COMPLETED" and done["queue_position"] is None
    assert done["metrics"]["inference_time"] >= 0.25
    messages = [entry["message"] for entry in done["logs"]]
    assert "Loading FLUX.1 Kontext [max] (sandbox)" in messages and "Generating image 1/1" in messages
    assert {"message", "level", "source", "timestamp"} <= set(done["logs"][0])
    assert http.get(sub["status_url"], params={"logs": "0"}).json()["logs"] is None


def test_queue_positions_count_down(http: httpx.Client, ctl: Any) -> None:
    ctl.configure(workers=1, inference_time=0.2)
    subs = [submit(http, T2I, prompt=f"job {i}", seed=i) for i in range(4)]
    assert [s["queue_position"] for s in subs[1:]] == [0, 1, 2]
    seen: list[Any] = []
    # followed on the status stream, which pushes every change: polls could miss a 0.2 s state on a busy machine
    with http.stream("GET", subs[3]["status_url"] + "/stream") as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                body = json.loads(line[6:])
                state = body["queue_position"] if body["status"] == "IN_QUEUE" else body["status"]
                if not seen or seen[-1] != state:
                    seen.append(state)
    assert seen == [2, 1, 0, "IN_PROGRESS", "COMPLETED"]


def test_low_priority_runs_after_normal(http: httpx.Client, ctl: Any) -> None:
    # "first" holds the only worker until it is cancelled: with a 0.05 s job, a busy machine could finish it (and
    # start "low") before "normal" was even sent, as seen when the sandbox tests ran beside two CPU-bound processes
    ctl.configure(workers=1, inference_time=PAUSED)
    first = submit(http, T2I, prompt="first")
    low = submit(http, T2I, headers={"X-Fal-Queue-Priority": "low"}, prompt="low")
    normal = submit(http, T2I, prompt="normal")
    assert low["queue_position"] == 0 and normal["queue_position"] == 0  # normal jumps ahead of low
    ctl.configure(inference_time=0.05)
    assert http.put(first["cancel_url"]).status_code == 202  # the worker is free: the queue's order decides
    for sub in (low, normal):
        wait_done(http, sub)
    info = {name: ctl.request_info(s["request_id"]) for name, s in (("low", low), ("normal", normal))}
    assert info["normal"]["started_at"] < info["low"]["started_at"]
    assert info["low"]["headers_seen"]["priority"] == "low"


def test_stream_pushes_every_change_and_closes(http: httpx.Client, ctl: Any) -> None:
    ctl.configure(workers=1, inference_time=0.1, queue_delay=PAUSED)  # queued until the stream has said so
    sub = submit(http, T2I, prompt="streamed", num_images=2)
    events, arrival = [], 0.0
    with http.stream("GET", sub["status_url"] + "/stream", params={"logs": 1}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
                arrival = time.time()
                if len(events) == 1:
                    ctl.configure(queue_delay=0.0)
    statuses = [e["status"] for e in events]
    assert statuses[0] == "IN_QUEUE" and events[0]["queue_position"] == 0
    assert statuses[-1] == "COMPLETED" and statuses.count("COMPLETED") == 1
    assert "IN_PROGRESS" in statuses
    log_counts = [len(e["logs"]) for e in events if e["status"] == "IN_PROGRESS"]
    assert log_counts == sorted(log_counts) and len(set(log_counts)) >= 3  # one event per new log line
    assert all(set(e) >= STATUS_KEYS for e in events)
    completed_at = ctl.request_info(sub["request_id"])["completed_at"]
    assert arrival >= completed_at  # the stream ended with the job, over one response: pushed, not polled


def test_stream_can_be_switched_off(http: httpx.Client, ctl: Any) -> None:
    sub = submit(http, T2I, prompt="polling only")
    ctl.configure(stream=False)
    response = http.get(sub["status_url"] + "/stream")
    assert response.status_code == 405 and response.json()["error_type"] == "method_not_allowed"
    assert http.get(sub["status_url"]).status_code in (200, 202)
    ctl.configure(stream=True)
    with http.stream("GET", sub["status_url"] + "/stream") as response:
        assert response.status_code == 200


def test_stream_sends_keepalive_comments(http: httpx.Client, ctl: Any) -> None:
    ctl.configure(inference_time=0.05, keepalive_seconds=0.05, queue_delay=PAUSED)
    sub = submit(http, T2I, prompt="slow")
    lines = []
    with http.stream("GET", sub["status_url"] + "/stream") as response:
        for line in response.iter_lines():
            lines.append(line)
            if line == ": keep-alive":
                ctl.configure(queue_delay=0.0)  # the job was held until a keep-alive came: no race with its end
    assert ": keep-alive" in lines
    assert json.loads([x for x in lines if x.startswith("data: ")][-1][6:])["status"] == "COMPLETED"


@pytest.mark.parametrize("endpoint_id", sorted(endpoints.ENDPOINTS))
def test_result_shape_per_endpoint(http: httpx.Client, endpoint_id: str) -> None:
    ep = endpoints.ENDPOINTS[endpoint_id]
    args: dict[str, Any] = {"prompt": "a teapot", "seed": 5}
    if ep.mode in ("edit", "inpaint"):
        args["image_url"] = data_uri((200, 30, 30))
    if ep.mode == "inpaint":
        args["mask_url"] = args["reference_image_url"] = data_uri((255, 255, 255))
    elif ep.mode == "multi":
        args["image_urls"] = [data_uri((200, 30, 30)), data_uri((30, 30, 200))]
    out = run(http, endpoint_id, **args)
    fmt = ep.field("output_format").default  # jpeg for [max]/[pro]/[dev], png for LoRA (fal's defaults)
    assert set(out) == {f.name for f in endpoints.OUTPUTS}
    assert out["seed"] == 5 and out["prompt"] == "a teapot" and out["has_nsfw_concepts"] == [False]
    assert out["timings"]["inference"] > 0
    (image,) = out["images"]
    assert set(image) == set(endpoints.IMAGE_OUTPUT_FIELDS) and image["content_type"] == f"image/{fmt}"
    assert "/media/" in image["url"]
    img = load(http, image["url"])
    assert img.format == fmt.upper() and img.size == (image["width"], image["height"])


def test_result_before_done_is_400(http: httpx.Client, ctl: Any) -> None:
    ctl.configure(inference_time=PAUSED)  # still running when its result is asked for, however slow the machine
    sub = submit(http, T2I, prompt="wait")
    response = http.get(sub["response_url"])
    assert response.status_code == 400 and response.json()["detail"] == "Request is still in progress"


def test_validation_422_lists_every_bad_field(http: httpx.Client, ctl: Any) -> None:
    body = {"prompt": 3, "seed": -1, "aspect_ratio": "5:4", "colour": "red"}
    response = http.post(f"/{T2I}", json=body)
    assert response.status_code == 422
    detail = response.json()["detail"]
    # issue 13: like fal's pydantic models, unknown fields ("colour") are ignored and types use pydantic's names
    assert sorted(d["loc"][1] for d in detail) == ["aspect_ratio", "prompt", "seed"]
    types = {d["loc"][1]: d["type"] for d in detail}
    assert types == {"aspect_ratio": "literal_error", "prompt": "string_type", "seed": "greater_than_equal"}
    assert all(d["loc"][0] == "body" and d["msg"] for d in detail)
    missing = http.post(f"/{EDIT}", json={"prompt": "no image"}).json()["detail"]
    assert [d["loc"] for d in missing] == [["body", "image_url"]]
    assert http.post(f"/{T2I}", content=b"{not json").status_code == 422
    assert http.post(f"/{T2I}", json=["a list"]).json()["detail"][0]["loc"] == ["body"]
    assert ctl.stats()["submits"] == 0


def test_not_found_everywhere(http: httpx.Client, sandbox: str) -> None:
    response = http.post("/fal-ai/flux-pro/kontext/ultra", json={"prompt": "x"})
    assert response.status_code == 404 and response.json()["error_type"] == "not_found"
    assert "Application 'fal-ai/flux-pro/kontext/ultra' not found" in response.json()["detail"]
    assert response.headers["x-fal-error-type"] == "not_found"
    base = f"{sandbox}/fal-ai/flux-pro/requests/no-such-id"
    for url in (base, base + "/status", base + "/status/stream"):
        response = http.get(url)
        assert response.status_code == 404 and response.json() == {
            "detail": "Request not found",
            "error_type": "not_found",
        }
    response = http.put(base + "/cancel")
    assert response.status_code == 404 and response.json() == {"status": "NOT_FOUND"}
    assert http.get("/media/nothing.jpg").status_code == 404


def test_cancel_queued_and_running(http: httpx.Client, ctl: Any) -> None:
    ctl.configure(workers=1, inference_time=PAUSED)  # the running job cannot end before it is cancelled
    running, queued = submit(http, T2I, prompt="running"), submit(http, T2I, prompt="queued")
    assert http.get(running["status_url"]).json()["status"] == "IN_PROGRESS"
    for sub in (queued, running):
        response = http.put(sub["cancel_url"])
        assert response.status_code == 202 and response.json() == {"status": "CANCELLATION_REQUESTED"}
    for sub in (queued, running):
        done = http.get(sub["status_url"])
        assert done.status_code == 200
        assert done.json()["error"] == "Request was cancelled" and done.json()["error_type"] == "request_cancelled"
        result = http.get(sub["response_url"])
        assert result.status_code == 400 and result.json() == {
            "detail": "Request was cancelled",
            "error_type": "request_cancelled",
        }
        again = http.put(sub["cancel_url"])
        assert again.status_code == 400 and again.json() == {"status": "ALREADY_COMPLETED"}
    stats = ctl.stats()
    assert stats["cancelled"] == 2 and stats["completed"] == 0 and stats["in_progress"] == 0
    ctl.configure(inference_time=0.01)
    assert wait_done(http, submit(http, T2I, prompt="next")).get("error") is None  # the cancelled job freed its worker
    assert ctl.stats()["completed"] == 1


# ---- images ------------------------------------------------------------------------------
def test_same_arguments_give_identical_bytes(http: httpx.Client) -> None:
    def first_image(**args: Any) -> bytes:
        return image_bytes(http, run(http, T2I, **args)["images"][0]["url"])

    base = first_image(prompt="a red kite", seed=11)
    assert first_image(prompt="a red kite", seed=11) == base
    assert first_image(prompt="a red kite", seed=12) != base
    assert first_image(prompt="a blue kite", seed=11) != base
    png = first_image(prompt="a red kite", seed=11, output_format="png")
    assert png == first_image(prompt="a red kite", seed=11, output_format="png") and png != base


def test_aspect_ratio_num_images_and_format(http: httpx.Client) -> None:
    out = run(http, T2I, prompt="wide", seed=3, aspect_ratio="16:9", num_images=3, output_format="png")
    w, h = endpoints.aspect_size("16:9")
    assert len(out["images"]) == 3 and len(out["has_nsfw_concepts"]) == 3
    pictures = [image_bytes(http, i["url"]) for i in out["images"]]
    assert len(set(pictures)) == 3  # each image of a request differs
    for meta, data in zip(out["images"], pictures, strict=True):
        img = Image.open(io.BytesIO(data))
        assert img.format == "PNG" and meta["content_type"] == "image/png"
        assert img.size == (meta["width"], meta["height"]) == (round(w * 0.25), round(h * 0.25))
    tall = run(http, T2I, prompt="tall", seed=3, aspect_ratio="9:16")["images"][0]
    assert tall["height"] > tall["width"] and load(http, tall["url"]).format == "JPEG"


def test_seed_drawn_when_absent_and_enhance_does_not_reproduce(http: httpx.Client) -> None:
    a, b = run(http, T2I, prompt="no seed"), run(http, T2I, prompt="no seed")
    assert isinstance(a["seed"], int) and isinstance(b["seed"], int) and a["seed"] != b["seed"]
    e1 = run(http, T2I, prompt="a cat", seed=9, enhance_prompt=True)
    e2 = run(http, T2I, prompt="a cat", seed=9, enhance_prompt=True)
    assert e1["prompt"] != "a cat" and e1["prompt"].startswith("a cat") and e1["seed"] == 9
    assert image_bytes(http, e1["images"][0]["url"]) != image_bytes(http, e2["images"][0]["url"])


def test_nsfw_hook_and_sync_mode(http: httpx.Client) -> None:
    out = run(http, T2I, prompt="something nsfw here", num_images=2, sync_mode=True)
    assert out["has_nsfw_concepts"] == [True, True]
    assert all(i["url"].startswith("data:image/jpeg;base64,") for i in out["images"])
    assert load(http, out["images"][0]["url"]).size == (out["images"][0]["width"], out["images"][0]["height"])


def test_edits_are_derived_from_their_input(http: httpx.Client) -> None:
    def edit_of(colour: tuple[int, int, int]) -> Image.Image:
        out = run(http, EDIT, prompt="make it glow", seed=4, image_url=data_uri(colour, (640, 360)))
        return load(http, out["images"][0]["url"])

    red, blue = edit_of((220, 20, 20)), edit_of((20, 20, 220))
    r, g, b = mean(red)
    assert r > g + 40 and r > b + 40
    r, g, b = mean(blue)
    assert b > r + 40 and b > g + 40
    w, h = endpoints.aspect_size("16:9")  # no aspect_ratio: the input's (nearest allowed) shape
    assert red.size == (round(w * 0.25), round(h * 0.25))


def test_multi_combines_its_inputs(http: httpx.Client) -> None:
    out = run(
        http,
        MULTI,
        prompt="merge",
        seed=2,
        aspect_ratio="1:1",
        image_urls=[data_uri((220, 20, 20)), data_uri((20, 20, 220))],
    )
    img = load(http, out["images"][0]["url"]).convert("RGB")
    w, h = img.size
    left, right = mean(img.crop((0, h // 4, w // 2, h // 2))), mean(img.crop((w // 2, h // 4, w, h // 2)))
    assert left[0] > left[2] + 40 and right[2] > right[0] + 40


def test_bad_inputs_fail_the_job_with_fal_error_types(http: httpx.Client, sandbox: str, ctl: Any) -> None:
    cases = {
        "data:image/png;base64,bm90IGFuIGltYWdl": "image_load_error",
        f"{sandbox}/files/missing/x.png": "file_download_error",
        "http://127.0.0.1:9/unreachable.png": "file_download_error",
    }
    for url, error_type in cases.items():
        sub = submit(http, EDIT, prompt="x", image_url=url)
        done = wait_done(http, sub)
        assert done["error_type"] == error_type and done["error"]
        result = http.get(sub["response_url"])
        assert result.status_code == 422 and result.headers["x-fal-error-type"] == error_type
        assert result.json()["detail"][0]["type"] == error_type
        assert result.json()["detail"][0]["loc"] == ["body", "image_url"]
    assert ctl.stats()["failed"] == 3


# ---- storage -----------------------------------------------------------------------------
def _png(colour: tuple[int, int, int]) -> bytes:
    return base64.b64decode(data_uri(colour).partition(",")[2])


def test_upload_cdn_v3_then_use_as_image_url(http: httpx.Client, sandbox: str) -> None:
    token = http.post("/storage/auth/token", params={"storage_type": "fal-cdn-v3"}, json={}).json()
    assert token["token_type"] == "Bearer" and token["base_url"] == sandbox
    assert "T" in token["expires_at"] and token["expires_at"].endswith("+00:00")
    data = _png((20, 200, 20))
    headers = {
        "Authorization": f"Bearer {token['token']}",
        "Content-Type": "image/png",
        "X-Fal-File-Name": "../../etc/my photo.png",
    }
    with httpx.Client(trust_env=False) as bare:
        response = bare.post(f"{token['base_url']}/files/upload", content=data, headers=headers)
        assert response.status_code == 200
        url = response.json()["access_url"]
        assert url.startswith(f"{sandbox}/files/") and url.endswith("/my_photo.png")
        assert bare.get(url).content == data
        assert (
            bare.post(
                f"{sandbox}/files/upload", content=data, headers={**headers, "Authorization": "Bearer forged"}
            ).status_code
            == 401
        )
    out = run(http, EDIT, prompt="greener", seed=1, image_url=url)
    r, g, b = mean(load(http, out["images"][0]["url"]))
    assert g > r + 40 and g > b + 40


def test_upload_gcs_protocol_then_use_as_image_url(http: httpx.Client, sandbox: str) -> None:
    init = http.post(
        "/storage/upload/initiate",
        params={"storage_type": "gcs"},
        json={"file_name": "blue.png", "content_type": "image/png"},
    )
    assert init.status_code == 200
    urls = init.json()
    assert urls["upload_url"].startswith(sandbox) and urls["file_url"].endswith("/blue.png")
    data = _png((20, 20, 220))
    assert http.put(urls["upload_url"], content=data, headers={"Content-Type": "image/png"}).status_code == 200
    served = http.get(urls["file_url"])
    assert served.content == data and served.headers["content-type"] == "image/png"
    out = run(http, EDIT, prompt="bluer", seed=1, image_url=urls["file_url"])
    r, g, b = mean(load(http, out["images"][0]["url"]))
    assert b > r + 40 and b > g + 40


def test_upload_size_cap_413(http: httpx.Client, ctl: Any) -> None:
    ctl.configure(max_upload_bytes=1000)
    token = http.post("/storage/auth/token", json={}).json()["token"]
    response = http.post(
        "/files/upload", content=b"x" * 5000, headers={"Authorization": f"Bearer {token}", "Content-Type": "image/png"}
    )
    assert response.status_code == 413 and response.json()["error_type"] == "payload_too_large"


# ---- faults ------------------------------------------------------------------------------
def test_fault_429_with_retry_after_then_ok(http: httpx.Client, ctl: Any) -> None:
    sub = submit(http, T2I, prompt="x")
    ctl.configure(retry_after=3)
    ctl.set_faults([{"route": "status", "kind": "429", "count": 2}])
    for _ in range(2):
        response = http.get(sub["status_url"])
        assert response.status_code == 429 and response.headers["retry-after"] == "3"
        assert response.headers["x-fal-request-id"] and response.headers["x-fal-error-type"]
    assert http.get(sub["status_url"]).status_code in (200, 202)
    assert ctl.stats()["faults_injected"] == {"429": 2}


def test_fault_500_is_an_app_error_and_ingress_502_503_are_not(http: httpx.Client, ctl: Any) -> None:
    ctl.set_faults([{"route": "submit", "sequence": ["500", "502", "503", "ok"]}])
    app_error = http.post(f"/{T2I}", json={"prompt": "x"})
    assert app_error.status_code == 500 and "x-fal-request-id" in app_error.headers
    assert app_error.json()["error_type"] and app_error.headers["x-fal-error-type"]
    for code in (502, 503):
        ingress = http.post(f"/{T2I}", json={"prompt": "x"})
        assert ingress.status_code == code and "nginx" in ingress.text
        assert "x-fal-request-id" not in ingress.headers and ingress.headers["content-type"].startswith("text/html")
    assert http.post(f"/{T2I}", json={"prompt": "x"}).status_code == 200
    stats = ctl.stats()
    assert stats["submits"] == 1 and stats["requests"]["submit"] == 4
    assert stats["faults_injected"] == {"500": 1, "502": 1, "503": 1}


def test_fault_drop_breaks_the_connection_and_enqueues_nothing(http: httpx.Client, ctl: Any) -> None:
    ctl.set_faults([{"route": "submit", "kind": "drop", "count": 1}])
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):  # cut mid-body, or reset before reading
        http.post(f"/{T2I}", json={"prompt": "x"})
    stats = ctl.stats()
    assert stats["submits"] == 0 and stats["in_queue"] + stats["in_progress"] == 0
    assert http.post(f"/{T2I}", json={"prompt": "x"}).status_code == 200


def test_fault_vanish_forgets_the_request(http: httpx.Client, ctl: Any) -> None:
    ctl.configure(inference_time=0.3)
    sub = submit(http, T2I, prompt="gone")
    ctl.set_faults([{"route": "status", "kind": "vanish", "count": 1}])
    assert http.get(sub["status_url"]).status_code == 404
    assert http.get(sub["response_url"]).status_code == 404
    ctl.set_faults([{"route": "submit", "kind": "vanish", "count": 1}])
    lost = submit(http, T2I, prompt="lost on arrival")
    assert http.get(lost["status_url"]).status_code == 404
    assert ctl.stats()["submits"] == 2


def test_fault_slow_delays_the_response(http: httpx.Client, ctl: Any) -> None:
    sub = submit(http, T2I, prompt="x")
    ctl.set_faults([{"route": "any", "kind": "slow", "count": 1}])
    start = time.monotonic()
    assert http.get(sub["status_url"]).status_code in (200, 202)
    assert time.monotonic() - start >= 0.3  # a lower bound: the fault sleeps at least this long
    http.get(sub["status_url"])
    assert [rule["fired"] for rule in ctl.faults()] == [1]  # count 1: the next request was not delayed


def test_fault_rate_is_seeded_and_repeatable(http: httpx.Client, ctl: Any) -> None:
    def codes() -> list[int]:
        ctl.set_faults([{"route": "status", "kind": "503", "rate": 0.5}], seed=7)
        return [http.get("/fal-ai/flux-pro/requests/nope/status").status_code for _ in range(30)]

    first = codes()
    assert first == codes() and set(first) == {404, 503}


def test_bad_fault_rules_and_settings_are_refused(sandbox: str, ctl: Any) -> None:
    with httpx.Client(base_url=sandbox, trust_env=False) as bare:
        assert bare.post("/_sandbox/faults", json={"rules": [{"route": "status", "kind": "418"}]}).status_code == 400
        assert bare.post("/_sandbox/faults", json={"rules": [{"route": "moon", "kind": "429"}]}).status_code == 400
        assert bare.post("/_sandbox/config", json={"workers": 0}).status_code == 400
        assert bare.post("/_sandbox/config", json={"colour": 1}).status_code == 400
    assert ctl.faults() == []


# ---- headers, timeouts, auth, webhooks, control ------------------------------------------
def test_priority_store_io_and_timeout_headers_are_recorded(http: httpx.Client, ctl: Any) -> None:
    headers = {"X-Fal-Queue-Priority": "low", "X-Fal-Store-IO": "0", "X-Fal-Request-Timeout": "30"}
    sub = submit(http, T2I, headers=headers, prompt="x")
    info = ctl.request_info(sub["request_id"])
    assert info["headers_seen"] == {"priority": "low", "store_io": "0", "timeout": "30"}  # as sent
    assert (info["priority"], info["store_io"], info["timeout"]) == ("low", False, 30.0)  # as understood
    assert info["endpoint"] == T2I and info["arguments"]["prompt"] == "x" and info["arguments"]["num_images"] == 1
    plain = ctl.request_info(submit(http, T2I, prompt="y")["request_id"])
    assert plain["headers_seen"] == {"priority": None, "store_io": None, "timeout": None}
    assert (plain["priority"], plain["store_io"], plain["timeout"]) == ("normal", True, None)
    assert http.post(f"/{T2I}", json={"prompt": "x"}, headers={"X-Fal-Queue-Priority": "urgent"}).status_code == 400


def test_request_timeout_while_queued(http: httpx.Client, ctl: Any) -> None:
    ctl.configure(workers=1, inference_time=PAUSED)  # the blocker keeps the worker: "late" cannot start in time
    blocker = submit(http, T2I, prompt="blocker")
    late = submit(http, T2I, headers={"X-Fal-Request-Timeout": "0.1"}, prompt="late")
    done = wait_done(http, late)
    assert done["error_type"] == "request_timeout"
    result = http.get(late["response_url"])
    assert result.status_code == 504 and result.json()["error_type"] == "request_timeout"
    running = http.get(blocker["status_url"])  # the job that held the worker is untouched by the other's timeout
    assert running.status_code == 202 and running.json()["status"] == "IN_PROGRESS"


def test_auth_is_required(sandbox: str) -> None:
    with httpx.Client(base_url=sandbox, trust_env=False) as bare:
        for headers in ({}, {"Authorization": "Key"}, {"Authorization": "Bearer abc"}):
            response = bare.post(f"/{T2I}", json={"prompt": "x"}, headers=headers)
            assert response.status_code == 401 and response.json()["error_type"] == "unauthorized"
            assert response.headers["x-fal-error-type"] == "unauthorized"
        assert bare.post("/storage/auth/token", json={}).status_code == 401
        assert bare.get("/fal-ai/flux-pro/requests/x/status").status_code == 401
    assert kontext_nb.sandbox.control(sandbox).stats()["submits"] == 0


def test_require_key_compares_the_key_and_never_echoes_it() -> None:
    settings = {"require_key": "s3cret-key", "inference_time": 0.01, "image_scale": 0.1}
    with kontext_nb.sandbox.running(**settings) as url, httpx.Client(base_url=url, trust_env=False) as bare:
        wrong = bare.post(f"/{T2I}", json={"prompt": "x"}, headers={"Authorization": "Key other"})
        assert wrong.status_code == 401 and "s3cret" not in wrong.text and "other" not in wrong.text
        right = bare.post(f"/{T2I}", json={"prompt": "x"}, headers={"Authorization": "Key s3cret-key"})
        assert right.status_code == 200 and "s3cret" not in right.text


def test_webhook_receives_the_final_status(http: httpx.Client, sandbox: str, ctl: Any) -> None:
    response = http.post(f"/{T2I}", params={"fal_webhook": f"{sandbox}/_sandbox/webhooks"}, json={"prompt": "hook"})
    rid = response.json()["request_id"]
    wait_done(http, response.json())
    (hook,) = wait_for(ctl.webhooks, timeout=30)  # delivered after the job ends, on the sandbox's loop
    assert hook["request_id"] == rid and hook["status"] == "OK" and hook["payload"]["images"]


def test_many_jobs_overlap_on_many_workers(http: httpx.Client, ctl: Any) -> None:
    ctl.configure(workers=8, inference_time=0.5, queue_delay=PAUSED)  # all 16 in line before any starts
    subs = [submit(http, T2I, prompt=f"job {i}", seed=i) for i in range(16)]
    ctl.configure(queue_delay=0.0)
    for sub in subs:
        assert wait_done(http, sub).get("error") is None
    spans = [ctl.request_info(s["request_id"]) for s in subs]
    busiest = max(sum(o["started_at"] <= s["started_at"] < o["completed_at"] for o in spans) for s in spans)
    assert 2 <= busiest <= 8  # jobs ran side by side, never more than the 8 workers at once (no wall-clock bound)
    assert ctl.stats()["completed"] == 16


def test_queue_delay_holds_requests_back(http: httpx.Client, ctl: Any) -> None:
    ctl.configure(queue_delay=0.2)
    sub = submit(http, T2I, prompt="x")
    wait_done(http, sub)  # (a status read right after the submit could find it started, on a busy machine)
    info = ctl.request_info(sub["request_id"])
    assert info["started_at"] - info["submitted_at"] >= 0.19


def test_stats_and_reset(http: httpx.Client, ctl: Any) -> None:
    run(http, T2I, prompt="x")
    stats = ctl.stats()
    assert stats["submits"] == 1 and stats["completed"] == 1 and stats["requests"]["submit"] == 1
    assert stats["billed"] == 0.08, "one image of [max], as fal would bill it"
    assert set(stats) == {
        "billed",
        "submits",
        "requests",
        "faults_injected",
        "completed",
        "failed",
        "cancelled",
        "in_queue",
        "in_progress",
    }
    ctl.reset()
    assert ctl.stats()["submits"] == 0


def test_command_line_serves_until_interrupted() -> None:
    root = Path(kontext_nb.sandbox.__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "kontext_nb.sandbox", "--port", "0", "--inference-time", "0.01"]
    command += ["--image-scale", "0.1", "--fault", "status:429:count=1", "--require-key", "cli-key"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("kontext_nb sandbox listening on http://127.0.0.1:"), line
        url = line.split()[-1]
        with httpx.Client(base_url=url, headers={"Authorization": "Key cli-key"}, trust_env=False) as client:
            sub = submit(client, T2I, prompt="from the command line")
            assert client.get(sub["status_url"]).status_code == 429
            assert wait_done(client, sub)["status"] == "COMPLETED"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0 and "cli-key" not in out + err  # stopped cleanly, never echoed the key
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
