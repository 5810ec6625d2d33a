"""The vendored model snapshot keeps its contract (the project's notes, models-format.md): one file per endpoint,
fal's OpenAPI document with its input and output schemas reachable, a price rule the pricing code knows or null,
and for every fact where it came from and when."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kontext_nb import endpoints
from kontext_nb.models import snapshot

FOLDER = Path(snapshot.__file__).parent
KEYS = {"endpoint_id", "alias", "title", "category", "sibling", "openapi", "pricing", "provenance"}
NAMES = snapshot.names()


def _ref(doc: dict, path: str, method: str) -> dict:
    op = doc["paths"][path][method]
    node = op["requestBody"] if method == "post" else op["responses"]["200"]
    ref = node["content"]["application/json"]["schema"]["$ref"]
    assert ref.startswith("#/components/schemas/")
    return doc["components"]["schemas"][ref.rsplit("/", 1)[-1]]


def test_one_file_per_endpoint_named_by_its_id_and_shipped_as_package_data() -> None:
    files = sorted(p.name for p in FOLDER.glob("*.json"))
    assert files == sorted(n.replace("/", "__") + ".json" for n in NAMES)
    assert sorted(NAMES) == NAMES and set(endpoints.ENDPOINTS) <= set(NAMES)
    pyproject = (FOLDER.parents[2] / "pyproject.toml").read_text(encoding="utf-8")
    assert '"models/snapshot/*.json"' in pyproject
    assert snapshot.documents() is snapshot.documents()  # read once, cached
    with pytest.raises(KeyError):
        snapshot.document("fal-ai/not-in-the-snapshot")


def test_aliases_are_unique_and_kontext_keeps_its_own() -> None:
    aliases = [snapshot.document(n)["alias"] for n in NAMES]
    assert len(set(aliases)) == len(aliases) and all(re.fullmatch(r"[a-z0-9][a-z0-9.\-]*", a) for a in aliases)
    assert {snapshot.document(n)["alias"]: n for n in NAMES if n in endpoints.ENDPOINTS}.keys() >= {
        "max", "pro", "dev", "lora"
    }  # fmt: skip


@pytest.mark.parametrize("endpoint_id", NAMES)
def test_each_file_keeps_the_contract(endpoint_id: str) -> None:
    doc = snapshot.document(endpoint_id)
    assert set(doc) == KEYS and doc["endpoint_id"] == endpoint_id
    assert doc["category"] in ("text-to-image", "image-to-image")
    assert doc["sibling"] is None or doc["sibling"] in NAMES
    api = doc["openapi"]
    assert api["info"]["x-fal-metadata"]["endpointId"] == endpoint_id
    assert api["info"]["x-fal-metadata"]["category"] == doc["category"]
    inputs = _ref(api, "/" + endpoint_id, "post")
    outputs = _ref(api, f"/{endpoint_id}/requests/{{request_id}}", "get")
    assert "prompt" in inputs["required"] and set(inputs["x-fal-order-properties"]) == set(inputs["properties"])
    assert {"images", "image"} & set(outputs["properties"])
    for node in [*inputs["properties"].values(), *outputs["properties"].values()]:
        for ref in re.findall(r"#/components/schemas/([\w.\-]+)", str(node)):
            assert ref in api["components"]["schemas"], ref
    prov = doc["provenance"]
    assert {"schema", "schema_retrieved", "pricing", "pricing_retrieved", "not_published"} <= set(prov)
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", prov["schema_retrieved"]) and isinstance(prov["not_published"], list)
    price = doc["pricing"]
    if price is None:
        assert prov["pricing"].startswith("not published")
        return
    assert price["currency"] == "USD" and price["unit_price"] > 0
    assert "https://fal.ai/" in prov["pricing"] or "endpoints.py" in prov["pricing"], "a price names its source"
    rule = price["rule"]
    assert rule["per"] in ("image", "megapixel")
    if rule["per"] == "megapixel":
        assert rule["of"] in ("output", "input+output")
    if "table" in rule:
        assert rule["table"]["default"] == max(rule["table"]["worst_case"].values())
