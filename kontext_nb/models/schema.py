"""One parser: a fal endpoint's snapshot document (its OpenAPI 3 document, price and provenance) -> a frozen Model.

The input schema is the one the queue POST's requestBody names, the output schema the one the result GET
(``.../requests/{request_id}``) returns; ``$ref``s are resolved, ``anyOf`` with null (pydantic's optional fields) is
unwrapped, and inputs keep fal's ``x-fal-order-properties`` order (the order fal's playground shows them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ValidationError

MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING", "__bool__": lambda self: False})()
"""The default of an input that has none (None can be a real default)."""

IMAGE_KINDS = ("image", "images")


@dataclass(frozen=True)
class InputField:
    """One input of a model, as its schema describes it.

    ``kind`` is what kontext_nb does with it: string, integer, float, boolean, enum, image (one URL), images (a list
    of URLs), size (an ``image_size``: a preset name or ``{width, height}``), loras, object or array."""

    name: str
    kind: str
    type: str
    """The JSON-schema type as fal wrote it (string, integer, number, boolean, array, object; '' when mixed)."""
    description: str = ""
    required: bool = False
    default: Any = MISSING
    enum: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    min_items: int | None = None
    max_items: int | None = None
    max_side: int | None = None
    """size: the largest width/height ``{width, height}`` may have (from fal's ImageSize schema), if published."""
    title: str = ""

    @property
    def has_default(self) -> bool:
        return self.default is not MISSING


@dataclass(frozen=True)
class OutputShape:
    """Where a model's output puts what kontext_nb reads (each None when the output has no such field)."""

    fields: tuple[str, ...]
    images: str | None
    """'images' (a list) or 'image' (one object): the field holding the returned image(s)."""
    seed: str | None
    """'seed' (one integer) or 'seeds' (one per image)."""
    nsfw: str | None
    """'has_nsfw_concepts' or 'nsfw_content_detected' (a list of booleans), where the model returns one."""


@dataclass(frozen=True)
class Pricing:
    """fal's price of an endpoint and the rule that turns a request into dollars (models/pricing.py reads it)."""

    unit_price: float
    unit: str
    """'image', 'megapixel', or fal's own word for other units (priced only by a rule that names them)."""
    currency: str
    rule: Mapping[str, Any] = field(compare=False)
    source: str = ""


@dataclass(frozen=True)
class Model:
    """One fal endpoint: names, inputs in fal's order, output shape, price and where each fact came from."""

    endpoint_id: str
    alias: str
    title: str
    category: str
    """fal's category: 'text-to-image', 'image-to-image', ..."""
    sibling: str | None
    inputs: tuple[InputField, ...]
    output: OutputShape
    pricing: Pricing | None
    """None: fal publishes no price (kontext_nb then refuses to bound a job's cost: models/pricing.py)."""
    provenance: Mapping[str, Any] = field(compare=False, repr=False)
    live: bool = False
    """Loaded from fal with a key (kx.model), not from the vendored snapshot."""

    def input(self, name: str) -> InputField:
        for f in self.inputs:
            if f.name == name:
                return f
        raise KeyError(name)

    def takes(self, name: str) -> bool:
        return any(f.name == name for f in self.inputs)

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.inputs)

    def defaults(self) -> dict[str, Any]:
        return {f.name: f.default for f in self.inputs if f.has_default}

    @property
    def image_inputs(self) -> tuple[str, ...]:
        """Every input that takes an image URL (or a list of them), masks and references included."""
        return tuple(f.name for f in self.inputs if f.kind in IMAGE_KINDS)

    @property
    def source_field(self) -> InputField | None:
        """The input the source image(s) go in: ``image_url`` or ``image_urls`` (or the first image input that is
        neither a mask nor a reference)."""
        for name in ("image_urls", "image_url"):
            if self.takes(name):
                return self.input(name)
        return next((f for f in self.inputs if f.kind in IMAGE_KINDS and not _secondary(f.name)), None)

    @property
    def mask_field(self) -> InputField | None:
        return next((f for f in self.inputs if f.kind == "image" and "mask" in f.name), None)

    @property
    def takes_seed(self) -> bool:
        return self.takes("seed")

    @property
    def takes_mask(self) -> bool:
        return self.mask_field is not None

    @property
    def count_field(self) -> str | None:
        """``num_images`` or ``max_images``: how many images one request asks for."""
        return next((n for n in ("num_images", "max_images") if self.takes(n)), None)

    @property
    def mode(self) -> str:
        """kontext_nb's mode: text-to-image, edit (one source, or a list starting at one; a mask may be optional),
        multi (2+ sources), inpaint (a mask required)."""
        mask = self.mask_field
        if mask is not None and mask.required:
            return "inpaint"
        src = self.source_field
        if src is None:
            return "text-to-image"
        if src.kind == "images" and (src.min_items or 1) >= 2:
            return "multi"
        return "edit"

    @property
    def price_source(self) -> str:
        return self.pricing.source if self.pricing else "not published"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        """``kx.model(name)`` in a notebook: its help (models/help.py), a table; plain text in a terminal."""
        from .help import help_html, help_text

        return {"text/plain": help_text(self), "text/html": help_html(self)}


def _secondary(name: str) -> bool:
    return "mask" in name or "reference" in name or "control" in name


# -- parsing ------------------------------------------------------------------------------------------------------
def parse(doc: Mapping[str, Any], *, live: bool = False) -> Model:
    """A snapshot document (the notes' format) -> Model. ValidationError (one line) when it has no input schema."""
    endpoint_id = str(doc["endpoint_id"])
    api = doc.get("openapi") or {}
    inp, out = io_schemas(endpoint_id, api)
    if inp is None:
        raise ValidationError(f"fal's OpenAPI document for {endpoint_id} has no input schema (no queue POST body)")
    meta = (api.get("info") or {}).get("x-fal-metadata") or {}
    prov = dict(doc.get("provenance") or {})
    return Model(
        endpoint_id=endpoint_id,
        alias=str(doc.get("alias") or endpoint_id),
        title=str(doc.get("title") or (api.get("info") or {}).get("title") or endpoint_id),
        category=str(doc.get("category") or meta.get("category") or ""),
        sibling=doc.get("sibling"),
        inputs=_inputs(api, inp),
        output=_output(api, out),
        pricing=_pricing(doc.get("pricing"), str(prov.get("pricing") or "")),
        provenance=prov,
        live=live,
    )


def io_schemas(endpoint_id: str, api: Mapping[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    paths = api.get("paths") or {}
    inp = out = None
    for path, ops in paths.items():
        if not isinstance(ops, Mapping):
            continue
        post = ops.get("post")
        if post and "/requests/" not in path and inp is None:
            inp = _body_schema((post.get("requestBody") or {}).get("content"))
        get = ops.get("get")
        if get and path.endswith("/requests/{request_id}"):
            ok = (get.get("responses") or {}).get("200") or {}
            out = _body_schema(ok.get("content"))
    return (resolve(api, inp) if inp else None), (resolve(api, out) if out else None)


def _body_schema(content: Any) -> dict[str, Any] | None:
    if not isinstance(content, Mapping):
        return None
    media = content.get("application/json") or next(iter(content.values()), None)
    schema = media.get("schema") if isinstance(media, Mapping) else None
    return dict(schema) if isinstance(schema, Mapping) else None


def resolve(api: Mapping[str, Any], schema: Any, depth: int = 0) -> dict[str, Any]:
    """Follow ``$ref`` (merging the referring schema's own keys over the target), ``allOf`` of one schema, and
    pydantic's ``anyOf: [X, {type: null}]``. Depth-bounded: a cyclic schema stops resolving, never loops."""
    if not isinstance(schema, Mapping):
        return {}
    out = dict(schema)
    if depth > 12:
        return out
    ref = out.pop("$ref", None)
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = api
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, Mapping) else {}
        out = {**resolve(api, target, depth + 1), **out}
    all_of = out.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1:
        del out["allOf"]
        out = {**resolve(api, all_of[0], depth + 1), **out}
    any_of = out.get("anyOf")
    if isinstance(any_of, list):
        kept = [resolve(api, s, depth + 1) for s in any_of if not (isinstance(s, Mapping) and s.get("type") == "null")]
        if len(kept) == 1:
            del out["anyOf"]
            out = {**kept[0], **out}
        else:
            out["anyOf"] = kept
    return out


def _inputs(api: Mapping[str, Any], schema: Mapping[str, Any]) -> tuple[InputField, ...]:
    props = schema.get("properties") or {}
    order = [n for n in schema.get("x-fal-order-properties") or [] if n in props]
    order += [n for n in props if n not in order]
    required = set(schema.get("required") or [])
    return tuple(_field(api, name, resolve(api, props[name]), name in required) for name in order)


def _field(api: Mapping[str, Any], name: str, s: Mapping[str, Any], required: bool) -> InputField:
    jtype = s.get("type") if isinstance(s.get("type"), str) else ""
    enum: tuple[Any, ...] = tuple(s.get("enum") or ())
    max_side: int | None = None
    kind = {"integer": "integer", "number": "float", "boolean": "boolean", "array": "array", "object": "object"}.get(
        str(jtype), "string"
    )
    if "anyOf" in s:  # fal's image_size: a preset name or an ImageSize object
        options = s["anyOf"]
        names = [v for o in options if o.get("type") == "string" for v in o.get("enum") or ()]
        sized = [o for o in options if {"width", "height"} <= set(o.get("properties") or {})]
        if sized:
            kind, enum = "size", tuple(names)
            sides = [sized[0]["properties"][k].get("maximum") for k in ("width", "height")]
            max_side = int(min(x for x in sides if x is not None)) if any(x is not None for x in sides) else None
        else:
            kind = "string"
    elif jtype == "object" and {"width", "height"} <= set(s.get("properties") or {}):
        kind = "size"
    elif enum:
        kind = "enum"
    elif jtype == "string" and _is_image_name(name):
        kind = "image"
    elif jtype == "array":
        items = resolve(api, s.get("items"))
        if items.get("type") == "string" and _is_image_name(name.removesuffix("s")):
            kind = "images"
        elif {"path", "scale"} <= set(items.get("properties") or {}):
            kind = "loras"
    return InputField(
        name=name,
        kind=kind,
        type=str(jtype),
        description=str(s.get("description") or ""),
        required=required,
        default=s.get("default", MISSING),
        enum=enum,
        minimum=_num(s.get("minimum", s.get("exclusiveMinimum"))),
        maximum=_num(s.get("maximum", s.get("exclusiveMaximum"))),
        min_items=_int(s.get("minItems")),
        max_items=_int(s.get("maxItems")),
        max_side=max_side,
        title=str(s.get("title") or ""),
    )


def _is_image_name(name: str) -> bool:
    return name.endswith("_url") and ("image" in name or "mask" in name)


def _num(x: Any) -> float | None:
    """A bound as written: an integer stays one (2**63-1 as a float would be 2**63)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return x


def _int(x: Any) -> int | None:
    return int(x) if isinstance(x, int) and not isinstance(x, bool) else None


def _output(api: Mapping[str, Any], schema: Mapping[str, Any] | None) -> OutputShape:
    props = (schema or {}).get("properties") or {}
    names = tuple(props)
    images = next((n for n in ("images", "image") if n in props), None)
    seed = next((n for n in ("seed", "seeds") if n in props), None)
    nsfw = next((n for n in ("has_nsfw_concepts", "nsfw_content_detected") if n in props), None)
    return OutputShape(fields=names, images=images, seed=seed, nsfw=nsfw)


UNITS = {"images": "image", "image": "image", "megapixels": "megapixel", "megapixel": "megapixel"}


def _pricing(p: Any, source: str) -> Pricing | None:
    if not isinstance(p, Mapping) or not isinstance(p.get("unit_price"), (int, float)):
        return None
    unit = str(p.get("unit") or "")
    rule = p.get("rule")
    if not isinstance(rule, Mapping):  # fal's pricing API gives a unit and a price, no rule: the unit's plain rule
        rule = {"per": UNITS.get(unit, unit)}
        if rule["per"] == "megapixel":
            rule = {"per": "megapixel", "of": "output"}
    return Pricing(float(p["unit_price"]), UNITS.get(unit, unit), str(p.get("currency") or "USD"), rule, source)
