"""Adapters: one model-neutral intention -> each model's request shape, and each model's output -> one shape.

Not per-model code: every decision reads the model's schema (which inputs it has, their enums and limits).
- sources: ``image_url`` (one) or ``image_urls`` (a list, within its minItems/maxItems);
- mask: ``mask_url`` or ``mask_image_url``; a required ``reference_image_url`` gets the first source;
- size: an aspect ratio 'W:H', a preset name or (width, height) -> the model's ``aspect_ratio`` enum (the nearest
  allowed), ``image_size`` preset or ``{width, height}``, ``resolution_mode`` or a 'WxH' enum;
- n: ``num_images``, else ``max_images``;
- seed: sent when the model takes one; a model without one makes the job "not reproducible" (``Adapted``'s flag,
  which callers journal) and a seed given to it is listed as not taken;
- settings the model lacks are returned in ``not_taken`` (callers show them; nothing is dropped silently).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ValidationError
from .pricing import SIZE_PRESETS
from .schema import Model

SizeAsked = str | tuple[int, int] | None


@dataclass(frozen=True)
class Intention:
    """What a user asks for, whatever the model."""

    prompt: str
    sources: Sequence[str] = ()
    """Source images as URLs or data URIs (already uploaded or encoded), in order."""
    mask: str | None = None
    size: SizeAsked = None
    """An aspect ratio ('16:9'), a preset name ('landscape_4_3', '1024x1536') or (width, height)."""
    n: int | None = None
    seed: int | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    """Any other inputs by fal's names (guidance_scale, output_format, ...)."""


@dataclass(frozen=True)
class Adapted:
    """An intention in one model's request shape."""

    endpoint_id: str
    arguments: dict[str, Any]
    not_taken: tuple[str, ...]
    """What was asked that this model has no input for (names as asked: 'seed', 'mask', 'size', setting names)."""
    reproducible: bool
    """False when the model takes no seed: the same request may not make the same image again."""
    notes: tuple[str, ...] = ()
    """How an intention was translated where it was not literal ('size 16:9 sent as image_size=landscape_16_9')."""


def adapt(model: Model, intention: Intention) -> Adapted:
    """``intention`` as ``model``'s request. ValidationError (one line) where it cannot be sent as asked at all:
    a source it needs is missing, or more sources than it takes."""
    args: dict[str, Any] = {}
    not_taken: list[str] = []
    notes: list[str] = []
    if model.takes("prompt"):
        args["prompt"] = intention.prompt
    elif intention.prompt:
        not_taken.append("prompt")
    _sources(model, list(intention.sources), args, not_taken)
    if intention.mask is not None:
        mask = model.mask_field
        if mask is None:
            not_taken.append("mask")
        else:
            args[mask.name] = intention.mask
    ref = next((f for f in model.inputs if "reference" in f.name and f.kind == "image"), None)
    if ref is not None and ref.required and intention.sources and ref.name not in intention.settings:
        args[ref.name] = intention.sources[0]
        notes.append(f"{ref.name} (required) is the first source")
    if intention.size is not None:
        _size(model, intention.size, args, not_taken, notes)
    if intention.n is not None:
        _count(model, int(intention.n), args, not_taken, notes)
    if intention.seed is not None:
        if model.takes_seed:
            args["seed"] = intention.seed
        else:
            not_taken.append("seed")
    for key, value in intention.settings.items():
        if model.takes(key):
            args[key] = value
        else:
            not_taken.append(key)
    return Adapted(model.endpoint_id, args, tuple(not_taken), model.takes_seed, tuple(notes))


def _sources(model: Model, sources: list[str], args: dict[str, Any], not_taken: list[str]) -> None:
    src = model.source_field
    if src is None:
        if sources:
            not_taken.append("sources")
        return
    if not sources:
        if src.required:
            raise ValidationError(f"{model.endpoint_id} edits images: give a source image ({src.name})", field=src.name)
        return
    if src.kind == "image":
        if len(sources) > 1:
            raise ValidationError(
                f"{model.endpoint_id} takes one source image ({src.name}), not {len(sources)}", field=src.name
            )
        args[src.name] = sources[0]
        return
    lo, hi = src.min_items or 1, src.max_items
    if len(sources) < lo or (hi is not None and len(sources) > hi):
        allowed = f"{lo} to {hi}" if hi is not None else f"at least {lo}"
        raise ValidationError(
            f"{model.endpoint_id} takes {allowed} source images ({src.name}), not {len(sources)}", field=src.name
        )
    args[src.name] = list(sources)


def _ratio(text: Any) -> float | None:
    try:
        w, h = (float(x) for x in str(text).replace("x", ":").split(":"))
        return w / h if w > 0 and h > 0 else None
    except ValueError:
        return None


def _size(model: Model, size: Any, args: dict[str, Any], not_taken: list[str], notes: list[str]) -> None:
    wh = tuple(int(x) for x in size) if isinstance(size, (tuple, list)) and len(size) == 2 else None
    preset = str(size) if isinstance(size, str) else None
    shape = (wh[0] / wh[1] if wh and wh[1] else None) if wh else None
    if preset is not None:
        shape = _ratio(preset) if ":" in preset or "x" in preset.lower() else None
        if shape is None and preset in SIZE_PRESETS:
            pw, ph = SIZE_PRESETS[preset]
            shape = pw / ph
    for name in ("aspect_ratio", "image_size", "resolution_mode"):
        if not model.takes(name):
            continue
        f = model.input(name)
        if preset is not None and preset in f.enum:
            args[name] = preset
            return
        if f.kind == "size" and wh is not None:
            side = f.max_side or 14142
            args[name] = {"width": max(1, min(side, wh[0])), "height": max(1, min(side, wh[1]))}
            return
        if shape is None:
            continue
        shapes = {o: _ratio(o) for o in f.enum}
        shapes.update({p: SIZE_PRESETS[p][0] / SIZE_PRESETS[p][1] for p in f.enum if p in SIZE_PRESETS})
        known = {o: r for o, r in shapes.items() if r is not None}
        chosen = min(known, key=lambda o: abs(math.log((known[o] or 1.0) / shape))) if known else None
        if chosen is not None:
            args[name] = chosen
            notes.append(f"size {_shown(size)} sent as {name}={chosen!r} (the nearest {model.endpoint_id} allows)")
            return
    not_taken.append("size")


def _shown(size: Any) -> str:
    return f"{size[0]}x{size[1]}" if isinstance(size, (tuple, list)) else str(size)


def _count(model: Model, n: int, args: dict[str, Any], not_taken: list[str], notes: list[str]) -> None:
    name = model.count_field
    if name is None:
        if n != 1:
            not_taken.append("n")
        return
    f = model.input(name)
    if (f.minimum is not None and n < f.minimum) or (f.maximum is not None and n > f.maximum):
        lo, hi = int(f.minimum or 1), f.maximum
        allowed = f"{lo} to {int(hi)}" if hi is not None else f"at least {lo}"
        raise ValidationError(f"{model.endpoint_id} makes {allowed} images per request ({name}), not {n}", field=name)
    args[name] = n
    if name == "max_images":
        notes.append(f"n={n} sent as max_images (the model returns up to that many)")


# -- outputs ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Output:
    """Any model's output in one shape."""

    images: tuple[dict[str, Any], ...]
    """Each {'url', 'width', 'height', 'content_type', ...} as returned."""
    seeds: tuple[int | None, ...]
    """The seed of each image: the returned one (``seed`` for all, or ``seeds`` one each), None if none came back."""
    nsfw: tuple[bool, ...]
    """Whether each image was flagged (``has_nsfw_concepts`` / ``nsfw_content_detected``); False when not said."""
    extra: dict[str, Any]
    """Every other output field (prompt, description, timings, ...)."""


def normalise(body: Mapping[str, Any]) -> Output:
    """Read ``images[]`` or ``image``, ``seed`` or ``seeds`` and the NSFW flags, whatever the model."""
    raw = body.get("images")
    if raw is None and isinstance(body.get("image"), Mapping):
        raw = [body["image"]]
    images = tuple(dict(i) for i in (raw or []) if isinstance(i, Mapping))
    seeds: list[int | None]
    if isinstance(body.get("seeds"), list):
        seeds = [_int(s) for s in body["seeds"]]
    else:
        seeds = [_int(body.get("seed"))] * len(images)
    seeds = (seeds + [seeds[-1] if seeds and "seed" in body else None] * len(images))[: len(images)]
    flags = body.get("has_nsfw_concepts", body.get("nsfw_content_detected"))
    nsfw = [bool(x) for x in flags] if isinstance(flags, list) else []
    nsfw = (nsfw + [False] * len(images))[: len(images)]
    used = {"images", "image", "seed", "seeds", "has_nsfw_concepts", "nsfw_content_detected"}
    return Output(images, tuple(seeds), tuple(nsfw), {k: v for k, v in body.items() if k not in used})


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        return None
    return int(value)
