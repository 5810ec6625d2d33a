"""The panel's inputs, generated from the model's schema: one control per fal input, and the source images.

One builder for every model of the registry (``models.Model.inputs``, in fal's x-fal-order-properties order): enums
are dropdowns, numbers with a range bounded inputs (floats with a slider), booleans checkboxes, descriptions and
what is allowed the tooltips (``views.model_help.allowed``); image inputs are the source and mask pickers. Nothing
here is written per model.
"""

from __future__ import annotations

import contextlib
import html
import io
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import ipywidgets as w
from PIL import Image
from traitlets import TraitError

from .. import endpoints, models
from ..errors import ValidationError
from ..images import ImageInput, prepare_image
from ..models import InputField, Model
from ..models.help import allowed
from ..sweep import label, parse_values
from . import theme
from .cards import close_tree

SWEEP_FIELDS = ("seed", "guidance_scale")
"""Inputs typed as text, so a list ("1,2,3", "1-4", "2:5:0.5") makes a sweep."""
NO_DEFAULT_LABELS = {"aspect_ratio": "(keep the input's shape)"}
NO_DEFAULT = ""
"""The Dropdown value for "send nothing, let fal choose" (None would read as "no selection")."""
FALS_CHOICE = "(fal's choice)"
SEED_LIMIT = 2**31
RANDOM = "-1"
"""What the seed field holds for "draw a new seed" (AUTOMATIC1111's convention; empty means the same)."""
ADVANCED = ("sync_mode",)
"""Inputs most people never touch: behind an "advanced" fold."""
NOT_SHOWN = ("prompt", "image", "images", "object", "array")
"""Inputs without a control: the prompt box, the source and mask pickers; objects and lists are set from code."""
LABEL_WIDTH = "120px"
"""The least width of the controls' labels; one width for all of a model's, so the fields line up."""
FIELD_WIDTH = "185px"
"""The fields' column: "(keep the input's shape)" fits its dropdown."""
LABEL_CHAR = 7.2
"""Pixels per character of a label (JupyterLab's 13px UI font, generously): the longest label of a model fits."""
SHAPE_SIDE = 32
ERROR_STYLE = f"color:{theme.ERROR};font-size:12px"
THUMB_SIDE = 96


def error_html(message: str) -> str:
    return f'<span style="{ERROR_STYLE}">{html.escape(message)}</span>' if message else ""


def model_of(spec: Model | endpoints.Endpoint) -> Model:
    """The registry's Model of an endpoint (the panel names endpoints; the controls come from the schema)."""
    if isinstance(spec, Model):
        return spec
    return spec.spec if spec.spec is not None else models.get(spec.id)


def shown(model: Model) -> list[InputField]:
    """The inputs that get a control, in fal's order."""
    return [f for f in model.inputs if f.name != "prompt" and f.kind not in NOT_SHOWN]


def _label(field: InputField) -> str:
    return field.name.replace("_", " ")


def _tooltip(field: InputField) -> str:
    description = " ".join(field.description.split())
    return f"{description} ({allowed(field)})" if description else allowed(field)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (tuple, list)):
        return ",".join(label(v) for v in value)
    return label(value)


def label_width(fields: list[InputField]) -> str:
    """A width the longest label of these fields fits in (never below LABEL_WIDTH)."""
    longest = max((len(_label(f)) for f in fields), default=0)
    return f"{max(int(LABEL_WIDTH[:-2]), round(longest * LABEL_CHAR) + 8)}px"


def control_for(field: InputField, width: str = LABEL_WIDTH) -> w.Widget:
    """The widget for one fal input: Dropdown (enum), Checkbox (boolean), bounded number, or Text.

    Seed and guidance are Text so they accept a list for a sweep; their values are checked by
    :func:`kontext_nb.sweep.parse_values` against the same spec. A number with no default is Text too: empty sends
    nothing (fal's choice), where a number box would send 0.
    """
    if field.kind in ("image", "images"):
        raise ValueError(f"no control for the {field.kind} input {field.name!r}: images are chosen with a SourcePicker")
    common: dict[str, Any] = {
        "description": _label(field),
        "tooltip": _tooltip(field),
        "style": {"description_width": width},
        "layout": w.Layout(width=f"calc({width} + {FIELD_WIDTH})", max_width="100%"),
    }
    default = field.default if field.has_default else None
    if field.name in SWEEP_FIELDS:
        hint = "-1: random" if field.name == "seed" else label(default) if default is not None else FALS_CHOICE
        value = RANDOM if field.name == "seed" else _text(default)
        return w.Text(value=value, placeholder=f"{hint}, or a list: 1,2,3 / 1-4", **common)
    if field.kind == "boolean":
        # in the fields' column, its name beside it (as wide as it needs: the usual 300px cut long names)
        return w.Checkbox(value=bool(default), indent=True, **{**common, "layout": w.Layout(width="auto")})
    if field.kind == "loras":
        return w.Textarea(value="", placeholder="URL[:SCALE] or a .safetensors path, one per line", rows=1, **common)
    if field.kind in ("enum", "size") and field.enum:  # image_size: its presets (a custom WxH from code or magics)
        listed = _listed_default(field)
        if listed:
            options: list[tuple[str, str]] = []
        elif field.has_default:  # a default the list does not hold ({width, height}): sent as nothing, fal's default
            options = [(f"default ({_size_text(field.default)})", NO_DEFAULT)]
        else:
            options = [(NO_DEFAULT_LABELS.get(field.name, FALS_CHOICE), NO_DEFAULT)]
        options += [(str(c), str(c)) for c in field.enum]
        return w.Dropdown(options=options, value=str(default) if listed else NO_DEFAULT, **common)
    bounded = field.minimum is not None and field.maximum is not None and default is not None
    if field.kind == "integer" and bounded:
        return w.BoundedIntText(value=default, min=field.minimum, max=field.maximum, **common)
    if field.kind == "float" and bounded:
        return w.BoundedFloatText(value=default, min=field.minimum, max=field.maximum, step=0.01, **common)
    if field.kind == "integer" and default is not None:
        return w.IntText(value=default, **common)
    if field.kind == "float" and default is not None:
        return w.FloatText(value=default, **common)
    placeholder = FALS_CHOICE if field.kind not in ("integer", "float") else f"{FALS_CHOICE}: {allowed(field)}"
    return w.Text(value="" if default is None else str(default), placeholder=placeholder, **common)


def _listed_default(field: InputField) -> bool:
    """The input's default is one of its choices (a dropdown can show it)."""
    return field.has_default and str(field.default) in [str(c) for c in field.enum]


def _size_text(value: Any) -> str:
    if isinstance(value, Mapping) and "width" in value and "height" in value:
        return f"{value['width']}x{value['height']}"
    return str(value)


def _typed_number(field: InputField, text: str) -> Any:
    """A number typed in a Text control (no default): None when empty, else checked against the schema's range."""
    text = text.strip()
    if not text:
        return None
    try:
        value: Any = int(text) if field.kind == "integer" else float(text)
    except ValueError:
        raise ValidationError(f"{field.name}={text!r} is not allowed: {allowed(field)}", field=field.name) from None
    low, high = field.minimum, field.maximum
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValidationError(f"{field.name}={text} is not allowed: {allowed(field)}", field=field.name)
    return value


class InputControls:
    """One control per fal input of the current endpoint, each with an error label beside it.

    Rebuilt per field when the mode or model changes, so each endpoint offers exactly its own inputs (the edit
    endpoints have no aspect_ratio default: they offer "keep the input's shape"). A value the user chose
    survives the switch when the new endpoint allows it.

    Seed: the field holds the seed the next run uses (empty: fal draws one). Unlocked, it is replaced by a new
    random seed after each run; locked, it stays. A list (a sweep) is never replaced.
    """

    def __init__(self, endpoint: Model | endpoints.Endpoint) -> None:
        self.model = model_of(endpoint)
        self.controls: dict[str, w.Widget] = {}
        self.errors: dict[str, w.HTML] = {}
        self._fields: dict[str, InputField] = {}
        self._rows: dict[str, w.Widget] = {}
        self._listeners: list[Callable[[str], None]] = []
        self.allowed: dict[str, list[str]] = {}
        """Enum inputs offered only in part (a classroom proxy's safety_tolerance ceiling), by name."""
        self.seed_lock = w.ToggleButton(
            value=False,
            icon="unlock",
            tooltip="Locked: keep this seed for the next runs",
            layout=w.Layout(width="40px"),
        )
        self.randomize = w.Button(icon="random", tooltip="Draw a new random seed", layout=w.Layout(width="40px"))
        self.seed_lock.observe(
            lambda change: setattr(self.seed_lock, "icon", "lock" if change.new else "unlock"), "value"
        )
        self.randomize.on_click(lambda _: self.randomize_seed())
        self._seed_minimum = 0
        self._shown_used: str | None = None
        self.sliders: dict[str, w.FloatSlider] = {}
        """A slider beside each bounded number typed as text (guidance): drag, or type a value or a list."""
        self.shape = w.HTML(layout=w.Layout(margin="0 0 0 8px"))
        """The aspect ratio's shape, drawn to scale."""
        self.advanced = w.Accordion(layout=w.Layout(width="auto"))
        self.widget = w.VBox(layout=w.Layout(overflow="hidden"))
        self.set_endpoint(endpoint)

    # -- building --------------------------------------------------------------------------------------------
    def set_endpoint(self, endpoint: Model | endpoints.Endpoint) -> None:
        """Offer the inputs of this model (or endpoint); controls whose spec is unchanged keep their values."""
        self.model = model_of(endpoint)
        wanted = shown(self.model)
        seed = next((f for f in wanted if f.name == "seed"), None)
        self._seed_minimum = int(seed.minimum or 0) if seed is not None else 0
        width = label_width(wanted)
        for f in wanted:
            old = self._fields.get(f.name)
            if old == f:
                kept_control = self.controls[f.name]  # kept: lined up with the new ones
                kept_control.style.description_width = width
                if not isinstance(kept_control, w.Checkbox):
                    kept_control.layout.width = f"calc({width} + {FIELD_WIDTH})"
                continue
            control = control_for(f, width)
            if old is not None:  # a choice the user made survives; the old row goes (its error label stays)
                kept = self.controls[f.name].value
                unset = f.name in NO_DEFAULT_LABELS and not f.has_default  # the edit's "keep the input's shape"
                if kept != _initial(old) and _allows(control, kept) and not unset:
                    with contextlib.suppress(TraitError, TypeError, ValueError):  # a value the new control cannot hold
                        control.value = kept
                self._rows[f.name].close()
                self.controls[f.name].close()
            self.controls[f.name], self._fields[f.name] = control, f
            self._apply_allowed(f.name)
            self.errors.setdefault(f.name, w.HTML())
            control.observe(lambda change, name=f.name: self._changed(name), "value")
            # a narrow form: a slider goes below; the seed's field gives way to its lock and dice instead
            row = w.Layout(flex_flow="row nowrap" if f.name == "seed" else "row wrap", align_items="center")
            if f.name == "seed":
                control.layout.flex, control.layout.min_width = "0 1 auto", "0"
            self._rows[f.name] = w.HBox([control, *self._extras(f, control), self.errors[f.name]], layout=row)
        for name in set(self.controls) - {f.name for f in wanted}:
            for widget in (self._rows.pop(name), self.controls.pop(name), self.errors.pop(name)):
                widget.close()
            del self._fields[name]
            self.sliders.pop(name, None)
        order = [f.name for f in wanted]  # fal's order, whichever model offered a kept control first
        self.controls = {n: self.controls[n] for n in order}
        self._fields, self._rows = {n: self._fields[n] for n in order}, {n: self._rows[n] for n in order}
        plain = [self._rows[f.name] for f in wanted if f.name not in ADVANCED]
        self.advanced.children = [w.VBox([self._rows[f.name] for f in wanted if f.name in ADVANCED])]
        self.advanced.titles = ("advanced",)
        folded = any(f.name in ADVANCED for f in wanted)
        self.widget.children = [*plain, self.advanced] if folded else plain
        self._draw_shape()

    def restrict(self, name: str, values: list[str]) -> None:
        """Offer only these values of an enum input, now and after every model switch."""
        self.allowed[name] = [str(v) for v in values]
        self._apply_allowed(name)

    def _apply_allowed(self, name: str) -> None:
        control, values = self.controls.get(name), self.allowed.get(name)
        if not isinstance(control, w.Dropdown) or not values:
            return
        options = [o for o in control.options if o[1] in values]
        if options and len(options) != len(control.options):
            value = control.value if control.value in values else options[-1][1]
            control.options = options
            control.value = value

    def not_taken(self, model: Model) -> list[str]:
        """The settings changed from their defaults here that ``model`` does not take (said when switching)."""
        changed = []
        for name, control in self.controls.items():
            f = self._fields[name]
            if not model.takes(name) and control.value != _initial(f) and not (name == "seed" and self._draws_seed()):
                changed.append(name)
        return changed

    def _extras(self, f: InputField, control: w.Widget) -> list[w.Widget]:
        """What stands beside a control: the seed's lock and dice, a bounded number's slider, the ratio's shape."""
        if f.name == "seed":
            return [self.seed_lock, self.randomize]
        if f.name == "aspect_ratio":
            control.observe(lambda _: self._draw_shape(), "value")
            return [self.shape]
        if f.kind == "float" and f.minimum is not None and f.maximum is not None:
            start = float(f.default if f.has_default and f.default is not None else f.minimum)
            step = 0.1 if f.maximum - f.minimum > 2 else 0.01
            slider = w.FloatSlider(
                value=start, min=f.minimum, max=f.maximum, step=step, readout=False, layout=w.Layout(width="160px")
            )
            self.sliders[f.name] = slider
            if isinstance(control, w.Text):
                _link_slider(slider, control)
            else:
                w.jslink((slider, "value"), (control, "value"))
            return [slider]
        return []

    def _draw_shape(self) -> None:
        control = self.controls.get("aspect_ratio")
        value = str(control.value) if control is not None else ""
        self.shape.value = shape_html(value)

    def on_change(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(field_name)`` whenever a control's value changes."""
        self._listeners.append(listener)

    def _changed(self, name: str) -> None:
        self.clear_error(name)
        for listener in list(self._listeners):
            listener(name)

    # -- values ----------------------------------------------------------------------------------------------
    def values(self) -> dict[str, Any]:
        """Every input shown, by fal name. None means "not given" (fal's default or choice). Seed and guidance
        are a value, or a tuple of values when a list was typed (a sweep). Raises ValidationError (with
        ``.field``) for text that is not a valid value or list."""
        out: dict[str, Any] = {}
        for name, control in self.controls.items():
            value = control.value
            if name == "seed" and self._draws_seed(value):
                out[name] = random.randrange(self._seed_minimum, SEED_LIMIT)
            elif name in SWEEP_FIELDS:
                values = parse_values(name, value) if value.strip() else ()
                out[name] = None if not values else values[0] if len(values) == 1 else values
            elif self._fields[name].kind == "loras":
                lines = [line.strip() for line in str(value).replace(",", "\n").splitlines() if line.strip()]
                out[name] = lines or None
            elif value == NO_DEFAULT and self._fields[name].kind in ("enum", "size"):
                out[name] = None
            elif self._fields[name].kind in ("integer", "float") and isinstance(control, w.Text):
                out[name] = _typed_number(self._fields[name], value)
            elif self._fields[name].kind == "string" and value == "" and not self._fields[name].has_default:
                out[name] = None
            else:
                out[name] = value
        return out

    def set_values(self, values: Mapping[str, Any]) -> None:
        """Show these values; inputs not given go back to the spec's default."""
        for name, control in self.controls.items():
            f = self._fields[name]
            value = values.get(name, f.default if f.has_default else None)
            if name in SWEEP_FIELDS:
                control.value = _text(value)
            elif f.kind == "loras":
                control.value = "\n".join(_lora_text(x) for x in value or [])
            elif f.kind in ("enum", "size") and isinstance(control, w.Dropdown):
                value = NO_DEFAULT if value is None else str(value)
                control.value = value if _allows(control, value) else _initial(f)
            elif isinstance(control, w.Text):
                control.value = "" if value is None else str(value)
            elif value is not None:
                control.value = value

    # -- the seed --------------------------------------------------------------------------------------------
    @property
    def seed(self) -> w.Text:
        """The seed's field (a model without a seed has none: ``takes_seed``)."""
        return self.controls["seed"]

    @property
    def takes_seed(self) -> bool:
        return "seed" in self.controls

    def _draws_seed(self, text: str | None = None) -> bool:
        """-1 (or nothing) draws a seed; so does the last run's seed shown while the lock is open."""
        text = (self.seed.value if text is None else text).strip()
        return text in ("", RANDOM) or (not self.seed_lock.value and text == self._shown_used)

    def randomize_seed(self) -> None:
        """Back to -1: each run draws a new seed."""
        self.seed_lock.value = False
        if not self.takes_seed:
            return
        self.seed.value = RANDOM

    def set_seed(self, seed: int | None, *, lock: bool = True) -> None:
        """Put a seed in the field (None: -1, random) and, by default, lock it for the next runs."""
        if not self.takes_seed:
            return
        self.seed.value = RANDOM if seed is None else str(seed)
        self.seed_lock.value = lock and seed is not None

    def after_run(self, seed: Any = None) -> None:
        """Show the seed the run used (not the next random one). Unlocked, the next run still draws a new
        one; locked, it uses this one again. A sweep's list is never replaced."""
        if self.takes_seed and isinstance(seed, int) and not isinstance(seed, bool) and "," not in self.seed.value:
            if self.seed_lock.value and self.seed.value.strip() not in ("", RANDOM):
                return
            self._shown_used = str(seed)
            self.seed.value = self._shown_used

    # -- errors ----------------------------------------------------------------------------------------------
    def show_error(self, name: str, message: str) -> None:
        self.errors[name].value = error_html(message)

    def clear_error(self, name: str) -> None:
        if name in self.errors:
            self.errors[name].value = ""

    def clear_errors(self) -> None:
        for label_ in self.errors.values():
            label_.value = ""


def shape_html(ratio: str) -> str:
    """A small outlined box in the proportions of '16:9' (nothing for "keep the input's shape")."""
    try:
        wide, high = (float(x) for x in ratio.split(":"))
    except ValueError:
        return ""
    scale = SHAPE_SIDE / max(wide, high)
    width, height = round(wide * scale), round(high * scale)
    return (
        f'<div title="{html.escape(ratio)}" style="display:inline-block;vertical-align:middle;'
        f'width:{width}px;height:{height}px;border:2px solid {theme.ACCENT};border-radius:2px"></div>'
    )


def _link_slider(slider: w.FloatSlider, text: w.Text) -> None:
    """Slider and text show one number; a list typed in the text (a sweep) leaves the slider where it is."""

    def from_slider(change: Any) -> None:
        typed = text.value.strip()
        if not typed or _number(typed) != change.new:
            text.value = label(round(float(change.new), 2))

    def from_text(change: Any) -> None:
        number = _number(str(change.new).strip())
        if number is not None and slider.min <= number <= slider.max and number != slider.value:
            slider.value = number

    slider.observe(from_slider, "value")
    text.observe(from_text, "value")


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _lora_text(lora: Any) -> str:
    if isinstance(lora, Mapping):
        scale = lora.get("scale", 1.0)
        return str(lora.get("path")) + ("" if scale == 1.0 else f":{label(scale)}")
    return str(lora)


def _initial(f: InputField) -> Any:
    """What a fresh control for this input holds."""
    if f.kind == "loras":
        return ""
    if f.name == "seed":
        return RANDOM
    if f.name in SWEEP_FIELDS:
        return _text(f.default if f.has_default else None)
    if f.kind == "boolean":
        return bool(f.default) if f.has_default else False
    if f.kind in ("enum", "size") and f.enum:
        return str(f.default) if _listed_default(f) else NO_DEFAULT
    if f.kind in ("integer", "float", "string") and (not f.has_default or f.default is None):
        return ""
    return f.default


def _allows(control: w.Widget, value: Any) -> bool:
    options = getattr(control, "options", None)
    if options is None:
        return True
    return value in [o[1] if isinstance(o, tuple) else o for o in options]


# -- source images --------------------------------------------------------------------------------------------
@dataclass
class _Entry:
    label: str
    image: ImageInput | None
    error: str | None = None
    parent_id: int | None = None


class SourcePicker:
    """The image(s) an edit starts from: uploads, paths or URLs, or results of earlier jobs.

    Each source is checked and previewed as it is chosen, so a corrupt file is reported beside the picker at
    once. For one-source edits the latest choice replaces the others; for multi-reference they add up.
    """

    def __init__(self, *, max_side: int) -> None:
        self.max_side = max_side
        self.multiple = False
        self.upload = w.FileUpload(accept="image/*", multiple=False, description="Upload")
        self.paths = w.Textarea(
            placeholder="a path or URL (multi-reference: one per line)",
            rows=1,
            continuous_update=False,
            # as wide as its placeholder on one line: beside Upload and Clear when there is room, else a row of its own
            layout=w.Layout(width="auto", flex="1 1 50ch", min_width="0"),
        )
        self.clear = w.Button(description="Clear", icon="times", layout=w.Layout(width="auto"))
        self.preview = w.HBox(layout=w.Layout(flex_flow="row wrap"))
        self.error = w.HTML()
        row = w.HBox([self.upload, self.paths, self.clear], layout=w.Layout(flex_flow="row wrap"))
        self.widget = w.VBox([row, self.preview, self.error])
        self._picked: list[_Entry] = []
        self._uploaded: list[_Entry] = []
        self._typed: list[_Entry] = []
        self._busy = False
        self._listeners: list[Callable[[], None]] = []
        self.upload.observe(self._upload_changed, "value")
        self.paths.observe(self._paths_changed, "value")
        self.clear.on_click(lambda _: self.set([]))

    def on_change(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def set_multiple(self, multiple: bool) -> None:
        self.multiple = multiple
        self.upload.multiple = multiple

    @property
    def entries(self) -> list[_Entry]:
        return [*self._picked, *self._uploaded, *self._typed]

    def set(self, sources: list[Any], parent_id: int | None = None) -> None:
        """Replace every source with these (Results, ImageInputs, bytes, paths or URLs)."""
        self._picked = [self._entry(s, parent_id) for s in sources]
        self._reset_widgets(upload=True, paths=True)
        self._update()

    def add(self, source: Any, parent_id: int | None = None) -> None:
        """Add a source (multi-reference); the same image twice is refused with a note."""
        entry = self._entry(source, parent_id)
        if entry.image is not None and any(_same(entry, e) for e in self.entries):
            self.show_error(f"{entry.label} is already chosen")
            return
        self._picked.append(entry)
        self._update()

    def remove(self, index: int) -> None:
        """Take one source out (its × button)."""
        entry = self.entries[index]
        typed = any(e is entry for e in self._typed)
        for kept in (self._picked, self._uploaded, self._typed):
            if any(e is entry for e in kept):
                kept[:] = [e for e in kept if e is not entry]
        if typed:
            self._busy = True
            try:
                self.paths.value = "\n".join(e.label for e in self._typed)
            finally:
                self._busy = False
        self._update()

    def images(self) -> list[ImageInput]:
        """The checked images, in order. Raises ValidationError for the first source that is not usable."""
        for e in self.entries:
            if e.error is not None:
                raise ValidationError(e.error, field="image_url")
        return [e.image for e in self.entries if e.image is not None]

    @property
    def parent_id(self) -> int | None:
        return next((e.parent_id for e in self.entries if e.parent_id is not None), None)

    def _entry(self, source: Any, parent_id: int | None = None) -> _Entry:
        journal_id = getattr(source, "journal_id", None)
        name = getattr(source, "ref", None) or getattr(source, "description", None) or "image"
        try:
            image = prepare_image(source, max_side=self.max_side)
        except ValidationError as exc:
            return _Entry(str(name), None, str(exc))
        return _Entry(str(name), image, None, parent_id if parent_id is not None else journal_id)

    def _upload_changed(self, change: Any) -> None:
        if self._busy:
            return
        files = list(change.new or ())
        self._uploaded = []
        for f in files:
            entry = self._entry(bytes(f["content"]))
            entry.label = str(f["name"])
            entry.error = entry.error and entry.error.replace("image bytes", f"uploaded file {f['name']!r}")
            self._uploaded.append(entry)
        if files and not self.multiple:
            self._picked = []
            self._reset_widgets(paths=True)
        self._update()

    def _paths_changed(self, change: Any) -> None:
        if self._busy:
            return
        lines = [line.strip() for line in str(change.new).splitlines() if line.strip()]
        self._typed = [self._entry(line) for line in lines]
        for entry, line in zip(self._typed, lines, strict=True):
            entry.label = line
        if lines and not self.multiple:
            self._picked = []
            self._reset_widgets(upload=True)
        self._update()

    def _reset_widgets(self, *, upload: bool = False, paths: bool = False) -> None:
        self._busy = True
        try:
            if upload:
                self.upload.value = ()
                self._uploaded = []
            if paths:
                self.paths.value = ""
                self._typed = []
        finally:
            self._busy = False

    def _update(self) -> None:
        old = self.preview.children
        self.preview.children = [self._thumbnail(i, e) for i, e in enumerate(self.entries)]
        close_tree(*old)
        self.clear_error()
        for listener in list(self._listeners):
            listener()

    def _thumbnail(self, index: int, entry: _Entry) -> w.Widget:
        remove = w.Button(icon="times", tooltip="remove this source", layout=w.Layout(width="28px", padding="0"))
        remove.on_click(lambda _: self.remove(index))
        return w.VBox([_thumbnail(entry), remove], layout=w.Layout(align_items="flex-start"))

    def show_error(self, message: str) -> None:
        self.error.value = error_html(message)

    def clear_error(self) -> None:
        """Back to what the sources themselves say (an unusable file stays reported)."""
        errors = [e.error for e in self.entries if e.error]
        self.error.value = error_html(errors[0]) if errors else ""


def _same(a: _Entry, b: _Entry) -> bool:
    """The same image: same bytes, or the same URL."""
    if a.image is None or b.image is None:
        return False
    return a.image.label() == b.image.label()


def _thumbnail(entry: _Entry) -> w.Widget:
    box = w.Layout(margin="2px 6px 2px 0")
    caption = html.escape(entry.label if len(entry.label) <= 30 else "…" + entry.label[-29:])
    if entry.image is None or entry.image.data is None:
        text = error_html("not usable") if entry.error else "URL"
        return w.HTML(f'<div style="font-size:11px;max-width:{THUMB_SIDE}px">{text}<br>{caption}</div>', layout=box)
    image = Image.open(io.BytesIO(entry.image.data))
    image.thumbnail((THUMB_SIDE, THUMB_SIDE))
    buf = io.BytesIO()
    image.convert("RGBA" if "A" in image.getbands() else "RGB").save(buf, "PNG")
    picture = w.Image(value=buf.getvalue(), format="png", layout=w.Layout(max_width=f"{THUMB_SIDE}px"))
    return w.VBox([picture, w.HTML(f'<span style="font-size:11px">{caption}</span>')], layout=box)
