"""X/Y/Z sweeps (as in A1111's plot): a prompt with {a|b} groups and lists of settings, expanded into cells.

Nothing here sends anything: a Sweep says what would run, how many images it makes and what it costs, so the
caller can confirm before paying. Names, kinds and ranges all come from :mod:`kontext_nb.endpoints`.
"""

from __future__ import annotations

import functools
import itertools
import math
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from . import endpoints
from .endpoints import format_price
from .errors import ValidationError

if TYPE_CHECKING:
    from .request import Request

MAX_VALUES = 100
"""Values on one axis: more is almost surely a typo ("0-10000")."""
MAX_CELLS = 2000
"""Cells in one sweep: a guard against an accidental bill."""
NONE_LABEL = "(none)"


@functools.cache
def sweepable() -> tuple[str, ...]:
    """What can be an axis: "model", and every number, switch or choice input of the Kontext family (other models'
    such inputs too, found by name). Read on first use: importing this module reads no snapshot."""
    return (
        "model",
        *dict.fromkeys(
            f.name
            for ep in endpoints.ENDPOINTS.values()
            for f in ep.inputs
            if f.kind in ("integer", "float", "boolean", "enum") and f.name != "sync_mode"
        ),
    )


def __getattr__(name: str) -> Any:
    if name == "SWEEPABLE":  # the constant's old name, computed on first use
        return sweepable()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_TRUE, _FALSE = ("true", "on", "1", "yes"), ("false", "off", "0", "no")
_INT_RANGE = re.compile(r"^(\d+)\s*-\s*(\d+)$")


@dataclass(frozen=True)
class Axis:
    """One varying setting: its values and what the grid shows for each."""

    name: str
    values: tuple[Any, ...]
    labels: tuple[str, ...]


@dataclass(frozen=True)
class Cell:
    """One job of a sweep; arguments are fal inputs, not validated yet."""

    prompt: str
    arguments: dict[str, Any]
    model: str
    coords: tuple[int, ...]
    not_taken: tuple[str, ...] = ()
    """Settings asked for the sweep that this cell's model has no input for: left out of its request, shown '–'."""


@dataclass(frozen=True)
class Sweep:
    """Every cell of a sweep, in row-major order over the axes that vary."""

    axes: tuple[Axis, ...]
    cells: tuple[Cell, ...]
    prompt: str = ""
    """The prompt as written, with its {a|b} groups."""
    mode: str = "text-to-image"
    """text-to-image or edit: with the model, it names each cell's endpoint."""
    input_size: tuple[int, int] | None = None
    """An edit's source size, when known: per-megapixel cells are priced from it."""

    def count(self) -> int:
        return len(self.cells)

    def images(self) -> int:
        return sum(_num_images(cell) for cell in self.cells)

    def endpoint(self, cell: Cell) -> endpoints.Endpoint:
        return endpoints.endpoint_for(self.mode, cell.model)

    def cost(self, input_size: tuple[int, int] | None = None) -> float:
        """Dollars if every cell succeeds, each priced by its own model (per megapixel: estimated, high)."""
        total, size = 0.0, input_size or self.input_size
        for c in self.cells:
            ep = self.endpoint(c)
            args = {**ep.defaults(), **{k: v for k, v in c.arguments.items() if v is not None}}
            total += ep.estimate(args, size)
        return round(total, 4)

    @property
    def estimated(self) -> bool:
        """True when some cell is billed per megapixel, so the cost is an estimate."""
        return any(self.endpoint(c).unit == "megapixel" for c in self.cells)

    def not_taken(self) -> list[str]:
        """One line per setting some model of the sweep lacks ('guidance_scale: not taken by Seedream v4 Edit'), and
        for a seed axis over a model without a seed, that its cells are not reproducible: nothing is dropped
        silently."""
        lacking: dict[str, list[str]] = {}
        for cell in self.cells:
            for name in cell.not_taken:
                title = model_title(self.mode, cell.model)
                if title not in lacking.setdefault(name, []):
                    lacking[name].append(title)
        lines = []
        for name, titles in lacking.items():
            line = f"{name}: not taken by {', '.join(titles)}"
            if name == "seed":
                seeded = any(a.name == "seed" for a in self.axes)
                line += (
                    " (not reproducible: its cells along the seed axis are the same request, and differ only by chance)"
                    if seeded
                    else " (not reproducible)"
                )
            lines.append(line)
        return lines

    def describe(self) -> str:
        """One line to confirm before running, e.g. '2 prompts × 3 seeds = 6 images · $0.48'."""
        factors = []
        prompt_axes = [a for a in self.axes if a.name == "prompt"]
        if len(prompt_axes) == 1:
            factors.append(f"{len(prompt_axes[0].values)} prompts")
        elif prompt_axes:
            factors.append(" × ".join(str(len(a.values)) for a in prompt_axes) + " prompt alternatives")
        for axis in self.axes:
            if axis.name != "prompt":
                factors.append(f"{len(axis.values)} {_plural(axis.name)}")
        per_cell = _num_images(self.cells[0]) if self.cells else 1
        if per_cell > 1 and not any(a.name == "num_images" for a in self.axes):
            factors.append(f"{per_cell} images each")
        total = self.images()
        head = " × ".join(factors) + " = " if factors else ""
        price = format_price(self.cost(), estimate=self.estimated)
        return f"{head}{total} image{'s' if total != 1 else ''} · {price}"

    def __repr__(self) -> str:
        return f"<Sweep {self.describe()}>"


def model_label(model: str) -> str:
    """A model as a grid header shows it: its short alias (max, seedream4-edit), not a long endpoint id."""
    if model in endpoints.MODELS:
        return model
    from .models import registry

    found = registry().find(model)
    return found.alias if found is not None else model


def model_title(mode: str, model: str) -> str:
    """How a grid names a model: the registry's title (FLUX.1 Kontext [max] Edit, Seedream v4 Edit)."""
    try:
        return endpoints.endpoint_for(mode, model).title
    except ValidationError:
        return model


def cell_not_taken(ep: endpoints.Endpoint, arguments: Mapping[str, Any]) -> tuple[str, ...]:
    """The settings of ``arguments`` that ``ep``'s model has no input for. A size (aspect_ratio, image_size) and a
    count (num_images) count as taken where the model has some input the adapter sends them as."""
    takes = {f.name for f in ep.inputs}
    if not ep.kontext:  # shaped by models.adapt, which sends a size and a count as the inputs the model has
        if takes & {"aspect_ratio", "image_size", "resolution_mode"}:
            takes |= {"aspect_ratio", "image_size"}
        if takes & {"num_images", "max_images"}:
            takes.add("num_images")
    return tuple(k for k in arguments if k not in takes)


def _plural(name: str) -> str:
    return {"seed": "seeds", "model": "models"}.get(name, f"{name} values")


def _num_images(cell: Cell) -> int:
    return int(cell.arguments.get("num_images") or 1)  # every model's default: one image


def label(value: Any) -> str:
    """How a value reads in a grid header: 2.0 as '2', booleans as 'true'/'false'."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# -- values ---------------------------------------------------------------------------------------------------------


def parse_values(name: str, text: str) -> tuple[Any, ...]:
    """Turn '1-4', '2:5:0.5', '16:9,1:1', 'on,off' or 'max,pro' into checked values for one axis."""
    _check_name(name)
    if not text.strip():
        raise ValidationError(f"{name}: no values given", field=name)
    values: list[Any] = []
    for raw in text.split(","):
        piece = raw.strip()
        if not piece:
            raise ValidationError(
                f"{name}: empty value in {text!r} (check for a doubled or trailing comma)", field=name
            )
        values.extend(_parse_piece(name, piece))
        if len(values) > MAX_VALUES:
            raise ValidationError(f"{name}: more than {MAX_VALUES} values in {text!r}", field=name)
    return tuple(values)


def check_value(name: str, value: Any) -> Any:
    """The value as endpoints normalise it, or endpoints' one-line error naming option, value and what is allowed."""
    if name == "model":
        if value not in endpoints.MODELS and value not in endpoints.ENDPOINTS and not known_model(value):
            raise ValidationError(unknown_model(value), field="model")
        return value
    return endpoints.check_field(_field(name), value)


def known_model(value: Any) -> bool:
    """A model name as typed: a Kontext name, an alias exactly (they are lower-case) or an endpoint id the registry
    holds (the snapshot's, or one loaded live)."""
    if not isinstance(value, str) or value != value.strip() or not value:
        return False
    if "/" not in value and value != value.lower():
        return False
    from .models import registry

    return value in endpoints.MODELS or registry().find(value) is not None


def unknown_model(value: Any) -> str:
    """The one short line for a model name kontext_nb does not know (kx.models() lists every one)."""
    from .models import registry

    names = [*endpoints.MODELS, *registry().aliases(), *registry().endpoint_ids()]
    hint = endpoints.suggest(str(value), names) or endpoints.suggest(str(value).lower(), names)
    return (
        f"model={value!r} is not allowed{hint}: choose one of {', '.join(endpoints.MODELS)}, a model's alias "
        "(qwen-edit, seedream4-edit, ...: kx.models() lists them) or an endpoint id (with a fal key, any)"
    )


def _field(name: str) -> endpoints.Field:
    """The spec of an input: the Kontext family's, else the first registry model's that takes it."""
    try:
        return endpoints.field_spec(name)
    except KeyError:
        from .models import registry

        for m in registry().all():
            if m.takes(name):
                return endpoints.field_of(m.input(name))
        raise


def _sweepable_elsewhere(name: str) -> bool:
    """An input some other registry model takes that can be an axis (a number, a switch or a choice)."""
    try:
        return name != "sync_mode" and _field(name).kind in ("integer", "float", "boolean", "enum")
    except KeyError:
        return False


def _check_name(name: str) -> None:
    if name not in sweepable() and not _sweepable_elsewhere(name):
        raise ValidationError(
            f"{name!r} cannot be swept{endpoints.suggest(name, sweepable())}; sweepable: {', '.join(sweepable())}",
            field=name,
        )


def _parse_piece(name: str, piece: str) -> list[Any]:
    if name == "model":
        return [check_value(name, piece)]
    field = _field(name)
    if field.kind == "boolean":
        word = piece.lower()
        if word not in _TRUE + _FALSE:
            raise ValidationError(f"{name}={piece!r} is not allowed: use true/false, on/off or 1/0", field=name)
        return [word in _TRUE]
    if field.kind == "enum":
        return [check_value(name, piece)]
    if field.kind == "integer" and (m := _INT_RANGE.match(piece)):
        return _steps(name, piece, int(m[1]), int(m[2]), 1)
    if ":" in piece:
        parts = [p.strip() for p in piece.split(":")]
        if len(parts) != 3:
            raise ValidationError(f"{name}={piece!r}: a range is start:stop:step, e.g. 2:5:0.5", field=name)
        start, stop, step = (_number(name, field.kind, p, piece) for p in parts)
        return _steps(name, piece, start, stop, step)
    return [check_value(name, _number(name, field.kind, piece, piece))]


def _number(name: str, kind: str, text: str, piece: str) -> int | float:
    try:
        value = int(text) if kind == "integer" else float(text)
    except ValueError:
        what = "an integer" if kind == "integer" else "a number"
        where = f"{name}={piece!r}" + (f": {text!r}" if text != piece else "")
        raise ValidationError(f"{where} is not {what}; allowed: {_field(name).allowed()}", field=name) from None
    if not math.isfinite(value):
        raise ValidationError(f"{name}={piece!r} is not a finite number: {_field(name).allowed()}", field=name)
    return value


def _steps(name: str, piece: str, start: float, stop: float, step: float) -> list[Any]:
    """start, start+step, ... up to stop (included when it lands on it), every value checked."""
    if step <= 0:
        raise ValidationError(f"{name}={piece!r}: the step must be above 0", field=name)
    if start > stop:
        raise ValidationError(f"{name}={piece!r} is a reversed range: write the smaller value first", field=name)
    n = math.floor((stop - start) / step + 1e-9) + 1
    if n > MAX_VALUES:
        raise ValidationError(f"{name}={piece!r} makes {n} values; at most {MAX_VALUES} per axis", field=name)
    for bound in (start, stop):
        try:
            check_value(name, bound)
        except ValidationError:
            allowed = _field(name).allowed()
            raise ValidationError(f"{name}={piece!r} goes out of range: {allowed}", field=name) from None
    if isinstance(start, int) and isinstance(step, int):
        return [check_value(name, start + i * step) for i in range(n)]
    # rounding keeps 0.1-steps from drifting into 2.3000000000000003
    return [check_value(name, round(start + i * step, 10)) for i in range(n)]


# -- prompts --------------------------------------------------------------------------------------------------------


def expand_prompt(prompt: str) -> tuple[list[str], list[Axis]]:
    """'a {cat|fox} in {snow|rain}' -> its 4 prompts (row-major) and one axis per group.

    Braces without '|' stay as they are (IPython may expand them later); '\\{', '\\}' and '\\|' are literal.
    """
    segments, groups = _parse_prompt(prompt)
    axes = [Axis("prompt", tuple(g), tuple(alt or NONE_LABEL for alt in g)) for g in groups]
    prompts = [_render(segments, groups, choice) for choice in itertools.product(*(range(len(g)) for g in groups))]
    return prompts, axes


def _parse_prompt(prompt: str) -> tuple[list[str], list[list[str]]]:
    """Literal segments around the alternative groups: len(segments) == len(groups) + 1."""
    tokens = re.split(r"(\\[{}|]|[{}|])", prompt)
    segments, groups = [""], []
    stack: list[tuple[int, str, list[str]]] = []  # (position, text so far, alternatives) per open brace
    pos, bad_at = 0, -1
    for tok in tokens:
        if tok in ("\\{", "\\}", "\\|"):
            text = tok[1]
        elif tok == "{":
            stack.append((pos, "", []))
            text = None
        elif tok == "}" and stack:
            start, body, alts = stack.pop()
            if alts and not stack:
                groups.append([a.strip() for a in [*alts, body]])
                segments.append("")
                text = None
            else:
                text = "{" + "|".join([*alts, body]) + "}"
        elif tok == "|" and len(stack) == 1:
            start, body, alts = stack[-1]
            stack[-1] = (start, "", [*alts, body])
            text = None
        else:
            if tok == "}" and bad_at < 0:
                bad_at = pos
            text = tok
        if text is not None:
            if stack:
                start, body, alts = stack[-1]
                stack[-1] = (start, body + text, alts)
            else:
                segments[-1] += text
        pos += len(tok)
    if stack:
        bad_at = stack[0][0]
        segments[-1] += "".join("{" + "|".join([*alts, body]) for _, body, alts in stack)
    if bad_at >= 0 and re.search(r"(?<!\\)\|", prompt):
        raise ValidationError(
            f"prompt: unbalanced brace at character {bad_at + 1} of {_around(prompt, bad_at)}: "
            "write {a|b} for alternatives "
            "and \\{ or \\} for a literal brace",
            field="prompt",
        )
    return segments, groups


def _render(segments: list[str], groups: list[list[str]], choice: Iterable[int]) -> str:
    out = segments[0]
    for seg, group, i in zip(segments[1:], groups, choice, strict=True):
        alt = group[i]
        if not alt and out.endswith(" ") and seg.startswith(" "):
            out = out[:-1]  # "a {big|} cat" -> "a cat", not "a  cat"
        out += alt + seg
    return out.strip() if groups else out


# -- sweeps ---------------------------------------------------------------------------------------------------------


def build_sweep(
    prompt: str,
    options: Mapping[str, Any],
    *,
    model: str | Sequence[str] = "max",
    base: Mapping[str, Any] | None = None,
    mode: str = "text-to-image",
) -> Sweep:
    """Expand a prompt's {a|b} groups and option lists into every cell, checking each value once.

    ``options`` maps an input name (or "model") to its values, a tuple or text for :func:`parse_values`.
    ``base`` holds inputs fixed for every cell; options override it. Without a seed given, one random seed is
    drawn and shared by every cell, so cells differ only in what is swept.
    """
    first = model if isinstance(model, str) else (list(model) or ["max"])[0]
    if not isinstance(model, str):  # several models: the model axis (kx.sweep(..., model=[...]))
        options = {**options, "model": tuple(model)}
    check_value("model", first)
    fixed = dict(base or {})
    asked = {*fixed, *(k for k in options if k != "model")}
    for key in ("prompt", "model"):
        if key in fixed:
            raise ValidationError(f"base must not contain {key!r}: pass it as the {key} argument", field=key)
    segments, groups = _parse_prompt(prompt)
    axes = [Axis("prompt", tuple(g), tuple(alt or NONE_LABEL for alt in g)) for g in groups]
    for name, given in options.items():
        values = _values(name, given)
        if len(values) > 1:
            shown = tuple(model_label(v) if name == "model" else label(v) for v in values)
            axes.append(Axis(name, values, shown))
        elif name == "model":
            first = values[0]
        else:
            fixed[name] = values[0]
    axes.sort(key=lambda a: a.name != "model")  # models side by side: the grid's columns
    if "seed" not in fixed and not any(a.name == "seed" for a in axes):
        fixed["seed"] = random.randrange(2**31)
    total = math.prod(len(a.values) for a in axes)
    if total > MAX_CELLS:
        shape = " × ".join(str(len(a.values)) for a in axes)
        raise ValidationError(f"the sweep has {total} cells ({shape}); at most {MAX_CELLS}: sweep fewer values")
    cells = []
    for coords in itertools.product(*(range(len(a.values)) for a in axes)):
        arguments, cell_model, choice = dict(fixed), first, []
        for axis, i in zip(axes, coords, strict=True):
            if axis.name == "prompt":
                choice.append(i)
            elif axis.name == "model":
                cell_model = axis.values[i]
            else:
                arguments[axis.name] = axis.values[i]
        text = _render(segments, groups, choice)
        cells.append(Cell(text, arguments, cell_model, tuple(coords)))
    served = {m: endpoints.endpoint_for(mode, m) for m in dict.fromkeys(c.model for c in cells)}  # dev: no t2i
    for name in asked - {"seed"}:  # a setting no model of the sweep takes is a mistake (a typo), not '–' everywhere
        if all(name in cell_not_taken(served[c.model], {name: None}) for c in cells):
            endpoints.validate(served[cells[0].model], {name: fixed.get(name)}, fill_defaults=False)
            raise ValidationError(f"{name} is not taken by any model of this sweep", field=name)
    shaped = []
    for cell in cells:  # each model gets its own request shape: what it lacks is left out of it, and listed
        lacking = cell_not_taken(served[cell.model], cell.arguments)
        kept = {k: v for k, v in cell.arguments.items() if k not in lacking}
        said = tuple(k for k in lacking if k in asked or k == "seed")  # a model without a seed: always said
        shaped.append(replace(cell, arguments=kept, not_taken=said))
    return Sweep(tuple(axes), tuple(shaped), prompt, mode)


def _values(name: str, given: Any) -> tuple[Any, ...]:
    if isinstance(given, str):
        return parse_values(name, given)
    _check_name(name)
    values = tuple(given) if isinstance(given, Iterable) and not isinstance(given, bytes) else (given,)
    if not values:
        raise ValidationError(f"{name}: no values given", field=name)
    if len(values) > MAX_VALUES:
        raise ValidationError(f"{name}: {len(values)} values; at most {MAX_VALUES} per axis", field=name)
    return tuple(check_value(name, v) for v in values)


def _around(text: str, at: int, width: int = 30) -> str:
    """The part of a long prompt around a position, for a message that stays one short line."""
    if len(text) <= 2 * width:
        return repr(text)
    start = max(0, at - width)
    return repr(("..." if start else "") + text[start : at + width] + ("..." if at + width < len(text) else ""))


@dataclass(frozen=True)
class SweepPlan:
    """A sweep with every cell's checked request (each in its own model's shape), priced before anything is sent:
    what ``kx.sweep`` reserves as one whole (caps and confirm_above see the total), and what the panel shows."""

    sweep: Sweep
    requests: tuple[tuple[Request, int | None], ...]
    """One (request, the journal id of the job it edits) per cell, in the sweep's cell order."""

    @property
    def costs(self) -> tuple[float, ...]:
        """Each cell's upper bound in dollars (its model's price rule, models.bound)."""
        return tuple(r.cost for r, _ in self.requests)

    @property
    def cost(self) -> float:
        """The whole sweep's upper bound: what is reserved before the first cell is sent."""
        return round(sum(self.costs), 6)

    @property
    def estimated(self) -> bool:
        return any(r.estimated for r, _ in self.requests)

    def not_taken(self) -> list[str]:
        return self.sweep.not_taken()

    def describe(self) -> str:
        """The sweep's line priced from its real requests: '4 models × 2 seeds = 8 images · $0.52 (estimated)'."""
        head = self.sweep.describe().rsplit(" · ", 1)[0]
        return f"{head} · {format_price(self.cost, estimate=self.estimated)}"

    def __repr__(self) -> str:
        return f"<SweepPlan {self.describe()}>"
