"""Issue 23: the classroom proxy allows endpoints by id, alias or pattern (``--allow 'fal-ai/flux-2-*/edit'``),
priced from the model registry (models.bound) for quotas and reservations. Every snapshot model round-trips through
one proxy in front of the sandbox, over real HTTP with unmodified fal_client; what a class does not allow is refused
before anything is sent; the reservation is never below what the sandbox bills."""

from __future__ import annotations

import argparse
import base64
import io
import logging
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

import fal_client
import httpx
import pytest
from declared import prices_declared, undeclared  # tests/declared.py
from fal_client.client import USER_AGENT
from PIL import Image

from kontext_nb import models
from kontext_nb.config import RetryPolicy
from kontext_nb.proxy import ProxyConfig, ProxyError, ProxyServer, start
from kontext_nb.proxy.__main__ import _price, main
from kontext_nb.proxy.limits import to_micros
from kontext_nb.sandbox import SandboxServer, schema

from .conftest import CLASS_KEY, UNLIMITED, UPSTREAM_FAST, auth

NAMES = models.registry().endpoint_ids()
FLUX2_EDITS = "fal-ai/flux-2-*/edit"


def _png(size: tuple[int, int] = (40, 30)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 80, 40)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


IMAGE = _png()


def student_client(url: str, token: str) -> fal_client.SyncClient:
    """Unmodified fal_client whose httpx client sends fal's queue host to the proxy (the path kept)."""

    class Routed(httpx.BaseTransport):
        def __init__(self) -> None:
            self.inner, self.target = httpx.HTTPTransport(trust_env=False), httpx.URL(url)

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.host.endswith("fal.run") or request.url.host.endswith("fal.ai"):
                moved = request.url.copy_with(scheme=self.target.scheme, host=self.target.host, port=self.target.port)
                headers = request.headers.copy()
                headers["Host"] = moved.netloc.decode("ascii")
                request = httpx.Request(request.method, moved, headers=headers, stream=request.stream)
            return self.inner.handle_request(request)

    class Student(fal_client.SyncClient):
        @cached_property
        def _client(self) -> httpx.Client:
            return httpx.Client(
                transport=Routed(),
                headers={"Authorization": self._auth.header_value, "User-Agent": USER_AGENT},
                timeout=self.default_timeout,
            )

    return Student(key=token)


@pytest.fixture(scope="module")
def priced() -> Iterator[None]:
    with prices_declared(0.05, NAMES):
        yield


@pytest.fixture(scope="module")
def every_model(
    upstream_server: SandboxServer, tmp_path_factory: pytest.TempPathFactory, priced: None
) -> Iterator[tuple[ProxyServer, fal_client.SyncClient]]:
    """One proxy for the module, allowing every snapshot model by pattern, and one student's fal_client."""
    upstream_server.reset()
    upstream_server.configure(**UPSTREAM_FAST)
    config = ProxyConfig(
        state_dir=tmp_path_factory.mktemp("allowed"),
        port=0,
        upstream=upstream_server.url,
        fal_key=CLASS_KEY,
        retry=RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.1),
        poll_interval=0.02,
        limits=UNLIMITED,
        allow=("fal-ai/*",),
    )
    with start(config) as server:
        client = student_client(server.url, server.classroom.add_student("Ada"))
        yield server, client
        client._client.close()


def required_inputs(model: models.Model) -> dict[str, Any]:
    """The least a request needs, from the schema: a prompt and an image for each required image input."""
    out: dict[str, Any] = {}
    for f in model.inputs:
        if f.required and f.kind == "images":
            out[f.name] = [IMAGE] * max(1, f.min_items or 1)
        elif f.required and f.kind == "image":
            out[f.name] = IMAGE
        elif f.required:
            out[f.name] = "a lighthouse in fog"
    return out


@pytest.mark.parametrize("endpoint_id", NAMES)
def test_every_snapshot_model_round_trips_through_the_proxy(
    endpoint_id: str, every_model: tuple[ProxyServer, fal_client.SyncClient], upstream_server: SandboxServer
) -> None:
    server, client = every_model
    model = models.get(endpoint_id)
    arguments = {**required_inputs(model), **({"seed": 7} if model.takes_seed else {})}
    handle = client.submit(endpoint_id, arguments)
    result = handle.get()
    images = models.normalise(result).images
    assert images and all(str(m["url"]).startswith(server.url) for m in images)  # the proxy's own URLs
    first = httpx.get(str(images[0]["url"]), trust_env=False)
    assert first.status_code == 200 and Image.open(io.BytesIO(first.content)).size == (
        images[0]["width"],
        images[0]["height"],
    )
    row = server.classroom.job(handle.request_id)
    assert row is not None and row["outcome"] == "ok" and row["endpoint"] == endpoint_id
    bill = next(b for b in upstream_server.bills()["bills"] if b["endpoint"] == endpoint_id)
    ran = schema.with_defaults(endpoint_id, arguments)
    assert row["cost_reserved"] == to_micros(models.bound(model, ran, [(40, 30)] * len(model.image_inputs)))
    assert row["cost_reserved"] >= to_micros(bill["amount"])  # priced through the proxy: never under the bill
    declared = model.pricing is not None and model.pricing.source.startswith("declared")  # the sandbox bills $0
    # fal returns no token counts: a rule with text tokens records their bound, never under what was billed
    tokens = model.pricing is not None and "text_tokens" in model.pricing.rule
    assert (
        row["cost"] >= to_micros(bill["amount"]) if declared or tokens else row["cost"] == to_micros(bill["amount"])
    ), (
        row["cost"],
        bill,
        result,
    )


def test_a_disallowed_endpoint_is_refused_before_anything_is_sent(make_proxy: Any, upstream: SandboxServer) -> None:
    server = make_proxy(UNLIMITED, allow=(FLUX2_EDITS, "max"))
    token = server.classroom.add_student("Bo")
    allowed = {
        "fal-ai/flux-2-flex/edit",
        "fal-ai/flux-2-max/edit",
        "fal-ai/flux-2-pro/edit",
        models.get("max").endpoint_id,
    }
    assert server.allowed.ids == allowed
    with httpx.Client(timeout=30.0, trust_env=False) as http:
        for endpoint in ("fal-ai/bytedance/seedream/v4/edit", "fal-ai/flux-pro/kontext", "fal-ai/no-such-model"):
            answer = http.post(
                f"{server.url}/{endpoint}", json={"prompt": "x", "image_url": IMAGE}, headers=auth(token)
            )
            assert answer.status_code == 403, answer.text
            detail = answer.json()["detail"]
            assert isinstance(detail, str) and "\n" not in detail
            assert FLUX2_EDITS in detail and "max" in detail and endpoint in detail
        answer = http.post(
            f"{server.url}/fal-ai/flux-2-flex/edit", json={"prompt": "x", "image_urls": [IMAGE]}, headers=auth(token)
        )
        assert answer.status_code == 200, answer.text
    assert upstream.stats()["submits"] <= 1  # only the allowed one went on


def test_an_allowed_model_without_a_price_is_refused_before_anything_is_sent(
    make_proxy: Any, upstream: SandboxServer
) -> None:
    endpoint = "fal-ai/flux-2-pro/edit"  # fal publishes no price for it
    with undeclared(endpoint):
        assert models.can_price(models.get(endpoint)) is not None or pytest.fail("the snapshot now prices it")
        server = make_proxy(UNLIMITED, allow=(FLUX2_EDITS,))
        token = server.classroom.add_student("Cy")
        with httpx.Client(timeout=30.0, trust_env=False) as http:
            body = {"prompt": "x", "image_urls": [IMAGE]}
            answer = http.post(f"{server.url}/{endpoint}", json=body, headers=auth(token))
        assert answer.status_code == 403 and "price" in answer.json()["detail"]
        assert upstream.stats()["submits"] == 0
        assert "refused for want of a published price" in "\n".join(server.banner())


def test_a_pattern_matching_no_model_is_a_one_line_startup_error(
    upstream: SandboxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ProxyError) as info:
        start(ProxyConfig(state_dir=tmp_path / "s", port=0, upstream=upstream.url, fal_key=CLASS_KEY, allow=("x/*",)))
    assert "'x/*' matches no model" in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "s").exists()  # refused before the class's state was touched
    code = main(["--state", str(tmp_path / "s"), "--port", "0", "--upstream", "sandbox", "--allow", "fal-ai/nope-*"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "'fal-ai/nope-*' matches no model" in err
    proxy_log = logging.getLogger("kontext_nb.proxy")  # main() left no handler on this test's (closed) stderr
    assert proxy_log.handlers == [] and proxy_log.level == logging.NOTSET


def test_a_declared_price_lets_a_model_without_one_through(make_proxy: Any, upstream: SandboxServer) -> None:
    endpoint = "fal-ai/flux-2-pro/edit"
    with undeclared(endpoint):
        assert _price("flux2-pro-edit=0.03/megapixel") == ("flux2-pro-edit", 0.03, "megapixel")
        assert _price("flux2-pro-edit=$0.2") == ("flux2-pro-edit", 0.2, "image")
        with pytest.raises(argparse.ArgumentTypeError):
            _price("flux2-pro-edit=0.2/token")
        server = make_proxy(UNLIMITED, allow=(FLUX2_EDITS,), prices={"flux2-pro-edit": (0.03, "megapixel")})
        model = models.get(endpoint)
        assert model.pricing is not None and model.pricing.unit_price == 0.03
        token = server.classroom.add_student("Di")
        body = {"prompt": "x", "image_urls": [IMAGE]}
        with httpx.Client(timeout=30.0, trust_env=False) as http:
            answer = http.post(f"{server.url}/{endpoint}", json=body, headers=auth(token))
        assert answer.status_code == 200, answer.text
        row = server.classroom.job(answer.json()["request_id"])
        assert row is not None
        assert row["cost_reserved"] == to_micros(models.bound(model, schema.with_defaults(endpoint, body), [(40, 30)]))
