"""The registry and its one parser: on small documents of our own, and on the vendored snapshot."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from kontext_nb import models
from kontext_nb.errors import ValidationError
from kontext_nb.models import MISSING, Registry, parse

from .docs import PROMPT, document

SIZE_SCHEMA = {
    "ImageSize": {
        "type": "object",
        "properties": {
            "width": {"type": "integer", "exclusiveMinimum": 0, "maximum": 4096},
            "height": {"type": "integer", "exclusiveMinimum": 0, "maximum": 4096},
        },
    }
}


def test_inputs_keep_fals_order_types_enums_ranges_and_defaults() -> None:
    doc = document(
        "acme/editor/edit",
        {
            **PROMPT,
            "num_images": {"type": "integer", "minimum": 1, "maximum": 4, "default": 1},
            "image_urls": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 3},
            "mask_image_url": {"anyOf": [{"type": "string"}, {"type": "null"}], "description": "The mask."},
            "image_size": {
                "anyOf": [{"$ref": "#/components/schemas/ImageSize"}, {"type": "string", "enum": ["square", "auto"]}],
                "default": "auto",
            },
            "quality": {"allOf": [{"$ref": "#/components/schemas/Quality"}], "default": "high"},
        },
        required=("prompt", "image_urls"),
        order=["prompt", "image_urls", "mask_image_url", "quality", "image_size", "num_images"],
        extra_schemas={**SIZE_SCHEMA, "Quality": {"type": "string", "enum": ["low", "high"]}},
    )
    m = parse(doc)
    assert m.input_names == ("prompt", "image_urls", "mask_image_url", "quality", "image_size", "num_images")
    kinds = {f.name: f.kind for f in m.inputs}
    assert kinds == {
        "prompt": "string",
        "image_urls": "images",
        "mask_image_url": "image",
        "quality": "enum",
        "image_size": "size",
        "num_images": "integer",
    }
    assert m.input("quality").enum == ("low", "high") and m.input("quality").default == "high"
    assert m.input("image_size").enum == ("square", "auto") and m.input("image_size").max_side == 4096
    assert (m.input("num_images").minimum, m.input("num_images").maximum) == (1, 4)
    assert m.input("image_urls").required and not m.input("mask_image_url").required
    assert m.input("mask_image_url").default is MISSING
    assert m.image_inputs == ("image_urls", "mask_image_url") and m.takes_mask and m.takes_seed is False
    assert m.mode == "edit" and m.count_field == "num_images" and m.output.images == "images"
    assert m.pricing is None and m.price_source == "not published"


def test_a_document_without_an_input_schema_is_one_line() -> None:
    doc = document("acme/x", PROMPT)
    doc["openapi"]["paths"] = {}
    with pytest.raises(ValidationError, match=r"acme/x has no input schema") as err:
        parse(doc)
    assert "\n" not in str(err.value)


def test_a_cyclic_schema_parses_without_looping() -> None:
    doc = document(
        "acme/x",
        {**PROMPT, "tree": {"$ref": "#/components/schemas/Node"}},
        extra_schemas={"Node": {"type": "object", "properties": {"next": {"$ref": "#/components/schemas/Node"}}}},
    )
    assert parse(doc).input("tree").kind == "object"


def test_lookup_by_alias_or_id_variants_and_unknown_names() -> None:
    t2i = document("acme/gen", PROMPT, alias="gen", category="text-to-image", sibling="acme/gen/edit")
    edit = document(
        "acme/gen/edit", {**PROMPT, "image_url": {"type": "string"}}, required=("prompt", "image_url"), alias="gen-edit"
    )
    reg = Registry(lambda: {"acme/gen": t2i, "acme/gen/edit": edit})
    assert reg.get("GEN-edit").endpoint_id == "acme/gen/edit" and reg.get("acme/gen").alias == "gen"
    assert reg.variant("gen-edit", "text-to-image").endpoint_id == "acme/gen"
    assert reg.variant("gen", "edit").endpoint_id == "acme/gen/edit"
    with pytest.raises(ValidationError, match=r"has no inpaint endpoint .* \(it does edit, text-to-image\)"):
        reg.variant("gen", "inpaint")
    with pytest.raises(ValidationError, match=r"model='gen-edt' is not a model .*did you mean 'gen-edit'") as err:
        reg.get("gen-edt")
    assert "\n" not in str(err.value)
    assert [m.endpoint_id for m in reg.search("EDIT")] == ["acme/gen/edit"]
    assert [m.endpoint_id for m in reg.search(category="text-to-image")] == ["acme/gen"]


def test_the_snapshot_keeps_kontexts_aliases_and_every_model_parses() -> None:
    reg = models.registry()
    assert reg.get("max").endpoint_id == "fal-ai/flux-pro/kontext/max"
    assert reg.get("pro").endpoint_id == "fal-ai/flux-pro/kontext"
    assert reg.get("dev").endpoint_id == "fal-ai/flux-kontext/dev"
    assert reg.get("lora").endpoint_id == "fal-ai/flux-kontext-lora"
    assert reg.variant("max", "text-to-image").endpoint_id == "fal-ai/flux-pro/kontext/max/text-to-image"
    assert reg.variant("pro", "multi").endpoint_id == "fal-ai/flux-pro/kontext/multi"
    assert reg.variant("lora", "inpaint").endpoint_id == "fal-ai/flux-kontext-lora/inpaint"
    every = reg.all()
    assert len(every) == len(reg.endpoint_ids()) >= 10
    for m in every:
        assert m.inputs and m.takes("prompt"), m.endpoint_id
        assert m.output.images is not None, m.endpoint_id
        assert m.category in ("text-to-image", "image-to-image"), m.endpoint_id


def test_a_declared_price_is_labelled_and_an_estimate_says_so() -> None:
    unpriced = document("acme/free", PROMPT)
    reg = Registry(lambda: {"acme/free": unpriced})
    assert reg.get("acme/free").pricing is None
    m = reg.set_price("acme/free", 0.02)
    assert m.pricing is not None and m.pricing.unit_price == 0.02 and "declared by you" in m.price_source
    with pytest.raises(ValidationError, match="per='token' is not allowed"):
        reg.set_price("acme/free", 0.02, per="token")
    with pytest.raises(ValidationError, match="unit_price=-1"):
        reg.set_price("acme/free", -1)
    dev = models.get("dev")
    assert dev.pricing is not None and dev.price_source.startswith("an estimate, not fal's")


def test_models_table_lists_prices_or_not_published() -> None:
    frame = models.models_frame()
    assert list(frame.columns[:4]) == ["endpoint_id", "alias", "title", "category"]
    assert frame.iloc[0]["endpoint_id"].startswith(("fal-ai/flux-pro/kontext", "fal-ai/flux-kontext"))
    row = frame.set_index("endpoint_id").loc["fal-ai/flux-pro/kontext/max"]
    assert row["unit"] == "image" and row["unit_price"] == 0.08 and row["takes_seed"]
    assert set(models.models_frame("kontext", "text-to-image")["category"]) == {"text-to-image"}


def test_kx_models_is_the_package_called() -> None:
    import kontext_nb as kx
    import kontext_nb.models.catalog as catalog

    assert kx.models is models and catalog.Registry is Registry  # one name: the package, callable
    frame = kx.models("kontext", category="text-to-image")
    assert len(frame) >= 3 and set(frame["category"]) == {"text-to-image"}
    assert kx.model("max-t2i").endpoint_id == "fal-ai/flux-pro/kontext/max/text-to-image"


def test_load_ext_reads_no_snapshot_and_help_still_lists_every_option() -> None:
    """%load_ext stays as cheap as before the registry: the magics' help is built on first ``%kontext?``."""
    code = (
        "import kontext_nb.models.catalog as c\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "from IPython.core.oinspect import getdoc\n"
        "ip = InteractiveShell.instance()\n"
        "ip.run_line_magic('load_ext', 'kontext_nb')\n"
        "print('READ' if c.registry()._docs is not None else 'NOT READ')\n"
        "print('--guidance' in getdoc(ip.find_line_magic('kontext')))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("FAL_KEY", "FAL_KEY_ID", "FAL_KEY_SECRET")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True, timeout=120)
    assert out.stdout.splitlines()[-2:] == ["NOT READ", "True"], out.stdout + out.stderr
