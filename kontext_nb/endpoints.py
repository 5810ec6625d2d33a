"""The Kontext endpoints on fal: names, defaults, enums, ranges and prices.

This module is the single source of truth. The engine, the sandbox, the widgets and the
help texts all read from it; no other file repeats a range, an enum or a default.
Taken from fal's API pages for ``fal-ai/flux-pro/kontext/max/text-to-image`` and
``fal-ai/flux-pro/kontext/max``.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .errors import ValidationError

Mode = Literal["text-to-image", "edit", "multi"]
Model = Literal["max", "pro"]
Kind = Literal["string", "integer", "float", "boolean", "enum", "image", "images"]

MODES: tuple[Mode, ...] = ("text-to-image", "edit", "multi")
MODELS: tuple[Model, ...] = ("max", "pro")
PRICE_PER_IMAGE: dict[Model, float] = {"max": 0.08, "pro": 0.04}

ASPECT_RATIOS = ("21:9", "16:9", "4:3", "3:2", "1:1", "2:3", "3:4", "9:16", "9:21")
OUTPUT_FORMATS = ("jpeg", "png")
SAFETY_TOLERANCES = ("1", "2", "3", "4", "5", "6")

_MISSING: Any = object()
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))  # zero-width: a prompt of only these is empty


@dataclass(frozen=True)
class Field:
    """One input of an endpoint, as fal's schema describes it."""

    name: str
    kind: Kind
    description: str
    required: bool = False
    default: Any = _MISSING
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    min_items: int | None = None
    max_items: int | None = None

    @property
    def has_default(self) -> bool:
        return self.default is not _MISSING

    def allowed(self) -> str:
        """What values are allowed, in words (used in every error message)."""
        if self.kind == "enum":
            return "one of " + ", ".join(self.choices)
        if self.kind in ("integer", "float") and self.minimum is not None:
            what = "an integer" if self.kind == "integer" else "a number"
            if self.maximum is None:
                return f"{what} >= {_num(self.minimum)}"
            return f"{what} from {_num(self.minimum)} to {_num(self.maximum)}"
        if self.kind == "boolean":
            return "True or False"
        if self.kind == "image":
            return "an http(s) URL or a data URI of an image"
        if self.kind == "images":
            return f"a list of {self.min_items} to {self.max_items} image URLs or data URIs"
        return "a non-empty string" if self.required else "a string"


@dataclass(frozen=True)
class OutputField:
    """One field of an endpoint's output JSON."""

    name: str
    type: str
    description: str
    required: bool = True


@dataclass(frozen=True)
class Endpoint:
    """One fal endpoint of the Kontext family."""

    id: str
    mode: Mode
    model: Model
    title: str
    inputs: tuple[Field, ...]

    @property
    def price_per_image(self) -> float:
        return PRICE_PER_IMAGE[self.model]

    @property
    def image_field(self) -> Field | None:
        return next((f for f in self.inputs if f.kind in ("image", "images")), None)

    def field(self, name: str) -> Field:
        for f in self.inputs:
            if f.name == name:
                return f
        raise KeyError(name)

    def defaults(self) -> dict[str, Any]:
        return {f.name: f.default for f in self.inputs if f.has_default}

    def cost(self, num_images: int) -> float:
        return round(self.price_per_image * num_images, 4)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


_COMMON: tuple[Field, ...] = (
    Field("prompt", "string", "The prompt to generate an image from.", required=True),
    Field(
        "seed",
        "integer",
        "The same seed and the same prompt given to the same version of the model "
        "will output the same image every time.",
        minimum=0,
        maximum=2**63 - 1,
    ),
    Field(
        "guidance_scale",
        "float",
        "How closely the model sticks to the prompt (classifier-free guidance).",
        default=3.5,
        minimum=1,
        maximum=20,
    ),
    Field(
        "sync_mode",
        "boolean",
        "Return media as data URIs and keep the output out of fal's request history.",
        default=False,
    ),
    Field("num_images", "integer", "The number of images to generate.", default=1, minimum=1, maximum=4),
    Field("output_format", "enum", "The format of the generated image.", default="jpeg", choices=OUTPUT_FORMATS),
    Field(
        "safety_tolerance",
        "enum",
        "Safety tolerance: 1 is the most strict, 6 the most permissive (API only).",
        default="2",
        choices=SAFETY_TOLERANCES,
    ),
    Field("enhance_prompt", "boolean", "Whether to enhance the prompt for better results.", default=False),
)

_T2I_ASPECT = Field(
    "aspect_ratio", "enum", "The aspect ratio of the generated image.", default="1:1", choices=ASPECT_RATIOS
)
_EDIT_ASPECT = Field("aspect_ratio", "enum", "The aspect ratio of the generated image.", choices=ASPECT_RATIOS)
_IMAGE_URL = Field("image_url", "image", "The image to edit (URL or data URI).", required=True)
_IMAGE_URLS = Field(
    "image_urls",
    "images",
    "The reference images to combine (URLs or data URIs).",
    required=True,
    min_items=2,
    max_items=4,
)

OUTPUTS: tuple[OutputField, ...] = (
    OutputField("images", "list[Image]", "The generated images: url, width, height, content_type."),
    OutputField("timings", "dict", "Timings of the run, in seconds."),
    OutputField("seed", "integer", "The seed used: the one given, or the random one drawn."),
    OutputField("has_nsfw_concepts", "list[bool]", "Whether each image contains NSFW concepts."),
    OutputField("prompt", "string", "The prompt used for generating the image."),
)
IMAGE_OUTPUT_FIELDS = ("url", "width", "height", "content_type")
DEFAULT_CONTENT_TYPE = "image/jpeg"


def _family() -> dict[str, Endpoint]:
    out: dict[str, Endpoint] = {}
    for model in MODELS:
        base = "fal-ai/flux-pro/kontext" + ("/max" if model == "max" else "")
        label = f"FLUX.1 Kontext [{model}]"
        for ep in (
            Endpoint(
                f"{base}/text-to-image", "text-to-image", model, f"{label} text to image", (*_COMMON, _T2I_ASPECT)
            ),
            Endpoint(base, "edit", model, f"{label} image editing", (*_COMMON, _EDIT_ASPECT, _IMAGE_URL)),
            Endpoint(
                f"{base}/multi", "multi", model, f"{label} multi-reference", (*_COMMON, _EDIT_ASPECT, _IMAGE_URLS)
            ),
        ):
            out[ep.id] = ep
    return out


ENDPOINTS: dict[str, Endpoint] = _family()


class OfEndpoint:
    """Model and mode of anything that names its endpoint id in ``endpoint`` (a result, a journal row)."""

    endpoint: str

    @property
    def model(self) -> str:
        return get_endpoint(self.endpoint).model

    @property
    def mode(self) -> str:
        return get_endpoint(self.endpoint).mode


def endpoint_for(mode: str, model: str) -> Endpoint:
    """The endpoint for a mode (text-to-image, edit, multi) and a model (max, pro)."""
    if model not in MODELS:
        raise ValidationError(_bad_choice("model", model, MODELS), field="model")
    if mode not in MODES:
        raise ValidationError(_bad_choice("mode", mode, MODES), field="mode")
    return next(ep for ep in ENDPOINTS.values() if ep.mode == mode and ep.model == model)


def get_endpoint(endpoint_id: str) -> Endpoint:
    try:
        return ENDPOINTS[endpoint_id]
    except KeyError:
        raise ValidationError(_bad_choice("endpoint", endpoint_id, tuple(ENDPOINTS)), field="endpoint") from None


def suggest(value: str, choices: tuple[str, ...] | list[str]) -> str:
    """' (did you mean 'x'?)' for a close match, else ''."""
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def nearest_ratio(width: float, height: float) -> str:
    """The allowed aspect ratio closest in shape to width x height."""
    target = math.log(width / height)
    return min(ASPECT_RATIOS, key=lambda r: abs(math.log(_ratio(r)) - target))


def nearest_aspect_ratio(value: Any) -> str:
    """' (did you mean '16:9'?)' for the allowed ratio closest to a 'W:H' string."""
    try:
        w, h = (float(x) for x in str(value).replace("x", ":").split(":"))
        best = nearest_ratio(w, h)
    except (ValueError, ZeroDivisionError):
        return suggest(str(value), ASPECT_RATIOS)
    return f" (did you mean {best!r}?)"


def _ratio(r: str) -> float:
    w, h = r.split(":")
    return int(w) / int(h)


def aspect_size(ratio: str, megapixels: float = 1.0) -> tuple[int, int]:
    """Width and height of a Kontext image of this ratio (about 1 MP, multiples of 16)."""
    w_over_h = _ratio(ratio)
    height = math.sqrt(megapixels * 1024 * 1024 / w_over_h)
    return round(height * w_over_h / 16) * 16, round(height / 16) * 16


def _bad_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    return f"{name}={value!r} is not allowed: choose one of {', '.join(choices)}{suggest(str(value), choices)}"


def _is_image_value(value: Any) -> bool:
    if getattr(value, "__kontext_image__", False):
        return True
    return isinstance(value, str) and value.startswith(("http://", "https://", "data:image/"))


def _check(field: Field, value: Any) -> Any:
    """Return the normalised value, or raise ValidationError naming field, value and what is allowed."""
    name, kind = field.name, field.kind
    given = value

    def bad(why: str = "") -> ValidationError:
        shown = repr(given) if len(repr(given)) <= 80 else repr(given)[:77] + "..."
        reason = why or f"must be {field.allowed()}"
        return ValidationError(f"{name}={shown} {reason}", field=name)

    if kind == "string":
        if not isinstance(value, str):
            return _raise(bad(f"must be a string, not {type(value).__name__}"))
        problem = text_problem(value)
        if problem:
            return _raise(bad(f"contains {problem}"))
        if field.required and not value.translate(_INVISIBLE).strip():
            return _raise(bad("must not be empty"))
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            return _raise(bad(f"must be True or False, not {type(value).__name__}"))
        return value
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            return _raise(bad(f"must be {field.allowed()} (a {type(value).__name__} is not an integer)"))
        value = int(value)
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return _raise(bad(f"must be {field.allowed()}, not {type(value).__name__}"))
        if not math.isfinite(float(value)):
            return _raise(bad(f"must be a finite number: {field.allowed()}"))
        value = float(value)
    elif kind == "enum":
        if name == "safety_tolerance" and _is_integer(value):
            value = str(int(value))
        if not isinstance(value, str) or value not in field.choices:
            hint = nearest_aspect_ratio(value) if name == "aspect_ratio" else suggest(str(value), field.choices)
            return _raise(bad("is not allowed: choose " + field.allowed() + hint))
        return value
    elif kind == "image":
        if not _is_image_value(value):
            return _raise(bad())
        return value
    elif kind == "images":
        if not isinstance(value, (list, tuple)):
            return _raise(bad())
        if not (field.min_items or 0) <= len(value) <= (field.max_items or len(value)):
            return _raise(bad(f"has {len(value)} images: {field.allowed()}"))
        if not all(_is_image_value(v) for v in value):
            return _raise(bad())
        return list(value)

    if field.minimum is not None and value < field.minimum:
        return _raise(bad(f"is out of range: {field.allowed()}"))
    if field.maximum is not None and value > field.maximum:
        return _raise(bad(f"is out of range: {field.allowed()}"))
    return value


def _raise(err: Exception) -> Any:
    raise err


def validate(endpoint: Endpoint | str, arguments: Mapping[str, Any], *, fill_defaults: bool = True) -> dict[str, Any]:
    """Check arguments against an endpoint before anything is sent.

    Returns the normalised arguments (``safety_tolerance`` as a string, guidance as a
    float) with the spec's defaults filled in, so equal requests compare equal. ``None``
    means "not given". Raises ValidationError naming the field, the value and what is
    allowed, with a did-you-mean for misspelt names and enum values.
    """
    ep = get_endpoint(endpoint) if isinstance(endpoint, str) else endpoint
    names = [f.name for f in ep.inputs]
    out: dict[str, Any] = {}
    for key, value in arguments.items():
        if key not in names:
            raise ValidationError(_unknown(ep, key), field=key)
        if value is None:
            continue
        out[key] = _check(ep.field(key), value)
    for f in ep.inputs:
        if f.name in out:
            continue
        if f.required:
            raise ValidationError(f"{f.name} is required for {ep.id}: give {f.allowed()}", field=f.name)
        if fill_defaults and f.has_default:
            out[f.name] = f.default
    return {n: out[n] for n in names if n in out}


def _unknown(ep: Endpoint, key: str) -> str:
    others = [e for e in ENDPOINTS.values() if e.model == ep.model and any(f.name == key for f in e.inputs)]
    if others:
        return f"{key!r} is not an input of {ep.id} ({ep.mode}); it belongs to {ep_list(others)}"
    names = tuple(f.name for f in ep.inputs)
    return f"unknown argument {key!r} for {ep.id}{suggest(key, names)}; allowed: {', '.join(names)}"


def ep_list(eps: list[Endpoint]) -> str:
    return " and ".join(f"{e.mode} ({e.id})" for e in eps)


def overview() -> str:
    """Every endpoint with its price, then every input once: what ``kx.help()`` prints."""
    lines = ["Endpoints (model=..., and edit with one source or 2-4 sources for multi):"]
    for ep in ENDPOINTS.values():
        lines.append(f"  {ep.model:<4} {ep.mode:<14} {ep.id:<44} ${ep.price_per_image:.2f} per image")
    lines.append("")
    lines.append("Inputs (fal's names):")
    by_name: dict[str, list[tuple[Endpoint, Field]]] = {}
    for ep in ENDPOINTS.values():
        for f in ep.inputs:
            by_name.setdefault(f.name, []).append((ep, f))
    for name, uses in by_name.items():
        f = uses[0][1]
        modes = sorted({ep.mode for ep, _ in uses}, key=MODES.index)
        where = "" if len(modes) == len(MODES) else f" ({', '.join(modes)})"
        defaults = {ep.mode: g.default for ep, g in uses if g.has_default}
        if f.required:
            note = " [required]"
        elif all(g.has_default for _, g in uses):
            note = f" [default {f.default!r}]"
        elif defaults:
            shown = ", ".join(f"{d!r} for {m}" for m, d in defaults.items())
            note = f" [default {shown}; otherwise fal's choice]"
        else:
            note = ""
        lines.append(f"  {name}{where}: {f.allowed()}{note} — {f.description}")
    return "\n".join(lines)


def describe(endpoint: Endpoint) -> str:
    """A plain-text table of an endpoint's inputs, for help texts and docstrings."""
    lines = [f"{endpoint.title} — {endpoint.id} (${endpoint.price_per_image:.2f} per image)"]
    for f in endpoint.inputs:
        default = f" [default {f.default!r}]" if f.has_default else (" [required]" if f.required else "")
        lines.append(f"  {f.name}: {f.allowed()}{default} — {f.description}")
    return "\n".join(lines)


def format_cost(dollars: float) -> str:
    """Dollars as users read them everywhere: to the cent."""
    return f"${dollars:.2f}"


def text_problem(text: str) -> str | None:
    """Why text cannot be stored or sent (SQLite, JSON and image metadata must all hold it), or None."""
    if "\x00" in text:
        return "a NUL character"
    if any("\ud800" <= c <= "\udfff" for c in text):
        return "an unpaired surrogate (not valid Unicode text)"
    return None


def _is_integer(value: object) -> bool:
    """An integer of any kind (numpy's too), but not a bool (which Python counts as one)."""
    return not isinstance(value, bool) and isinstance(value, numbers.Integral)
