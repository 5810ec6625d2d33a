"""The classroom proxy with the whole family: the new endpoints are allowed, validated before the upstream sees
them, reserved at the per-megapixel estimate and settled from the returned sizes; the safety checker stays on."""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from PIL import Image

from kontext_nb import endpoints, models
from kontext_nb.proxy import Limits, ProxyServer
from kontext_nb.sandbox import SandboxServer

from .conftest import UNLIMITED, auth, wait_completed

DEV = "fal-ai/flux-kontext/dev"
INPAINT = "fal-ai/flux-kontext-lora/inpaint"


def data_uri(size: tuple[int, int], colour: str = "teal") -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


async def submit(server: ProxyServer, token: str, endpoint: str, body: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30.0, trust_env=False) as client:
        return await client.post(f"{server.url}/{endpoint}", json=body, headers=auth(token))


async def complete(server: ProxyServer, token: str, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await submit(server, token, endpoint, body)
    assert response.status_code == 200, response.text
    async with httpx.AsyncClient(timeout=30.0, trust_env=False) as client:
        await wait_completed(client, response.json()["status_url"], token)
        return dict(response.json())


@pytest.mark.parametrize(
    ("endpoint", "body", "words"),
    [
        # as fal answers (pydantic's shape): the field in loc, what is allowed in msg
        (DEV, {"num_inference_steps": 3}, '"num_inference_steps"],"msg":"Input should be greater than or equal to 10'),
        (DEV, {"acceleration": "warp"}, "\"acceleration\"],\"msg\":\"Input should be 'none', 'regular' or 'high'"),
        (
            "fal-ai/flux-kontext-lora",
            {"loras": [{"path": "https://e.org/x", "scale": 9}]},
            '"loras"],"msg":"0: Input should be less than or equal to 4',
        ),
        (INPAINT, {"strength": 3}, '"strength"],"msg":"Input should be less than or equal to 1'),
        ("fal-ai/flux-kontext-lora/text-to-image", {"image_size": "huge"}, '"image_size"],"msg":"Input should be'),
    ],
)
def test_bad_values_are_refused_before_the_upstream(
    make_proxy: Callable[..., ProxyServer], upstream: SandboxServer, endpoint: str, body: dict[str, Any], words: str
) -> None:
    server = make_proxy(UNLIMITED)
    token = server.classroom.add_student("Ada")
    args: dict[str, Any] = {"prompt": "x"}
    if not endpoint.endswith("text-to-image"):
        args["image_url"] = data_uri((64, 64))
    if endpoint == INPAINT:
        args |= {"mask_url": data_uri((64, 64), "white"), "reference_image_url": data_uri((64, 64))}
    response = asyncio.run(submit(server, token, endpoint, {**args, **body}))
    assert response.status_code == 422 and words in response.text
    assert upstream.stats()["submits"] == 0


def test_the_safety_checker_stays_on_in_a_class(
    make_proxy: Callable[..., ProxyServer], upstream: SandboxServer
) -> None:
    server = make_proxy(UNLIMITED)
    token = server.classroom.add_student("Ada")
    body = {"prompt": "x", "image_url": data_uri((64, 64)), "enable_safety_checker": False}
    response = asyncio.run(submit(server, token, DEV, body))
    assert response.status_code == 403 and "safety checker stays on" in response.text
    assert upstream.stats()["submits"] == 0


def test_dev_is_reserved_at_the_registrys_bound_and_settled_from_the_returned_sizes(
    make_proxy: Callable[..., ProxyServer], upstream: SandboxServer
) -> None:
    upstream.configure(image_scale=1.0)
    server = make_proxy(Limits(images_per_day=None, dollars_per_session=0.2, jobs_in_flight=None, class_in_flight=8))
    token = server.classroom.add_student("Ada")
    # a data URI input is measured from its header (issue 21, point 3): two 320x240 outputs, 1 MP each
    body = {"prompt": "x", "image_url": data_uri((320, 240)), "num_images": 2}
    sub = asyncio.run(complete(server, token, DEV, body))
    row = server.classroom.job(sub["request_id"])
    assert row is not None and row["outcome"] == "ok"
    bound = models.bound(models.get(DEV), {**body, "num_images": 2}, [(320, 240)])  # the registry's upper bound
    assert row["cost_reserved"] == pytest.approx(bound * 1e6, rel=1e-6) and row["cost_reserved"] >= row["cost"]
    # what it cost: two 320x240 images, 1 MP each (match_input), nothing sent to fal named a safety_tolerance
    assert row["cost"] == pytest.approx(2 * endpoints.PRICE_PER_MEGAPIXEL["dev"] * 1e6, rel=1e-6)
    assert "safety_tolerance" not in upstream.request_info(row["upstream_id"] or sub["request_id"])["arguments"]


def test_a_student_inpaints_with_a_local_lora_through_the_proxy(
    make_proxy: Callable[..., ProxyServer], upstream: SandboxServer, make_session: Callable[..., Any], tmp_path: Any
) -> None:
    from kontext_nb.config import RetryPolicy
    from kontext_nb.result import Result

    server = make_proxy(UNLIMITED)
    session = make_session(
        base_url=server.url,
        key=server.classroom.add_student("Ada"),
        retry=RetryPolicy(attempts=5, base_delay=0.01, max_delay=0.2),
        runs_dir=str(tmp_path / "ada-runs"),
    )
    lora = tmp_path / "ink.safetensors"
    lora.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      " + bytes(100))
    mask = Image.new("L", (64, 48), 0)
    mask.paste(255, (16, 12, 48, 36))
    out = session.inpaint(Image.new("RGB", (64, 48), "teal"), "ink", mask=mask, seed=1, loras=[(str(lora), 0.7)])
    assert isinstance(out, Result) and out.endpoint == INPAINT
    row = server.classroom.job(out.request_id)
    assert row is not None and row["outcome"] == "ok" and row["safety_tolerance"] is None
    assert any("Loaded LoRA ink.safetensors" in line["message"] for line in out.logs)  # uploaded, then fetched upstream
