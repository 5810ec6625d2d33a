"""Input validation as fal's own servers do it, for the sandbox and the classroom proxy: one validator, over the
JSON schema each endpoint publishes (its OpenAPI document, from the vendored snapshot; ``$ref`` resolved by the
model registry's one resolver, kontext_nb.models.schema.resolve), for every model alike.

fal's apps declare their inputs as pydantic models (fal's OpenAPI schema per endpoint is generated from them), so a
fal-compatible server validates the way pydantic v2 does in its default ("lax") mode: ``num_images: "2"``,
``seed: 3.0`` and ``guidance_scale: "3.5"`` are converted, an integer ``safety_tolerance`` is refused (the field is
a string enum), unknown fields are ignored, and every bad field is listed, each as ``{loc, msg, type}`` with
pydantic's type names (``missing``, ``int_parsing``, ``literal_error``, ...). That is why this is not the
``jsonschema`` library: it validates strictly (``"2"`` is not an integer there) and knows none of pydantic's error
types, so fal's answers could not be reproduced with it.

kontext_nb's own validator (``endpoints.validate``) stays stricter on purpose: it catches a typo'd field or a
string number before anything is sent.

Not documented by fal, so chosen here and said so: ``null`` for an optional field counts as not given; a required
string that is blank is refused as pydantic's ``string_too_short`` (fal's pages give prompts no minimum length);
an error inside a list names the item's index (``0: ...``), a missing key inside an object its name.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from typing import Any

from kontext_nb.models import schema as registry_schema

from . import models

_TRUE = {"1", "on", "t", "true", "y", "yes"}
_FALSE = {"0", "off", "f", "false", "n", "no"}
_INT = re.compile(r"\s*[+-]?\d+\s*")
_TYPE_ERRORS = {
    "string": ("string_type", "Input should be a valid string"),
    "integer": ("int_type", "Input should be a valid integer"),
    "number": ("float_type", "Input should be a valid number"),
    "boolean": ("bool_type", "Input should be a valid boolean"),
    "array": ("list_type", "Input should be a valid list"),
    "object": ("dict_type", "Input should be a valid dictionary"),
}


class Invalid(Exception):
    def __init__(self, kind: str, msg: str, path: tuple[str, ...] = (), **ctx: Any) -> None:
        super().__init__(msg)
        self.kind, self.msg, self.path, self.ctx = kind, msg, path, ctx

    def within(self, step: str) -> Invalid:
        return Invalid(self.kind, self.msg, (step, *self.path), **self.ctx)

    @property
    def text(self) -> str:
        return (".".join(self.path) + ": " if self.path else "") + self.msg


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise Invalid("int_from_float", "Input should be a valid integer, got a number with a fractional part")
        return int(value)
    if isinstance(value, str):
        if not _INT.fullmatch(value):
            raise Invalid("int_parsing", "Input should be a valid integer, unable to parse string as an integer")
        return int(value)
    raise Invalid(*_TYPE_ERRORS["integer"])


def _number(value: Any) -> float:
    if isinstance(value, (bool, int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise Invalid(
                "float_parsing", "Input should be a valid number, unable to parse string as a number"
            ) from None
    else:
        raise Invalid(*_TYPE_ERRORS["number"])
    if not math.isfinite(number):
        raise Invalid("finite_number", "Input should be a finite number")
    return number


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    if isinstance(value, (int, str)):
        raise Invalid("bool_parsing", "Input should be a valid boolean, unable to interpret input")
    raise Invalid(*_TYPE_ERRORS["boolean"])


def _choices(choices: list[Any]) -> str:
    quoted = [f"'{c}'" for c in choices]
    return ", ".join(quoted[:-1]) + f" or {quoted[-1]}" if len(quoted) > 1 else quoted[0]


def _ranged(node: Mapping[str, Any], value: float) -> None:
    low, high = node.get("minimum"), node.get("maximum")
    if low is not None and value < low:
        raise Invalid("greater_than_equal", f"Input should be greater than or equal to {_num(low)}", ge=low)
    if high is not None and value > high:
        raise Invalid("less_than_equal", f"Input should be less than or equal to {_num(high)}", le=high)
    above, below = node.get("exclusiveMinimum"), node.get("exclusiveMaximum")
    if above is not None and value <= above:
        raise Invalid("greater_than", f"Input should be greater than {_num(above)}", gt=above)
    if below is not None and value >= below:
        raise Invalid("less_than", f"Input should be less than {_num(below)}", lt=below)


class Validator:
    """One endpoint's input schema, with the OpenAPI document its ``$ref``s point into."""

    def __init__(self, schema: Mapping[str, Any], api: Mapping[str, Any]) -> None:
        self.api = api
        self.schema = self.resolve(schema)

    def resolve(self, node: Mapping[str, Any]) -> Mapping[str, Any]:
        """The registry's resolver (one for the project): ``$ref``, ``allOf`` of one, pydantic's optional anyOf."""
        return registry_schema.resolve(self.api, node)

    def check(self, node: Mapping[str, Any], value: Any, *, required: bool = False) -> Any:
        """The value converted as pydantic's lax mode would, or Invalid."""
        node = self.resolve(node)
        branches = node.get("anyOf") or node.get("oneOf")
        if branches:
            return self._either([self.resolve(b) for b in branches], value)
        if "enum" in node:
            choices = list(node["enum"])
            if value not in choices or isinstance(value, bool) != any(isinstance(c, bool) for c in choices):
                raise Invalid("literal_error", f"Input should be {_choices(choices)}", expected=choices)
            if node.get("type") == "string" and not isinstance(value, str):
                raise Invalid("literal_error", f"Input should be {_choices(choices)}", expected=choices)
            return value
        kind = node.get("type")
        if kind == "integer":
            number: float = _integer(value)
            _ranged(node, number)
            return number
        if kind == "number":
            number = _number(value)
            _ranged(node, number)
            return number
        if kind == "boolean":
            return _boolean(value)
        if kind == "string":
            return self._string(node, value, required)
        if kind == "array":
            return self._array(node, value)
        if kind == "object" or "properties" in node:
            return self._object(node, value)
        return value

    def _string(self, node: Mapping[str, Any], value: Any, required: bool) -> str:
        if not isinstance(value, str):
            raise Invalid(*_TYPE_ERRORS["string"])
        low = node.get("minLength", 1 if required else None)
        if low is not None and len(value.strip() if required else value) < low:
            raise Invalid(
                "string_too_short", f"String should have at least {low} character{'s' * (low != 1)}", min_length=low
            )
        high = node.get("maxLength")
        if high is not None and len(value) > high:
            raise Invalid("string_too_long", f"String should have at most {high} characters", max_length=high)
        return value

    def _array(self, node: Mapping[str, Any], value: Any) -> list[Any]:
        if not isinstance(value, (list, tuple)):
            raise Invalid(*_TYPE_ERRORS["array"])
        low, high = node.get("minItems", 0), node.get("maxItems")
        if len(value) < low:
            raise Invalid("too_short", f"List should have at least {low} items after validation, not {len(value)}")
        if high is not None and len(value) > high:
            raise Invalid("too_long", f"List should have at most {high} items after validation, not {len(value)}")
        items = node.get("items") or {}
        out = []
        for i, item in enumerate(value):
            try:
                out.append(self.check(items, item))
            except Invalid as exc:
                raise exc.within(str(i)) from None
        return out

    def _object(self, node: Mapping[str, Any], value: Any) -> dict[str, Any]:
        props: Mapping[str, Any] = node.get("properties") or {}
        if not isinstance(value, dict):
            if node.get("title") and props:
                raise Invalid("model_type", f"Input should be a valid dictionary or instance of {node['title']}")
            raise Invalid(*_TYPE_ERRORS["object"])
        if not props:
            return dict(value)
        out: dict[str, Any] = {}
        for name in node.get("required") or ():
            if value.get(name) is None:
                raise Invalid("missing", "Field required", (name,))
        for name, sub in props.items():
            if value.get(name) is not None:
                out[name] = self.check(sub, value[name], required=name in (node.get("required") or ()))
            elif "default" in self.resolve(sub):
                out[name] = self.resolve(sub)["default"]
        return out

    def _either(self, branches: list[Mapping[str, Any]], value: Any) -> Any:
        """anyOf: the first branch that takes the value; else the error of the branch of the value's own kind."""
        errors: list[tuple[Mapping[str, Any], Invalid]] = []
        for branch in branches:
            try:
                return self.check(branch, value)
            except Invalid as exc:
                errors.append((branch, exc))
        for branch, err in errors:
            stringy = "enum" in branch or branch.get("type") == "string"
            objecty = branch.get("type") == "object" or "properties" in branch
            if (isinstance(value, str) and stringy) or (isinstance(value, dict) and objecty):
                raise err
        objects = [b for b, _ in errors if b.get("type") == "object" or "properties" in b]
        if objects:
            title = objects[0].get("title", "object")
            raise Invalid("model_type", f"Input should be a valid dictionary or instance of {title}")
        raise errors[0][1]

    def validate(self, body: Mapping[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """(the converted inputs that were given, every error in fal's 422 shape); unknown fields are dropped."""
        given: dict[str, Any] = {}
        errors: list[dict[str, Any]] = []
        required = set(self.schema.get("required") or ())
        for name in self.order():
            node = self.schema["properties"][name]
            value = body.get(name)
            if value is None:
                if name in required:
                    kind, msg = (
                        ("missing", "Field required")
                        if name not in body
                        else _TYPE_ERRORS.get(
                            str(self.resolve(node).get("type")), ("string_type", "Input should be a valid string")
                        )
                    )
                    errors.append({"loc": ["body", name], "msg": msg, "type": kind})
                continue
            try:
                given[name] = self.check(node, value, required=name in required)
            except Invalid as exc:
                item: dict[str, Any] = {"loc": ["body", name], "msg": exc.text, "type": exc.kind}
                if exc.ctx:
                    item["ctx"] = {k: list(v) if isinstance(v, tuple) else v for k, v in exc.ctx.items()}
                errors.append(item)
        return given, errors

    def order(self) -> list[str]:
        """The inputs in fal's order (``x-fal-order-properties``), then any others."""
        props = list(self.schema.get("properties") or {})
        first = [p for p in self.schema.get("x-fal-order-properties") or () if p in props]
        return first + [p for p in props if p not in first]

    def with_defaults(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The inputs a model run uses: what was given, the schema's defaults for the rest."""
        out: dict[str, Any] = {}
        for name in self.order():
            node = self.resolve(self.schema["properties"][name])
            if name in given:
                out[name] = given[name]
            elif "default" in node:
                out[name] = node["default"]
        return out


def validator(endpoint: Any) -> Validator:
    """The validator of an endpoint: its id, or anything with an ``id`` (endpoints.Endpoint, models.Model)."""
    return _validator(endpoint if isinstance(endpoint, str) else str(endpoint.id))


@functools.cache
def _validator(endpoint_id: str) -> Validator:
    model = models.get(endpoint_id)
    if model is None:
        raise KeyError(endpoint_id)
    return Validator(model.input_schema, model.document["openapi"])


def validate(endpoint: Any, body: Mapping[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(the converted inputs that were given, every error in fal's 422 shape); unknown fields are dropped."""
    return validator(endpoint).validate(body)


def with_defaults(endpoint: Any, given: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs a model run uses: what was given, the endpoint's defaults for the rest."""
    return validator(endpoint).with_defaults(given)
