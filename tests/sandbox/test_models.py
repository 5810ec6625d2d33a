"""The sandbox speaks every model of the vendored snapshot, from its published schema alone.

Each endpoint round-trips through unmodified fal_client over real HTTP: its required inputs (built from the
schema) are accepted, the result has the shape its output schema declares, the images are real and labelled, and
the bill follows its snapshot price. A hypothesis property drives the one validator: inputs generated from a
schema are accepted, inputs outside an enum, a range or a type, or missing a required field, get fal's 422.
The catalogue routes (OpenAPI documents, Model Search, pricing) answer offline, and fal's JS client calls a
non-Kontext endpoint.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fal_client
import httpx
import pytest
from conftest import SANDBOX_FAST  # tests/conftest.py
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from kontext_nb import models as registry
from kontext_nb.models import snapshot
from kontext_nb.sandbox import SandboxServer, models, schema

from .test_fal_client import sync_client

NAMES = snapshot.names()
JS = Path(__file__).resolve().parents[1] / "js"


def _png(size: tuple[int, int] = (40, 30), colour: tuple[int, int, int] = (200, 80, 40)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


IMAGE = _png()


@pytest.fixture(scope="module")
def server(sandbox_server: SandboxServer) -> SandboxServer:
    """The run's sandbox, reset once for this module (fast settings)."""
    sandbox_server.reset()
    sandbox_server.configure(**SANDBOX_FAST)
    return sandbox_server


@pytest.fixture(scope="module")
def client(server: SandboxServer) -> Iterator[fal_client.SyncClient]:
    made = sync_client(server.url)
    yield made
    made._client.close()


def _is_image(name: str) -> bool:
    return name.endswith(("image_url", "image_urls", "mask_url"))


def required_inputs(model: models.Model) -> dict[str, Any]:
    """The least a request needs, from the schema: a prompt, and an image for each required image input."""
    v = schema.validator(model.id)
    out: dict[str, Any] = {}
    for name in v.schema.get("required") or ():
        node = v.resolve(v.schema["properties"][name])
        if node.get("type") == "array":
            out[name] = [IMAGE] * max(1, int(node.get("minItems", 1)))
        elif _is_image(name):
            out[name] = IMAGE
        else:
            out[name] = "a lighthouse in fog"
    return out


@pytest.mark.parametrize("endpoint_id", NAMES)
def test_every_snapshot_model_round_trips_through_fal_client(
    endpoint_id: str, client: fal_client.SyncClient, server: SandboxServer
) -> None:
    model = models.get(endpoint_id)
    assert model is not None
    arguments = {**required_inputs(model), "seed": 7} if model.takes_seed else required_inputs(model)
    handle = client.submit(endpoint_id, arguments)
    result = handle.get()
    out = model.output_schema
    assert set(out.get("required") or ()) <= set(result) <= set(out["properties"])
    images = result["images"] if "images" in out["properties"] else [result["image"]]
    assert images and all(m["url"].startswith(server.url) for m in images)
    first = httpx.get(images[0]["url"], trust_env=False)
    assert first.status_code == 200 and first.headers["content-type"] == images[0]["content_type"]
    assert Image.open(io.BytesIO(first.content)).size == (images[0]["width"], images[0]["height"])
    if "seed" in result and model.takes_seed:
        assert result["seed"] == 7
    bill = next(b for b in server.bills()["bills"] if b["request_id"] == handle.request_id)
    ran = schema.with_defaults(endpoint_id, arguments)
    assert bill["endpoint"] == endpoint_id and bill["amount"] == pytest.approx(expected_cost(model, images, ran))


def expected_cost(model: models.Model, images: list[dict[str, Any]], ran: dict[str, Any]) -> float:
    """What the snapshot's price says these images cost (Kontext: endpoints.py's, the same figures but [dev])."""
    if model.kontext is not None:
        return model.kontext.cost(len(images), [(m["width"], m["height"]) for m in images])
    if model.pricing is None:
        return 0.0
    rule, price = model.pricing["rule"], model.pricing["unit_price"]
    if rule["per"] == "image":
        if "table" in rule:  # + the prompt's text tokens as the sandbox reads them: a token per 4 bytes
            key = "|".join(str(ran.get(f)) for f in rule["table"]["field"])
            tokens = math.ceil(len(ran["prompt"].encode()) / 4) * rule["text_tokens"]["input"]["per_1000"] / 1000
            return len(images) * (rule["table"]["worst_case"].get(key, rule["table"]["default"]) + tokens)
        if "multiplier" in rule:
            return len(images) * price * rule["multiplier"]["values"][ran[rule["multiplier"]["field"]]]
        return len(images) * price
    mp = sum(max(1, math.ceil(m["width"] * m["height"] / 2**20)) for m in images)
    mp += len([n for n, _ in model.image_inputs]) if rule["of"] == "input+output" else 0  # 1 small input each
    return rule["first"] + rule["extra"] * (mp - 1) if "first" in rule else mp * price


# ---- the one validator, as a property ------------------------------------------------------------------------


def value_of(v: schema.Validator, name: str, node: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Valid values for one schema node (image inputs as data URIs; sizes and counts kept small)."""
    node = dict(v.resolve(node))
    branches = node.get("anyOf") or node.get("oneOf")
    if branches:
        return st.one_of([value_of(v, name, b) for b in branches])
    if "enum" in node:
        return st.sampled_from(node["enum"])
    kind = node.get("type")
    if kind == "integer":
        low = int(node.get("minimum", node.get("exclusiveMinimum", -1) + 1 if "exclusiveMinimum" in node else 0))
        high = node.get("maximum", 2**31 if name == "seed" else low + 2)
        return st.integers(low, min(int(high), low + 2 if name != "seed" else int(high)))
    if kind == "number":
        return st.floats(node.get("minimum", -10.0), node.get("maximum", 10.0), allow_nan=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "string":
        return st.just(IMAGE) if _is_image(name) else st.text(min_size=1, max_size=20).filter(str.strip)
    if kind == "array":
        items = node.get("items") or {}
        low = int(node.get("minItems", 0))
        return st.lists(value_of(v, name, items), min_size=low, max_size=max(low, min(2, node.get("maxItems", 2))))
    props = node.get("properties") or {}
    if props:
        small = {"width": st.integers(16, 64), "height": st.integers(16, 64)}
        req = set(node.get("required") or ())
        return st.fixed_dictionaries(
            {k: small.get(k, value_of(v, k, p)) for k, p in props.items() if k in req},
            optional={k: small.get(k, value_of(v, k, p)) for k, p in props.items() if k not in req},
        )
    return st.just({})


@st.composite
def valid_request(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    endpoint_id = draw(st.sampled_from(NAMES))
    v = schema.validator(endpoint_id)
    props = v.schema["properties"]
    required = set(v.schema.get("required") or ())
    chosen = draw(st.sets(st.sampled_from(sorted(props)))) | required
    body = {name: draw(value_of(v, name, props[name])) for name in sorted(chosen)}
    return endpoint_id, body


BROKEN = "\u2603 not one of them"


@st.composite
def invalid_request(draw: st.DrawFn) -> tuple[str, dict[str, Any], str, str]:
    """A valid request with one field broken: (endpoint, body, field, pydantic error type expected)."""
    endpoint_id, body = draw(valid_request())
    v = schema.validator(endpoint_id)
    props = v.schema["properties"]
    ways = []
    for name, node in props.items():
        node = v.resolve(node)
        if "enum" in node:
            ways.append((name, BROKEN, "literal_error"))
        if node.get("type") in ("integer", "number") and "maximum" in node:
            ways.append((name, node["maximum"] + 1, "less_than_equal"))
        if node.get("type") in ("integer", "number") and "minimum" in node:
            ways.append((name, node["minimum"] - 1, "greater_than_equal"))
        if node.get("type") == "integer":
            ways.append((name, "twelve", "int_parsing"))
        if node.get("type") == "boolean":
            ways.append((name, "perhaps", "bool_parsing"))
        if node.get("type") == "array":
            ways.append((name, {"not": "a list"}, "list_type"))
    for name in v.schema.get("required") or ():
        ways.append((name, None, "missing"))
    name, bad, kind = draw(st.sampled_from(ways))
    broken = {k: val for k, val in body.items() if k != name}
    if kind != "missing":
        broken[name] = bad
    return endpoint_id, broken, name, kind


def test_the_validator_accepts_every_model_s_required_inputs() -> None:
    for name in NAMES:
        model = models.get(name)
        assert model is not None
        assert schema.validate(name, required_inputs(model))[1] == [], name


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_request())
def test_inputs_generated_from_a_schema_are_accepted(request: tuple[str, dict[str, Any]]) -> None:
    endpoint_id, body = request
    given_, errors = schema.validate(endpoint_id, {**body, "an_unknown_field": 1})
    assert errors == [] and "an_unknown_field" not in given_


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(invalid_request())
def test_inputs_outside_an_enum_a_range_or_a_type_are_refused(request: tuple[str, dict[str, Any], str, str]) -> None:
    endpoint_id, body, name, kind = request
    errors = schema.validate(endpoint_id, body)[1]
    assert {"loc": ["body", name], "type": kind} in [{"loc": e["loc"], "type": e["type"]} for e in errors]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(good=valid_request(), bad=invalid_request())
def test_over_http_valid_inputs_are_queued_and_broken_ones_get_fal_s_422(
    server: SandboxServer, good: tuple[str, dict[str, Any]], bad: tuple[str, dict[str, Any], str, str]
) -> None:
    headers = {"Authorization": "Key sandbox-test"}
    with httpx.Client(base_url=server.url, headers=headers, trust_env=False, timeout=10) as http:
        endpoint_id, body = good
        accepted = http.post(f"/{endpoint_id}", json=body)
        assert accepted.status_code == 200 and accepted.json()["status"] == "IN_QUEUE", accepted.text
        http.put(f"/{endpoint_id}/requests/{accepted.json()['request_id']}/cancel")
        endpoint_id, body, name, kind = bad
        refused = http.post(f"/{endpoint_id}", json=body)
        assert refused.status_code == 422, refused.text
        assert {"loc": ["body", name], "type": kind} in [
            {"loc": e["loc"], "type": e["type"]} for e in refused.json()["detail"]
        ]


# ---- the catalogue, offline ----------------------------------------------------------------------------------


def test_the_openapi_document_of_any_snapshot_model(server: SandboxServer) -> None:
    with httpx.Client(base_url=server.url, trust_env=False) as http:
        for endpoint_id in NAMES:
            got = http.get("/api/openapi/queue/openapi.json", params={"endpoint_id": endpoint_id})
            assert got.status_code == 200 and got.json() == snapshot.document(endpoint_id)["openapi"]
            assert got.json()["info"]["x-fal-metadata"]["endpointId"] == endpoint_id
        missing = http.get("/api/openapi/queue/openapi.json", params={"endpoint_id": "fal-ai/nope"})
        assert missing.status_code == 404


def test_model_search_find_search_and_expand(server: SandboxServer) -> None:
    with httpx.Client(base_url=server.url, trust_env=False) as http:
        every = http.get("/v1/models", params={"limit": 100}).json()
        assert [m["endpoint_id"] for m in every["models"]] == NAMES and every["has_more"] is False
        found = http.get(
            "/v1/models",
            params=[
                ("endpoint_id", "fal-ai/flux-2-flex/edit"),
                ("endpoint_id", "fal-ai/nope"),
                ("expand", "openapi-3.0"),
            ],
        ).json()
        (entry,) = found["models"]
        assert entry["metadata"]["display_name"] == "FLUX.2 [flex] Edit"
        assert entry["metadata"]["category"] == "image-to-image"
        assert entry["openapi"] == snapshot.document("fal-ai/flux-2-flex/edit")["openapi"]
        edits = http.get("/v1/models", params={"q": "seedream", "category": "image-to-image"}).json()["models"]
        assert {m["endpoint_id"] for m in edits} == {
            "fal-ai/bytedance/seedream/v4/edit",
            "fal-ai/bytedance/seedream/v4.5/edit",
        }
        assert "openapi" not in edits[0]
        paged = http.get("/v1/models", params={"limit": 5}).json()
        assert len(paged["models"]) == 5 and paged["has_more"] and paged["next_cursor"]


def test_pricing_of_snapshot_models_and_none_for_an_unpublished_price(server: SandboxServer) -> None:
    ids = "fal-ai/flux-pro/kontext/max,fal-ai/flux-2-flex/edit,fal-ai/reve/fast/edit,fal-ai/nano-banana/edit"
    headers = {"Authorization": "Key sandbox-test"}
    got = httpx.get(f"{server.url}/v1/models/pricing", params={"endpoint_id": ids}, headers=headers, trust_env=False)
    prices = {p["endpoint_id"]: (p["unit_price"], p["unit"]) for p in got.json()["prices"]}
    assert prices == {
        "fal-ai/flux-pro/kontext/max": (0.08, "image"),
        "fal-ai/flux-2-flex/edit": (0.05, "megapixels"),
        "fal-ai/reve/fast/edit": (0.01, "images"),
    }


# ---- fal's JS client -----------------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_fals_js_client_calls_a_non_kontext_endpoint(server: SandboxServer) -> None:
    if not (JS / "node_modules" / "@fal-ai" / "client").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=JS, check=True, capture_output=True, timeout=240)
    endpoint_id = "fal-ai/bytedance/seedream/v4/edit"
    env = {
        **os.environ,
        "BASE": server.url,
        "KEY": "sandbox-test",
        "ENDPOINT": endpoint_id,
        "INPUT": json.dumps({"prompt": "winter", "image_urls": ["$blob", "$blob"], "seed": 5, "num_images": 2}),
    }
    done = subprocess.run(["node", "models.mjs"], cwd=JS, env=env, capture_output=True, text=True, timeout=120)
    line = json.loads(done.stdout.strip().splitlines()[-1])
    assert done.returncode == 0 and line["ok"], (line, done.stderr[-2000:])
    assert len(line["data"]["images"]) == 2 and line["data"]["seed"] == 5
    info = server.request_info(line["requestId"])
    assert info["endpoint"] == endpoint_id and len(info["arguments"]["image_urls"]) == 2


def test_usage_sums_what_the_bills_cost_where_a_first_megapixel_costs_more(
    client: fal_client.SyncClient, server: SandboxServer
) -> None:
    endpoint_id = "fal-ai/flux-2-max/edit"  # $0.07 the first processed megapixel, $0.03 each further one
    client.submit(endpoint_id, {"prompt": "dusk", "image_urls": [IMAGE, IMAGE], "seed": 1}).get()
    bills = [b["amount"] for b in server.bills()["bills"] if b["endpoint"] == endpoint_id]
    headers = {"Authorization": "Key sandbox-test"}
    params = {"endpoint_id": endpoint_id, "expand": "summary"}
    got = httpx.get(f"{server.url}/v1/models/usage", params=params, headers=headers, trust_env=False).json()
    (line,) = got["summary"]
    assert line["cost"] == pytest.approx(sum(bills)) and 0.07 + 2 * 0.03 in [pytest.approx(b) for b in bills]


@pytest.mark.parametrize(
    ("endpoint_id", "arguments", "dollars"),
    [
        # fal's pages: $0.08 an image, 4K outputs at twice the rate
        ("fal-ai/nano-banana-2/edit", {"image_urls": [IMAGE], "resolution": "4K", "num_images": 2}, 2 * 0.16),
        # per image, by quality and size, + $0.005 per 1,000 input text tokens ("a red door": 10 bytes, 3 tokens)
        ("fal-ai/gpt-image-1.5", {"quality": "low", "image_size": "1536x1024"}, 0.013 + 3 * 0.005 / 1000),
        # + $0.015 for web search and $0.002 for high thinking, per image (the dearer reading of fal's page)
        (
            "fal-ai/nano-banana-2/edit",
            {"image_urls": [IMAGE], "num_images": 2, "enable_web_search": True, "thinking_level": "high"},
            2 * (0.08 + 0.015 + 0.002),
        ),
        # $0.05 per megapixel of input and of output, each rounded up: two inputs and one output
        ("fal-ai/flux-2-flex/edit", {"image_urls": [IMAGE, IMAGE]}, 3 * 0.05),
        ("fal-ai/reve/fast/edit", {"image_url": IMAGE, "num_images": 3}, 3 * 0.01),
        ("fal-ai/qwen-image-edit", {"image_url": IMAGE}, 0.03),
        ("fal-ai/nano-banana/edit", {"image_urls": [IMAGE]}, 0.0),  # fal's price not published: billed $0
    ],
)
def test_each_price_rule_bills_what_fal_s_page_says(
    endpoint_id: str, arguments: dict[str, Any], dollars: float, client: fal_client.SyncClient, server: SandboxServer
) -> None:
    handle = client.submit(endpoint_id, {"prompt": "a red door", **arguments})
    handle.get()
    (bill,) = [b for b in server.bills()["bills"] if b["request_id"] == handle.request_id]
    assert bill["amount"] == pytest.approx(dollars)


def test_the_sandbox_reads_each_model_as_the_registry_does() -> None:
    """One reader: the sandbox's model is the registry's parse of the same snapshot file (its inputs and outputs;
    its price the snapshot's, where the registry may add a labelled one of its own: [dev]), and its bill comes from
    the registry's interpreter (``kontext_nb.models.billed``), not a second one."""
    for endpoint_id in snapshot.names():
        served, known = models.get(endpoint_id), registry.registry().get(endpoint_id)
        assert served is not None and (served.spec.inputs, served.spec.output) == (known.inputs, known.output)
        assert [n for n, _ in served.image_inputs] == list(served.spec.image_inputs)
