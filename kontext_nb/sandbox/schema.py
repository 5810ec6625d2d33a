"""Input validation as fal's own servers do it, for the sandbox and the classroom proxy.

fal's apps declare their inputs as pydantic models (fal's OpenAPI schema per endpoint is
generated from them), so a fal-compatible server validates the way pydantic v2 does in its
default ("lax") mode: ``num_images: "2"``, ``seed: 3.0`` and ``guidance_scale: "3.5"`` are
converted, an integer ``safety_tolerance`` is refused (the field is a string enum), unknown
fields are ignored, and every bad field is listed, each as ``{loc, msg, type}`` with
pydantic's type names (``missing``, ``int_parsing``, ``literal_error``, ...).

kontext_nb's own validator (``endpoints.validate``) stays stricter on purpose: it catches a
typo'd field or a string number before anything is sent.

Not documented by fal, so chosen here and said so: ``null`` for an optional field counts as
not given; ``seed`` keeps endpoints.py's range (0 to 2**63-1); an empty prompt is refused as
pydantic's ``string_too_short`` (fal's page gives the prompt no minimum length); the 2-4 bound
on ``image_urls`` is kontext_nb's reading of fal's page.
"""

from __future__ import annotations

import math
import re
from typing import Any

from kontext_nb import endpoints

_TRUE = {"1", "on", "t", "true", "y", "yes"}
_FALSE = {"0", "off", "f", "false", "n", "no"}
_INT = re.compile(r"\s*[+-]?\d+\s*")


class Invalid(Exception):
    def __init__(self, kind: str, msg: str, **ctx: Any) -> None:
        super().__init__(msg)
        self.kind, self.msg, self.ctx = kind, msg, ctx


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
    raise Invalid("int_type", "Input should be a valid integer")


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
        raise Invalid("float_type", "Input should be a valid number")
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
    raise Invalid("bool_type", "Input should be a valid boolean")


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid("string_type", "Input should be a valid string")
    return value


def _choices(choices: tuple[str, ...]) -> str:
    quoted = [f"'{c}'" for c in choices]
    return ", ".join(quoted[:-1]) + f" or {quoted[-1]}" if len(quoted) > 1 else quoted[0]


def _ranged(field: endpoints.Field, value: float) -> None:
    if field.minimum is not None and value < field.minimum:
        ge = _num(field.minimum)
        raise Invalid("greater_than_equal", f"Input should be greater than or equal to {ge}", ge=field.minimum)
    if field.maximum is not None and value > field.maximum:
        le = _num(field.maximum)
        raise Invalid("less_than_equal", f"Input should be less than or equal to {le}", le=field.maximum)


def _convert(field: endpoints.Field, value: Any) -> Any:
    kind = field.kind
    if kind == "integer":
        number: float = _integer(value)
        _ranged(field, number)
        return number
    if kind == "float":
        number = _number(value)
        _ranged(field, number)
        return number
    if kind == "boolean":
        return _boolean(value)
    if kind == "enum":
        if not isinstance(value, str) or value not in field.choices:
            raise Invalid("literal_error", f"Input should be {_choices(field.choices)}", expected=field.choices)
        return value
    if kind == "images":
        if not isinstance(value, (list, tuple)):
            raise Invalid("list_type", "Input should be a valid list")
        low, high = field.min_items or 0, field.max_items
        if len(value) < low:
            raise Invalid("too_short", f"List should have at least {low} items after validation, not {len(value)}")
        if high is not None and len(value) > high:
            raise Invalid("too_long", f"List should have at most {high} items after validation, not {len(value)}")
        return [_string(v) for v in value]
    if kind == "loras":
        return _loras(value)
    if kind == "size":
        return _size(field, value)
    text = _string(value)
    if field.required and not text.strip():
        raise Invalid("string_too_short", "String should have at least 1 character", min_length=1)
    return text


def _loras(value: Any) -> list[dict[str, Any]]:
    """fal's list of LoraWeight {path, scale=1, force}; the scale's range is kontext_nb's (fal publishes none)."""
    if not isinstance(value, (list, tuple)):
        raise Invalid("list_type", "Input should be a valid list")
    scale_field = endpoints.Field(
        "scale", "float", "", minimum=endpoints.LORA_SCALE[0], maximum=endpoints.LORA_SCALE[1]
    )
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise Invalid("dict_type", f"{i}: Input should be a valid dictionary")
        if item.get("path") is None:
            raise Invalid("missing", f"{i}.path: Field required")
        try:
            lora: dict[str, Any] = {"path": _string(item["path"])}
            lora["scale"] = _convert(scale_field, item.get("scale", 1.0))
            if item.get("force") is not None:
                lora["force"] = _boolean(item["force"])
        except Invalid as exc:
            raise Invalid(exc.kind, f"{i}: {exc.msg}", **exc.ctx) from None
        out.append(lora)
    return out


def _size(field: endpoints.Field, value: Any) -> Any:
    """image_size: a preset name or {width, height} (fal's ImageSize; its bounds are not published)."""
    if isinstance(value, str):
        if value not in field.choices:
            raise Invalid("literal_error", f"Input should be {_choices(field.choices)}", expected=field.choices)
        return value
    if not isinstance(value, dict):
        raise Invalid("model_type", "Input should be a valid dictionary or instance of ImageSize")
    side = endpoints.Field("side", "integer", "", minimum=1, maximum=endpoints.MAX_SIDE)
    try:
        return {"width": _convert(side, value.get("width", 512)), "height": _convert(side, value.get("height", 512))}
    except Invalid as exc:
        raise Invalid(exc.kind, f"width/height: {exc.msg}", **exc.ctx) from None


def validate(ep: endpoints.Endpoint, body: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(the converted inputs that were given, every error in fal's 422 shape); unknown fields are dropped."""
    given: dict[str, Any] = {}
    errors: list[dict[str, Any]] = []
    for field in ep.inputs:
        value = body.get(field.name)
        if value is None:
            if field.required:
                kind, msg = ("missing", "Field required") if field.name not in body else ("string_type", "")
                errors.append(
                    {"loc": ["body", field.name], "msg": msg or "Input should be a valid string", "type": kind}
                )
            continue
        try:
            given[field.name] = _convert(field, value)
        except Invalid as exc:
            item: dict[str, Any] = {"loc": ["body", field.name], "msg": exc.msg, "type": exc.kind}
            if exc.ctx:
                item["ctx"] = {k: list(v) if isinstance(v, tuple) else v for k, v in exc.ctx.items()}
            errors.append(item)
    return given, errors


def with_defaults(ep: endpoints.Endpoint, given: dict[str, Any]) -> dict[str, Any]:
    """The inputs a model run uses: what was given, the endpoint's defaults for the rest."""
    return {f.name: given.get(f.name, f.default) for f in ep.inputs if f.name in given or f.has_default}
