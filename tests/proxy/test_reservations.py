"""Issue 21, point 3: per-megapixel jobs are reserved from the real size of the inputs the proxy holds.

Before, every input was priced as 2048×2048: an 8192² inpaint reserved $0.14 against $2.24, and with
``num_images: 4`` $0.56 against $8.96 — one job could commit far more than a student's quota. The expected
figures come from the notebook's own estimator (``Endpoint.estimate``), so a change to pricing moves both.
"""

from __future__ import annotations

import base64
import io
import zlib
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from PIL import Image

from kontext_nb import models
from kontext_nb.proxy import Limits, ProxyServer
from kontext_nb.proxy.inputs import data_uri_size
from kontext_nb.proxy.limits import to_micros
from kontext_nb.sandbox import SandboxServer

from .conftest import PAUSED, auth

INPAINT = "fal-ai/flux-kontext-lora/inpaint"
DEV = "fal-ai/flux-kontext/dev"
OPEN = Limits(images_per_day=None, dollars_per_session=None, jobs_in_flight=None)


def png(side: int) -> bytes:
    """A real PNG of side×side (one bit per pixel, so even 8192² is a few KB)."""
    buffer = io.BytesIO()
    Image.new("1", (side, side)).save(buffer, "PNG")
    return buffer.getvalue()


def data_uri(side: int) -> str:
    return "data:image/png;base64," + base64.b64encode(png(side)).decode()


def reserved(server: ProxyServer, job_id: str) -> int:
    job = server.classroom.job(job_id)
    assert job is not None, f"no job {job_id} in the proxy's state"
    return int(job["cost_reserved"])


def expected(endpoint: str, body: dict[str, Any], size: tuple[int, int] | None) -> int:
    """The registry's bound (models.bound), every image sent at its size (``size``: the source's, None unknown)."""
    model = models.get(endpoint)
    others = [data_uri_size(v) for k, v in body.items() if k in model.image_inputs and k != "image_url"]
    return to_micros(models.bound(model, {**model.defaults(), **body}, [size, *others]))


@pytest.mark.usefixtures("proxy_state")  # both state backends
def test_data_uri_inputs_are_reserved_by_the_registrys_bound_at_their_real_size(
    make_proxy: Callable[..., ProxyServer], upstream: SandboxServer
) -> None:
    upstream.configure(queue_delay=PAUSED)  # nothing runs: only the reservations are looked at
    server = make_proxy(OPEN)
    token = server.classroom.add_student("Mallory")
    big, small = data_uri(8192), data_uri(512)
    cases = [
        (INPAINT, {"image_url": big, "mask_url": small, "reference_image_url": small}, (8192, 8192)),
        (INPAINT, {"image_url": big, "mask_url": small, "reference_image_url": small, "num_images": 4}, (8192, 8192)),
        (DEV, {"image_url": big, "resolution_mode": "match_input"}, (8192, 8192)),
        (DEV, {"image_url": big, "resolution_mode": "match_input", "num_images": 4}, (8192, 8192)),
        (DEV, {"image_url": small, "resolution_mode": "match_input"}, (512, 512)),
        (DEV, {"image_url": "https://example.com/a.png", "resolution_mode": "match_input"}, None),
    ]
    with httpx.Client(timeout=60.0, trust_env=False) as client:
        for endpoint, body, size in cases:
            answer = client.post(f"{server.url}/{endpoint}", json={"prompt": "x", **body}, headers=auth(token))
            assert answer.status_code == 200, answer.text
            assert reserved(server, answer.json()["request_id"]) == expected(endpoint, body, size), (endpoint, size)
    assert expected(INPAINT, cases[1][1], (8192, 8192)) == to_micros(8.96)  # the figure


@pytest.mark.usefixtures("proxy_state")  # both state backends
def test_a_job_larger_than_the_quota_is_refused_before_it_is_sent(
    make_proxy: Callable[..., ProxyServer], upstream: SandboxServer
) -> None:
    server = make_proxy(Limits(images_per_day=None, dollars_per_session=1.00, jobs_in_flight=None))
    token = server.classroom.add_student("Mallory")
    body = {"prompt": "x", "image_url": data_uri(8192), "mask_url": data_uri(64), "reference_image_url": data_uri(64)}
    with httpx.Client(timeout=60.0, trust_env=False) as client:
        refused = client.post(f"{server.url}/{INPAINT}", json=body, headers=auth(token))
    assert refused.status_code == 429 and refused.headers["x-kontext-limit"] == "dollars-per-session"
    assert "$2.24" in refused.json()["detail"]
    assert upstream.stats()["submits"] == 0


@pytest.mark.usefixtures("proxy_state")  # both state backends
def test_an_image_uploaded_through_the_proxy_is_reserved_at_its_size(
    make_proxy: Callable[..., ProxyServer], upstream: SandboxServer
) -> None:
    upstream.configure(queue_delay=PAUSED)
    server = make_proxy(OPEN)
    token = server.classroom.add_student("Ada")
    with httpx.Client(timeout=60.0, trust_env=False) as client:
        direct = client.post(f"{server.url}/files/upload", content=png(4096), headers=auth(token)).json()["access_url"]
        start = client.post(
            f"{server.url}/storage/upload/initiate",
            json={"file_name": "a.png", "content_type": "image/png"},
            headers=auth(token),
        ).json()
        assert client.put(start["upload_url"], content=png(3000)).status_code == 200
        for url, size in ((direct, (4096, 4096)), (start["file_url"], (3000, 3000))):
            body = {"image_url": url, "resolution_mode": "match_input", "num_images": 2}
            answer = client.post(f"{server.url}/{DEV}", json={"prompt": "x", **body}, headers=auth(token))
            assert answer.status_code == 200, answer.text
            assert reserved(server, answer.json()["request_id"]) == expected(DEV, body, size)


def test_the_size_is_read_from_the_header_alone() -> None:
    """A data URI is never decoded into pixels: a header claiming 12000² (and no pixels) is read as 12000²."""
    head = png(8)
    fields = (12000).to_bytes(4, "big") * 2 + head[24:29]
    chunk = b"IHDR" + fields
    ihdr = head[:8] + len(fields).to_bytes(4, "big") + chunk + zlib.crc32(chunk).to_bytes(4, "big") + head[33:]
    assert data_uri_size("data:image/png;base64," + base64.b64encode(ihdr).decode()) == (12000, 12000)
    assert data_uri_size("data:image/png;base64,!!!!") is None
    assert data_uri_size("data:text/plain;base64,aGVsbG8=") is None
