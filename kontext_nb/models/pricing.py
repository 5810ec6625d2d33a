"""Prices as upper bounds: one interpreter for the snapshot's price rules (the contract in the project's notes).

``bound`` prices a request before it is sent, never under what fal can bill for it: the images it may return
(``num_images`` x ``max_images``), the largest output the arguments allow, sources of unknown size as the largest
fal takes. ``billed`` is what a completed request costs from what came back (the sandbox bills with it; the
journal records it). A rule kontext_nb does not know, or a model fal publishes no price for, is refused with one
line (``Unpriced``): kontext_nb never guesses a price and never sends a job it cannot bound; a price the user
declares (``Registry.set_price``) is the one way past that.

Rules: per image; per megapixel of output, or of input and output; a first megapixel plus each extra one; a
resolution multiplier; a worst-case table (per-token prices). Any rule may add fal's other charges on top
(``extras``: dollars when an option is on, per image or per request; ``text_tokens``: dollars per 1,000 input and
output text tokens; the format is in tools/snapshot/README.md). NOT PUBLISHED by fal and chosen here (bounds err
high): a megapixel is 2**20 pixels and each image is rounded up to whole megapixels (at least one); input text
tokens are at most the UTF-8 bytes of the text fields (a BPE token is at least one byte: no tokenizer needed).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ValidationError
from .schema import Model

MEGAPIXEL = 1024 * 1024
LARGEST = (14142, 14142)
"""A source whose size is unknown is priced as the largest fal takes ("Max width: 14142px" in fal's image_url
descriptions); an output that follows it likewise (rounded up to multiples of 16)."""
SIZE_PRESETS: dict[str, tuple[int, int]] = {
    # fal's ImageSize names; their pixel sizes are NOT PUBLISHED in the schemas: the sizes fal's FLUX endpoints return
    "square_hd": (1024, 1024),
    "square": (512, 512),
    "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024),
    "landscape_4_3": (1024, 768),
    "landscape_16_9": (1024, 576),
}
RESOLUTION_MEGAPIXELS = {"0.5K": 0.25, "1K": 1.0, "2K": 4.0, "4K": 16.0}
"""A ``resolution`` enum's output size (Nano Banana): the long side 1K/2K/4K, so about 1, 4 or 16 MP."""
Size = tuple[int, int]
COMMON_RATIOS = ("21:9", "16:9", "4:3", "3:2", "1:1", "2:3", "3:4", "9:16", "9:21")


class Unpriced(ValidationError):
    """A model whose price kontext_nb cannot bound (none published, or a rule it does not know): nothing is sent."""


def billed_megapixels(width: int, height: int) -> int:
    """Megapixels billed for one image: rounded up, at least one (see MEGAPIXEL)."""
    return max(1, math.ceil(int(width) * int(height) / MEGAPIXEL))


def multiple_of_16(size: Size) -> Size:
    w, h = size
    return -(-int(w) // 16) * 16, -(-int(h) // 16) * 16


def aspect_size(ratio: str, megapixels: float = 1.0) -> Size:
    """Width and height of an image of this 'W:H' ratio and about this many megapixels (multiples of 16)."""
    w, h = (float(x) for x in ratio.split(":"))
    height = math.sqrt(megapixels * MEGAPIXEL * h / w)
    return round(height * w / h / 16) * 16, round(height / 16) * 16


FALS_CHOICE = max((aspect_size(r) for r in COMMON_RATIOS), key=lambda wh: billed_megapixels(*wh))
"""Where the output follows the input or fal chooses ('auto'), it may be about a megapixel in the input's shape
(as Kontext's auto does, and the sandbox draws): the dearest such shape, 21:9 at 1568x672, bills 2 MP."""


def _ratio_or_none(value: Any) -> float | None:
    try:
        w, h = (float(x) for x in str(value).split(":"))
        return w / h if w > 0 and h > 0 else None
    except ValueError:
        return None


def arguments_with_defaults(model: Model, arguments: Mapping[str, Any]) -> dict[str, Any]:
    return {**model.defaults(), **{k: v for k, v in arguments.items() if v is not None}}


def images_asked(model: Model, arguments: Mapping[str, Any]) -> int:
    """The most images one request can return: ``num_images`` x ``max_images`` (Seedream takes both)."""
    args = arguments_with_defaults(model, arguments)
    n = 1
    for name in ("num_images", "max_images"):
        if model.takes(name):
            value: Any = args.get(name)
            if _is_int(value):
                n *= max(1, int(value))
            else:  # not given and no default: the schema's largest, or fal's usual 4
                n *= int(model.input(name).maximum or 4)
    return n


def output_size(model: Model, arguments: Mapping[str, Any], input_size: Size | None = None) -> Size:
    """The largest output fal may return for these arguments (``input_size``: the first source's, None = unknown)."""
    args = arguments_with_defaults(model, arguments)
    follows = max(multiple_of_16(input_size or LARGEST), FALS_CHOICE, key=lambda wh: billed_megapixels(*wh))
    if model.takes("image_size"):
        size = args.get("image_size")
        if isinstance(size, Mapping) and _is_int(size.get("width")) and _is_int(size.get("height")):
            return multiple_of_16((int(size["width"]), int(size["height"])))
        if isinstance(size, str) and size in SIZE_PRESETS:
            return SIZE_PRESETS[size]
        if isinstance(size, str) and _is_wxh(size):
            w, h = size.lower().split("x")
            return int(w), int(h)
        return follows  # 'auto', 'auto_4K' or nothing: fal's choice, or the input's size
    mp = RESOLUTION_MEGAPIXELS.get(str(args.get("resolution")), 1.0) if model.takes("resolution") else 1.0
    if model.takes("resolution_mode"):  # Kontext [dev]: auto, match_input or a ratio
        mode = args.get("resolution_mode")
        if _ratio_or_none(mode):
            return aspect_size(str(mode), mp)
        if mode == "match_input":
            return follows
        ratios = [str(r) for r in model.input("resolution_mode").enum if _ratio_or_none(r)] or ["1:1"]
        if input_size is not None:  # auto: a trained resolution of about one megapixel, near the input's shape
            return aspect_size(_nearest(ratios, input_size), mp)
        return max((aspect_size(r, mp) for r in ratios), key=lambda wh: billed_megapixels(*wh))
    if model.takes("aspect_ratio"):
        ratio = args.get("aspect_ratio")
        ratios = [str(r) for r in model.input("aspect_ratio").enum if _ratio_or_none(r)] or ["1:1"]
        if _ratio_or_none(ratio):
            return aspect_size(str(ratio), mp)
        if input_size is not None and model.mode != "text-to-image":
            return aspect_size(_nearest(ratios, input_size), mp)
        return max((aspect_size(r, mp) for r in ratios), key=lambda wh: billed_megapixels(*wh))
    if model.mode == "inpaint" or model.source_field is not None:
        return follows
    return LARGEST  # no size input at all: fal publishes nothing to bound it by


def _nearest(ratios: Sequence[str], size: Size) -> str:
    """The ratio of ``ratios`` closest in shape to ``size``."""
    target = math.log(max(1, size[0]) / max(1, size[1]))
    return min(ratios, key=lambda r: abs(math.log(_ratio_or_none(r) or 1.0) - target))


def _is_wxh(text: str) -> bool:
    parts = text.lower().split("x")
    return len(parts) == 2 and all(p.isdigit() for p in parts)


def _is_int(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, numbers.Integral)


def _image_values(model: Model, arguments: Mapping[str, Any]) -> int:
    """How many images the arguments send, over every image input (sources, masks, references)."""
    count = 0
    for name in model.image_inputs:
        value = arguments.get(name)
        count += len(value) if isinstance(value, (list, tuple)) else int(value is not None)
    return count


# -- the interpreter ----------------------------------------------------------------------------------------------
def bound(model: Model, arguments: Mapping[str, Any], input_sizes: Sequence[Size | None] | None = None) -> float:
    """The most a request may cost, in dollars, before sending. ``input_sizes``: the (width, height) of each image
    sent, sources first (the output may follow the first), then masks and references, None where not known; images
    not listed are of unknown size (the largest fal takes). Unpriced when it cannot be bounded."""
    rule, unit_price = _rule(model)
    args = arguments_with_defaults(model, arguments)
    n = images_asked(model, args)
    more = additions(rule, args, n)  # fal's extras for the options on, text tokens at their bound
    per = rule.get("per")
    if per == "image":
        return round(n * _per_image(model, rule, unit_price, args, arguments) + more, 6)
    sizes: list[Size | None] = list(input_sizes or [])
    sizes += [None] * (_image_values(model, args) - len(sizes))  # an image whose size is not given: unknown
    out = billed_megapixels(*output_size(model, args, sizes[0] if sizes else None))
    if rule.get("of", "output") == "output":
        return round(n * _per_mp(rule, unit_price, out) + more, 6)
    inputs = sum(billed_megapixels(*(s or LARGEST)) for s in sizes)
    return round(_per_mp(rule, unit_price, inputs + n * out) + more, 6)


def billed(
    model: Model,
    arguments: Mapping[str, Any],
    output_sizes: Sequence[Size],
    input_sizes: Sequence[Size] = (),
    text_tokens: tuple[int, int] | None = None,
) -> float:
    """What a completed request costs from what came back: its returned images' sizes (and for rules of input and
    output, the sources' sizes), plus the rule's extras for the options on. Per-token tables bill their worst case
    for what was asked; ``text_tokens`` (input, output) where they are known (the sandbox's), else their bound."""
    rule, unit_price = _rule(model)
    args = arguments_with_defaults(model, arguments)
    more = additions(rule, args, len(output_sizes), text_tokens)
    if rule.get("per") == "image":
        return round(len(output_sizes) * _per_image(model, rule, unit_price, args, arguments) + more, 6)
    if rule.get("of", "output") == "output":
        return round(sum(_per_mp(rule, unit_price, billed_megapixels(*s)) for s in output_sizes) + more, 6)
    if not output_sizes:
        return 0.0
    total = sum(billed_megapixels(*s) for s in (*input_sizes, *output_sizes))
    return round(_per_mp(rule, unit_price, total) + more, 6)


def additions(
    rule: Mapping[str, Any], args: Mapping[str, Any], images: int, text_tokens: tuple[int, int] | None = None
) -> float:
    """Dollars a rule's ``extras`` and ``text_tokens`` add for ``images`` returned (none returned: nothing billed).
    ``text_tokens`` (input, output): counted, or None for their bound (text fields' UTF-8 bytes, the output cap)."""
    if images <= 0:
        return 0.0
    total = 0.0
    for extra in rule.get("extras") or ():
        when = extra["when"]
        if args.get(str(when["field"])) == when["equals"]:
            total += float(extra["add"]) * (images if extra.get("per") == "image" else 1)
    tokens = rule.get("text_tokens")
    if isinstance(tokens, Mapping):
        inp, out = text_tokens if text_tokens is not None else token_bound(tokens, args)
        each = inp * float(tokens["input"]["per_1000"]) / 1000 + out * float(tokens["output"]["per_1000"]) / 1000
        total += each * (images if tokens.get("per") == "image" else 1)
    return total


def token_bound(tokens: Mapping[str, Any], args: Mapping[str, Any]) -> tuple[int, int]:
    """The most (input, output) text tokens a request may be charged: the text fields' UTF-8 bytes (a BPE token is
    at least one byte), and the rule's output cap."""
    fields = tokens["input"].get("fields") or ["prompt"]
    inp = sum(len(str(args[f]).encode("utf-8")) for f in fields if args.get(f) is not None)
    return inp, int(tokens["output"]["cap"])


def billed_units(
    model: Model,
    output_sizes: Sequence[Size],
    input_sizes: Sequence[Size] = (),
    arguments: Mapping[str, Any] | None = None,
) -> float:
    """fal's quantity in the model's unit: images (each counted at a multiplier's factor for the ``arguments``), or
    megapixels (of input and output where the rule says so)."""
    rule, _ = _rule(model)
    if rule.get("per") == "image":
        return float(len(output_sizes)) * _factor(model, rule, arguments or {})
    sizes = [*input_sizes, *output_sizes] if rule.get("of") == "input+output" and output_sizes else output_sizes
    return float(sum(billed_megapixels(*s) for s in sizes))


def from_units(model: Model, arguments: Mapping[str, Any], units: float) -> float:
    """Dollars for the quantity fal says it billed (``x-fal-billable-units``, in the model's unit): unit price x
    units, or a first megapixel and the rest at the extra price, or a table's price per image asked; plus the rule's
    extras and text tokens (their bound: fal sends no token count) for the images that makes."""
    rule, unit_price = _rule(model)
    if units <= 0:
        return 0.0
    args = arguments_with_defaults(model, arguments)
    if rule.get("per") == "image":
        images = max(1, math.ceil(units / _factor(model, rule, args) - 1e-9))
    else:
        images = images_asked(model, args)
    more = additions(rule, args, images)
    if rule.get("per") == "image" and "table" in rule:
        return round(units * _per_image(model, rule, unit_price, args, arguments) + more, 6)
    if rule.get("per") == "megapixel" and "first" in rule:
        return round(float(rule["first"]) + float(rule["extra"]) * max(0.0, units - 1) + more, 6)
    return round(units * unit_price + more, 6)


def _factor(model: Model, rule: Mapping[str, Any], arguments: Mapping[str, Any]) -> float:
    """A multiplier rule's factor for these arguments (with the schema's defaults); 1 for any other rule."""
    if not isinstance(rule.get("multiplier"), Mapping):
        return 1.0
    return _per_image(model, rule, 1.0, arguments_with_defaults(model, arguments), arguments)


def can_price(model: Model) -> str | None:
    """None when ``bound`` can price this model, else the one-line reason it cannot."""
    try:
        _rule(model)
    except Unpriced as exc:
        return str(exc)
    return None


def _rule(model: Model) -> tuple[Mapping[str, Any], float]:
    p = model.pricing
    if p is None:
        raise Unpriced(
            f"fal publishes no price for {model.endpoint_id} that kontext_nb could read, so it cannot bound what a job "
            f"costs and sends none: declare one with kx.set_price({model.endpoint_id!r}, <dollars>, per='image' or "
            "'megapixel') if you know it",
            field="model",
        )
    rule = p.rule
    per, of = rule.get("per"), rule.get("of", "output")
    ok = per == "image" or (per == "megapixel" and of in ("output", "input+output"))
    if ok and "multiplier" in rule:
        ok = per == "image" and isinstance(rule["multiplier"], Mapping) and bool(rule["multiplier"].get("values"))
    if ok and "table" in rule:
        ok = per == "image" and isinstance(rule["table"], Mapping) and "default" in rule["table"]
    if ok and ("first" in rule or "extra" in rule):
        ok = per == "megapixel" and all(isinstance(rule.get(k), (int, float)) for k in ("first", "extra"))
    if ok and ("extras" in rule or "text_tokens" in rule):
        ok = _additions_ok(rule)
    if not ok:
        raise Unpriced(
            f"kontext_nb cannot price {model.endpoint_id}: its price rule {dict(rule)!r} is not one it knows (per "
            "image, per megapixel of output or of input+output, first+extra megapixels, a multiplier, a worst-case "
            "table; extras and text tokens on top), so it sends no job to it",
            field="model",
        )
    return rule, p.unit_price


def _additions_ok(rule: Mapping[str, Any]) -> bool:
    """Whether a rule's ``extras`` and ``text_tokens`` have the shape tools/snapshot/README.md gives."""
    per = ("image", "request")
    extras = rule.get("extras", [])
    if not isinstance(extras, list) or not all(
        isinstance(e, Mapping)
        and isinstance(e.get("when"), Mapping)
        and isinstance(e["when"].get("field"), str)
        and "equals" in e["when"]
        and _is_number(e.get("add"))
        and e.get("per") in per
        for e in extras
    ):
        return False
    tokens = rule.get("text_tokens")
    if tokens is None:
        return True
    inp, out = (tokens.get(k) if isinstance(tokens, Mapping) else None for k in ("input", "output"))
    return (
        isinstance(tokens, Mapping)
        and tokens.get("per") in per
        and isinstance(inp, Mapping)
        and _is_number(inp.get("per_1000"))
        and isinstance(out, Mapping)
        and _is_number(out.get("per_1000"))
        and _is_int(out.get("cap"))
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _per_image(
    model: Model, rule: Mapping[str, Any], unit_price: float, args: Mapping[str, Any], asked: Mapping[str, Any]
) -> float:
    """One image's price. A worst-case table (per-token prices) is read for what was ``asked`` (the arguments as
    given); a multiplier for the arguments with the schema's defaults (a value not in it: the largest)."""
    table = rule.get("table")
    if isinstance(table, Mapping):
        fields = table.get("field")
        names = [fields] if isinstance(fields, str) else list(fields or [])
        worst = {str(k): float(v) for k, v in (table.get("worst_case") or {}).items()}
        dearest = max([float(table["default"]), *worst.values()])
        if any(asked.get(n) is None for n in names):  # not asked: whatever fal fills in, the dearest
            return dearest
        return worst.get("|".join(str(asked[n]) for n in names), dearest)
    mult = rule.get("multiplier")
    if isinstance(mult, Mapping):
        values = {str(k): float(v) for k, v in (mult.get("values") or {}).items()}
        chosen = args.get(str(mult.get("field")))
        return unit_price * values.get(str(chosen), max(values.values()))
    return unit_price


def _per_mp(rule: Mapping[str, Any], unit_price: float, megapixels: int) -> float:
    if "first" in rule:
        return float(rule["first"]) + float(rule["extra"]) * max(0, megapixels - 1)
    return unit_price * megapixels
