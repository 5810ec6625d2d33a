"""Endpoints: the API the engine, sandbox, widgets, magics, sweeps and proxy use, built from the model registry.

Every input (name, type, enum, range, default, description) and every price comes from ``kontext_nb.models``: fal's
OpenAPI documents in the vendored snapshot (``models/snapshot/``, with the source and date of each fact in its
``provenance``; what fal does not publish is marked there). ``ENDPOINTS`` is the Kontext family (max, pro, dev, lora,
built on first use); ``get_endpoint`` and ``endpoint_for`` also give every other model of the registry.

Still written here, and why:
- Kontext's output-size rule (``Endpoint.output_size``: ``resolution_mode``, ``aspect_ratio``, ``image_size``) and
  its estimate: the sandbox renders Kontext images with it and the money tests compare reservations and bills made
  with it; every other model is priced by ``models.bound`` (an upper bound, never below the Kontext rule: tested).
- Value checks (``validate``): the kinds' rules (a LoRA's scale range ``LORA_SCALE`` and the largest custom side
  ``MAX_SIDE`` are NOT PUBLISHED by fal), the did-you-mean hints, and the text rules (``text_problem``).
- ``ASPECT_RATIOS``, ``OUTPUT_FORMATS``, ``SAFETY_TOLERANCES``: Kontext's enums as other modules name them (the
  same values as the snapshot's, which the tests compare).
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .errors import ValidationError

if TYPE_CHECKING:
    from . import models

Mode = Literal["text-to-image", "edit", "multi", "inpaint"]
Model = Literal["max", "pro", "dev", "lora"]
Kind = Literal["string", "integer", "float", "boolean", "enum", "image", "images", "loras", "size", "object", "array"]
Unit = Literal["image", "megapixel"]

MODES: tuple[Mode, ...] = ("text-to-image", "edit", "multi", "inpaint")
MODELS: tuple[Model, ...] = ("max", "pro", "dev", "lora")
MEGAPIXEL = 1024 * 1024
"""Pixels in a billed megapixel. NOT PUBLISHED: fal's pages price "1024x1024" images at one megapixel, so
kontext_nb counts 2**20 pixels, and rounds each image up to whole megapixels — its estimates err high."""
LARGEST_INPUT = (14142, 14142)
"""An input whose size is unknown (a URL whose header could not be read) is priced as the largest fal takes:
"Max width: 14142px, Max height: 14142px" in fal's ``image_url`` description. fal publishes no largest *output*
size for ``resolution_mode: match_input`` (nor for inpainting, which returns the source's size): kontext_nb
takes the output of such an input to be as large (rounded up to multiples of 16: 14144 px, 191 MP)."""

ASPECT_RATIOS = ("21:9", "16:9", "4:3", "3:2", "1:1", "2:3", "3:4", "9:16", "9:21")
OUTPUT_FORMATS = ("jpeg", "png")
SAFETY_TOLERANCES = ("1", "2", "3", "4", "5", "6")
T2I_DEFAULTS: dict[str, Any] = {"aspect_ratio": "1:1", "output_format": "jpeg", "guidance_scale": 3.5}
"""[max] text to image's defaults, for the magics' config traits, which need them when the magics are imported:
before the registry is read, so %load_ext stays as cheap as before it (the tests compare them with the snapshot)."""

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
        if self.kind in ("integer", "float"):
            what = "an integer" if self.kind == "integer" else "a number"
            if self.minimum is None:
                return what if self.maximum is None else f"{what} <= {_num(self.maximum)}"
            if self.maximum is None:
                return f"{what} >= {_num(self.minimum)}"
            return f"{what} from {_num(self.minimum)} to {_num(self.maximum)}"
        if self.kind == "boolean":
            return "True or False"
        if self.kind == "image":
            return "an http(s) URL or a data URI of an image"
        if self.kind == "images":
            if self.max_items is None:
                return f"a list of at least {self.min_items or 1} image URLs or data URIs"
            return f"a list of {self.min_items or 1} to {self.max_items} image URLs or data URIs"
        if self.kind == "loras":
            return (
                "a list of LoRAs, each {'path': URL or Hugging Face name, 'scale': "
                f"{_num(LORA_SCALE[0])} to {_num(LORA_SCALE[1])} (default 1)}}"
            )
        if self.kind == "size":
            return "one of " + ", ".join(self.choices) + " or {'width': W, 'height': H}"
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
    """One fal endpoint: the Kontext family's (ENDPOINTS), or any other model of the registry (get_endpoint)."""

    id: str
    mode: Mode
    model: str
    """The family name for Kontext (max, pro, dev, lora); the registry's alias for every other model."""
    title: str
    inputs: tuple[Field, ...]
    source: str = "fal's API pages (the project's seed pages)"
    spec: models.Model | None = field(default=None, compare=False, repr=False)
    """The registry's Model this Endpoint was built from (its price rule, output shape and provenance)."""

    @property
    def kontext(self) -> bool:
        """One of the Kontext family, priced by its own output-size rule (output_size below)."""
        return self.model in MODELS

    @property
    def unit(self) -> Unit:
        """What fal bills: each image ([max], [pro], most others) or each megapixel ([dev], LoRA, FLUX.2 [flex])."""
        p = self.spec.pricing if self.spec is not None else None
        return "megapixel" if p is not None and p.unit == "megapixel" else "image"

    @property
    def price(self) -> float:
        """Dollars per unit (per image or per megapixel); models.Unpriced when fal publishes none."""
        from . import models

        if self.spec is None or self.spec.pricing is None:
            raise models.Unpriced((models.can_price(self.spec) if self.spec else None) or f"{self.id} has no price")
        return self.spec.pricing.unit_price

    @property
    def priced(self) -> bool:
        """Whether kontext_nb can bound what a job costs here (see models/pricing.py)."""
        from . import models

        return self.spec is not None and models.can_price(self.spec) is None

    def cost_of_units(self, units: float, arguments: Mapping[str, Any] | None = None) -> float:
        """Dollars for the units fal says it billed (``x-fal-billable-units``), by this endpoint's price rule."""
        from . import models

        if not self.kontext and self.spec is not None:
            return round(models.from_units(self.spec, arguments or {}, units), 6)  # text tokens: under 1e-4
        return round(units * self.price, 4)

    @property
    def price_per_image(self) -> float:
        """Per-image endpoints: the price; per-megapixel ones: the price of a 1 MP image."""
        return self.price

    def price_text(self) -> str:
        if not self.priced:
            return "price not published"
        return f"${self.price:.3f}".rstrip("0").rstrip(".") + f" per {self.unit}"

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

    def cost(
        self,
        num_images: int,
        sizes: Sequence[tuple[int, int] | None] | None = None,
        arguments: Mapping[str, Any] | None = None,
        input_sizes: Sequence[tuple[int, int] | None] = (),
    ) -> float:
        """What ``num_images`` images cost; per megapixel, from their ``sizes`` (width, height) as returned.

        A size that is not known is priced as the largest fal makes (``LARGEST_INPUT``): never under. ``arguments``
        (what was sent) matter to rules outside the Kontext family (a resolution multiplier, a quality table);
        ``input_sizes`` (one per source sent, None where not known) to rules that bill input megapixels too.
        """
        from . import models

        if not self.kontext and self.spec is not None:
            largest = _multiple_of_16(LARGEST_INPUT)
            shown = [s or largest for s in list(sizes or [])[:num_images]]
            shown += [largest] * (num_images - len(shown))
            sources = [s or largest for s in input_sizes]
            return round(models.billed(self.spec, arguments or {}, shown, sources), 6)
        if self.unit == "image":
            return round(self.price * num_images, 4)
        known = list(sizes or [])[:num_images]
        known += [None] * (num_images - len(known))
        return round(sum(self.price * billed_megapixels(*(s or _multiple_of_16(LARGEST_INPUT))) for s in known), 4)

    def output_size(self, arguments: Mapping[str, Any], input_size: tuple[int, int] | None = None) -> tuple[int, int]:
        """The size fal is expected to return for these arguments; with ``input_size=None`` (not known) where the
        output follows the input, the largest it can be."""
        from . import models

        if not self.kontext and self.spec is not None:
            return models.output_size(self.spec, arguments, input_size)
        if "image_size" in arguments or (self.mode == "text-to-image" and "aspect_ratio" not in arguments):
            size = arguments.get("image_size", "landscape_4_3")
            if isinstance(size, Mapping):  # fal may round a custom size up (NOT PUBLISHED): priced as rounded to 16
                return _multiple_of_16((int(size["width"]), int(size["height"])))
            return models.pricing.SIZE_PRESETS.get(str(size), (1024, 1024))
        mode = arguments.get("resolution_mode")
        if mode is not None and mode not in ("match_input", "auto"):
            return aspect_size(str(mode))
        if mode == "match_input" or self.mode == "inpaint":
            return _multiple_of_16(input_size or LARGEST_INPUT)
        ratio = arguments.get("aspect_ratio") if mode != "auto" else None
        if not ratio and input_size is None:  # the ratio would follow the input: the dearest of them
            return max((aspect_size(r) for r in ASPECT_RATIOS), key=lambda wh: billed_megapixels(*wh))
        return aspect_size(str(ratio or nearest_ratio(*(input_size or (1, 1)))))

    def needs_input_size(self, arguments: Mapping[str, Any]) -> bool:
        """Whether the price depends on the source's size (per megapixel, the output following the input)."""
        if not self.kontext and self.spec is not None:
            return self.unit != "image" and self.estimate(arguments, (1024, 1024)) != self.estimate(arguments, None)
        if self.unit == "image" or self.mode == "text-to-image":
            return False
        return self.output_size(arguments, (1024, 1024)) != self.output_size(arguments, None)

    def estimate(self, arguments: Mapping[str, Any], input_size: tuple[int, int] | None = None) -> float:
        """What a request may cost at most, before sending: the one estimator (sessions, sweeps, the panel and the
        classroom proxy all use it). Per image: exact. Per megapixel: from the requested size, or the source's
        ``input_size`` (width, height) where the output follows it; ``input_size=None`` means not known, and
        prices the largest output fal can make for it (``LARGEST_INPUT``). ``num_images`` multiplies."""
        from . import models

        if not self.kontext and self.spec is not None:  # the registry's rule: models.bound
            return models.bound(self.spec, arguments, [input_size] if input_size is not None else None)
        n = int(arguments.get("num_images", 1))
        if self.unit == "image":
            return self.cost(n)
        return self.cost(n, [self.output_size(arguments, input_size)] * n)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


OUTPUTS: tuple[OutputField, ...] = (
    OutputField("images", "list[Image]", "The generated images: url, width, height, content_type."),
    OutputField("timings", "dict", "Timings of the run, in seconds."),
    OutputField("seed", "integer", "The seed used: the one given, or the random one drawn."),
    OutputField("has_nsfw_concepts", "list[bool]", "Whether each image contains NSFW concepts."),
    OutputField("prompt", "string", "The prompt used for generating the image."),
)
IMAGE_OUTPUT_FIELDS = ("url", "width", "height", "content_type")
DEFAULT_CONTENT_TYPE = "image/jpeg"
MAX_SIDE = 14142  # "Max width: 14142px, Max height: 14142px" (fal's image_url description)
LORA_SCALE = (0.0, 4.0)  # NOT PUBLISHED: fal's LoraWeight.scale has a default (1) and no range


# --- every Endpoint from the model registry (fal's schemas in the vendored snapshot) ------------------------------
def field_of(f: models.InputField) -> Field:
    """A registry input as the Field the rest of the code checks values against."""
    default = f.default if f.has_default else _MISSING
    return Field(
        f.name,
        f.kind,  # type: ignore[arg-type]  # the registry's kinds are Field's, plus object and array
        f.description,
        required=f.required,
        default=tuple(default) if isinstance(default, list) else default,
        choices=tuple(str(c) for c in f.enum),
        minimum=f.minimum,
        maximum=f.maximum,
        min_items=f.min_items,
        max_items=f.max_items,
    )


def from_model(m: models.Model, model: str | None = None) -> Endpoint:
    """The Endpoint of a registry Model (``model``: the family name it is known by: max, pro, dev, lora)."""
    return Endpoint(
        m.endpoint_id,
        m.mode,  # type: ignore[arg-type]  # the registry's modes are MODES
        model or m.alias,
        m.title,
        tuple(field_of(f) for f in m.inputs),
        str(m.provenance.get("schema") or "fal's OpenAPI document"),
        spec=m,
    )


class _Family(Mapping[str, Endpoint]):
    """The Kontext family's endpoints, built from the registry on first use (importing stays cheap)."""

    def __init__(self) -> None:
        self._built: dict[str, Endpoint] | None = None
        self._version = -1

    def _all(self) -> dict[str, Endpoint]:
        from . import models

        if self._built is None or self._version != models.registry().version:  # a price declared since
            self._version = models.registry().version
            reg = models.registry()
            before, built = self._built or {}, {}
            for name in MODELS:
                for m in sorted(reg.family(name), key=lambda m: MODES.index(m.mode)):
                    kept = before.get(m.endpoint_id)  # unchanged: the same object (callers compare with `is`)
                    built[m.endpoint_id] = kept if kept is not None and kept.spec == m else from_model(m, name)
            self._built = built
        return self._built

    def __getitem__(self, key: str) -> Endpoint:
        return self._all()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def __repr__(self) -> str:
        return f"ENDPOINTS({list(self._all())})"


ENDPOINTS: Mapping[str, Endpoint] = _Family()
"""The Kontext family (max, pro, dev, lora: text-to-image, edit, multi, inpaint), from the registry. Every other
model of the registry is an Endpoint too, through get_endpoint and endpoint_for."""
_OTHERS: dict[str, Endpoint] = {}


def __getattr__(name: str) -> Any:
    # the family's prices and fal's ImageSize presets, from the registry (read lazily: importing this module does not)
    if name == "IMAGE_SIZE_PRESETS":
        from .models.pricing import SIZE_PRESETS

        return SIZE_PRESETS
    if name in ("PRICE_PER_IMAGE", "PRICE_PER_MEGAPIXEL"):
        unit = "image" if name == "PRICE_PER_IMAGE" else "megapixel"
        return {e.model: e.price for e in ENDPOINTS.values() if e.unit == unit}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class OfEndpoint:
    """Model and mode of anything that names its endpoint id in ``endpoint`` (a result, a journal row)."""

    endpoint: str

    @property
    def model(self) -> str:
        return get_endpoint(self.endpoint).model

    @property
    def mode(self) -> str:
        return get_endpoint(self.endpoint).mode

    @property
    def reproducible(self) -> bool:
        """False when the model takes no seed (Reve, GPT-image) or enhance_prompt rewrote the prompt: the same
        request may not make the same image again. A model the registry no longer knows counts as reproducible."""
        try:
            spec = get_endpoint(self.endpoint).spec
        except ValidationError:
            spec = None
        arguments = getattr(self, "arguments", None) or {}
        return (spec is None or spec.takes_seed) and not arguments.get("enhance_prompt")


def endpoint_for(mode: str, model: str) -> Endpoint:
    """The endpoint for a mode (text-to-image, edit, multi, inpaint) and a model (max, pro, dev, lora).

    ``model`` may also be an endpoint id; it must then serve this mode.
    """
    from . import models

    if mode not in MODES:
        raise ValidationError(_bad_choice("mode", mode, MODES), field="mode")
    if model in ENDPOINTS:
        ep = ENDPOINTS[model]
        if ep.mode != mode:
            raise ValidationError(f"model={model!r} is a {ep.mode} endpoint; this call needs {mode}", field="model")
        return ep
    if model not in MODELS:
        named = models.registry().find(str(model))
        if named is None:
            raise ValidationError(
                f"model={model!r} is not allowed: choose one of {', '.join(MODELS)} or an endpoint id (or an alias "
                "kx.models() lists)" + suggest(str(model), [*MODELS, *models.registry().aliases()]),
                field="model",
            )
        chosen = models.registry().variant(str(model), mode)
        if "/" in str(model) and chosen.endpoint_id != named.endpoint_id:  # an endpoint id names one endpoint
            raise ValidationError(
                f"model={model!r} is a {named.mode} endpoint; this call needs {mode} ({chosen.endpoint_id} does)",
                field="model",
            )
        return get_endpoint(chosen.endpoint_id)
    found = next((ep for ep in ENDPOINTS.values() if ep.mode == mode and ep.model == model), None)
    if found is None:
        serves = [m for m in MODELS if any(e.mode == mode and e.model == m for e in ENDPOINTS.values())]
        has = ", ".join(e.mode for e in ENDPOINTS.values() if e.model == model)
        raise ValidationError(
            f"model={model!r} has no {mode} endpoint on fal (it does {has}): for {mode} use {', '.join(serves)}",
            field="model",
        )
    return found


def models_for(mode: str) -> tuple[str, ...]:
    """The models that serve a mode, in MODELS order."""
    return tuple(m for m in MODELS if any(e.mode == mode and e.model == m for e in ENDPOINTS.values()))


def _multiple_of_16(size: tuple[int, int]) -> tuple[int, int]:
    """fal's match_input sizes: each side rounded up to a multiple of 16."""
    w, h = size
    return -(-w // 16) * 16, -(-h // 16) * 16


def billed_megapixels(width: int, height: int) -> int:
    """Megapixels fal is taken to bill for one image: rounded up, at least one (see MEGAPIXEL)."""
    return max(1, math.ceil(width * height / MEGAPIXEL))


def get_endpoint(endpoint_id: str) -> Endpoint:
    """The Endpoint of an endpoint id: the Kontext family's, or any model the registry holds (the snapshot's, and
    those loaded live with kx.model)."""
    from . import models

    found = ENDPOINTS.get(endpoint_id)
    if found is not None:
        return found
    model = models.registry().find(str(endpoint_id)) if "/" in str(endpoint_id) else None
    if model is None:
        raise ValidationError(_bad_choice("endpoint", endpoint_id, tuple(ENDPOINTS)), field="endpoint")
    cached = _OTHERS.get(model.endpoint_id)
    if cached is None or cached.spec != model:  # new, or a price declared since
        cached = _OTHERS[model.endpoint_id] = from_model(model)
    return cached


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

    elif kind == "loras":
        return _check_loras(field, value, bad)
    elif kind == "size":
        return _check_size(field, value, bad)

    if field.minimum is not None and value < field.minimum:
        return _raise(bad(f"is out of range: {field.allowed()}"))
    if field.maximum is not None and value > field.maximum:
        return _raise(bad(f"is out of range: {field.allowed()}"))
    return value


def _raise(err: Exception) -> Any:
    raise err


def check_field(field: Field, value: Any) -> Any:
    """One value checked against one input's spec: normalised, or a one-line ValidationError."""
    return _check(field, value)


def field_spec(name: str) -> Field:
    """The spec of a fal input, from the first endpoint of the family that takes it (KeyError: none does)."""
    for ep in ENDPOINTS.values():
        for f in ep.inputs:
            if f.name == name:
                return f
    raise KeyError(name)


def _is_lora_path(value: Any) -> bool:
    if getattr(value, "__kontext_lora__", False):
        return True
    return isinstance(value, str) and bool(value.strip()) and not text_problem(value) and " " not in value.strip()


def _check_loras(field: Field, value: Any, bad: Any) -> list[dict[str, Any]]:
    """A list of {'path', 'scale'[, 'force']}: a path (URL, Hugging Face name or local file) and a scale."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise bad(f"must be {field.allowed()}")
    out = []
    lo, hi = LORA_SCALE
    for i, item in enumerate(value):
        where = f"loras[{i}]"
        if not isinstance(item, Mapping):
            raise ValidationError(f"{where}={item!r} must be {{'path': URL, 'scale': number}}", field="loras")
        extra = sorted(set(item) - {"path", "scale", "force"})
        if extra:
            raise ValidationError(
                f"{where} has {', '.join(map(repr, extra))}: a LoRA takes 'path', 'scale' and 'force'", field="loras"
            )
        path = item.get("path")
        if not _is_lora_path(path):
            raise ValidationError(
                f"{where}.path={path!r} must be a URL, a Hugging Face name or a local .safetensors file", field="loras"
            )
        scale = item.get("scale", 1.0)
        if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not math.isfinite(float(scale)):
            raise ValidationError(
                f"{where}.scale={scale!r} must be a number from {_num(lo)} to {_num(hi)}", field="loras"
            )
        if not lo <= float(scale) <= hi:
            raise ValidationError(
                f"{where}.scale={scale!r} is out of range: a number from {_num(lo)} to {_num(hi)}", field="loras"
            )
        lora: dict[str, Any] = {"path": path, "scale": float(scale)}
        if "force" in item:
            if not isinstance(item["force"], bool):
                raise ValidationError(f"{where}.force={item['force']!r} must be True or False", field="loras")
            lora["force"] = item["force"]
        out.append(lora)
    return out


def _check_size(field: Field, value: Any, bad: Any) -> Any:
    """A preset name, or {'width': W, 'height': H} with whole-pixel sides."""
    if isinstance(value, str):
        if value not in field.choices:
            raise bad("is not allowed: choose " + field.allowed() + suggest(value, field.choices))
        return value
    if not isinstance(value, Mapping) or set(value) != {"width", "height"}:
        raise bad(f"must be {field.allowed()}")
    for side in ("width", "height"):
        v = value[side]
        if not _is_integer(v) or not 1 <= int(v) <= MAX_SIDE:
            raise bad(f"has {side}={v!r}: give a whole number of pixels from 1 to {MAX_SIDE}")
    return {"width": int(value["width"]), "height": int(value["height"])}


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
            out[f.name] = list(f.default) if isinstance(f.default, tuple) else f.default
    return {n: out[n] for n in names if n in out}


def _unknown(ep: Endpoint, key: str) -> str:
    names = tuple(f.name for f in ep.inputs)
    if not ep.kontext:  # the Kontext family's hints (another mode, another model of it) are not this model's
        return f"unknown argument {key!r} for {ep.id}{suggest(key, names)}; allowed: {', '.join(names)}"
    others = [e for e in ENDPOINTS.values() if e.model == ep.model and any(f.name == key for f in e.inputs)]
    if others:
        return f"{key!r} is not an input of {ep.id} ({ep.mode}); it belongs to {ep_list(others)}"
    elsewhere = [
        m for m in MODELS if any(e.model == m and any(f.name == key for f in e.inputs) for e in ENDPOINTS.values())
    ]
    if elsewhere:
        return f"{key!r} is not an input of {ep.id} ([{ep.model}] {ep.mode}); only of {', '.join(elsewhere)}"
    return f"unknown argument {key!r} for {ep.id}{suggest(key, names)}; allowed: {', '.join(names)}"


def ep_list(eps: list[Endpoint]) -> str:
    return " and ".join(f"{e.mode} ({e.id})" for e in eps)


def overview() -> str:
    """Every endpoint with its price, then every input once: what ``kx.help()`` prints."""
    lines = ["Endpoints (model=..., and edit with one source or 2-4 sources for multi):"]
    for ep in ENDPOINTS.values():
        lines.append(f"  {ep.model:<4} {ep.mode:<14} {ep.id:<44} {ep.price_text()}")
    lines.append(
        "Per megapixel: estimated before a job from the requested or input size (each image rounded up to whole"
    )
    lines.append("megapixels of 1024x1024 px: fal does not publish its rounding), recorded from the returned sizes.")
    lines.append("")
    lines.append("Inputs (fal's names):")
    # one line per input and range: [max]/[pro] and [dev]/LoRA may allow different values under one name
    by_name: dict[tuple[str, str], list[tuple[Endpoint, Field]]] = {}
    for ep in ENDPOINTS.values():
        for f in ep.inputs:
            by_name.setdefault((f.name, f.allowed()), []).append((ep, f))
    for (name, _), uses in by_name.items():
        f = uses[0][1]
        modes = sorted({ep.mode for ep, _ in uses}, key=MODES.index)
        models = sorted({ep.model for ep, _ in uses}, key=MODELS.index)
        parts = ([] if len(models) == len(MODELS) else [", ".join(models)]) + (
            [] if len(modes) == len(MODES) else [", ".join(modes)]
        )
        where = f" ({'; '.join(parts)})" if parts else ""
        note = " [required]" if f.required else _defaults_note(uses)
        lines.append(f"  {name}{where}: {f.allowed()}{note} — {f.description}")
    return "\n".join(lines)


def _defaults_note(uses: list[tuple[Endpoint, Field]]) -> str:
    """' [default X]', or the defaults by model (by model and mode where a model's endpoints differ)."""

    def shown(value: Any) -> str:
        return repr(list(value) if isinstance(value, tuple) else value)

    by_model: dict[str, set[str]] = {}
    for ep, g in uses:
        by_model.setdefault(ep.model, set()).add(shown(g.default) if g.has_default else "")
    values = {v for vs in by_model.values() for v in vs}
    if not values - {""}:
        return ""
    tail = "; otherwise fal's choice" if "" in values else ""
    if len(values) == 1:
        return f" [default {values.pop()}]"
    groups: dict[str, list[str]] = {}
    for ep, g in uses:
        if not g.has_default:
            continue
        where = ep.model if len(by_model[ep.model]) == 1 else f"{ep.model} {ep.mode}"
        if where not in groups.setdefault(shown(g.default), []):
            groups[shown(g.default)].append(where)
    return " [default " + "; ".join(f"{v} for {', '.join(ws)}" for v, ws in groups.items()) + tail + "]"


def describe(endpoint: Endpoint) -> str:
    """A plain-text table of an endpoint's inputs, for help texts and docstrings."""
    lines = [f"{endpoint.title} — {endpoint.id} ({endpoint.price_text()})"]
    for f in endpoint.inputs:
        default = f" [default {f.default!r}]" if f.has_default else (" [required]" if f.required else "")
        lines.append(f"  {f.name}: {f.allowed()}{default} — {f.description}")
    return "\n".join(lines)


def format_cost(dollars: float) -> str:
    """Dollars as users read them everywhere: to the cent."""
    return f"${dollars:.2f}"


def format_price(dollars: float, *, estimate: bool) -> str:
    """A cost before it is spent: per-megapixel prices are estimates, and say so."""
    return f"≈{format_cost(dollars)} (estimate)" if estimate else format_cost(dollars)


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
