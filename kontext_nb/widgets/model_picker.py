"""The Create tab's model picker: search the registry by alias, title, endpoint id or category; Kontext first.

Each mode (text to image, edit, multi-reference, inpaint) offers the models that serve it: the Kontext family by its
names (max, pro, dev, lora; the default is the first), then every other model of the registry by its alias. The
choice's help (fields, price rule, sources) is one fold away, generated from the registry like everything else.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import ipywidgets as w

from .. import endpoints, models
from ..models import Model
from ..models.help import help_html
from . import theme

SEARCH_HINT = "search models: alias, title, endpoint id or category"
NOTE_STYLE = f"font-size:12px;color:{theme.MUTED}"


def price_label(model: Model) -> str:
    """'$0.08/image', '$0.05/MP in+out', '$0.07/MP first', or 'price not published'."""
    p = model.pricing
    if p is None:
        return "price not published"
    if p.unit != "megapixel":
        return f"${p.unit_price:g}/{p.unit}"
    rule = dict(p.rule)
    if "first" in rule:
        return f"${float(rule['first']):g}/MP first, ${float(rule.get('extra', p.unit_price)):g} extra"
    return f"${p.unit_price:g}/MP" + (" in+out" if rule.get("of") == "input+output" else "")


def _name(model: Model) -> str:
    """The name the panel sends: the Kontext family's (max, pro, dev, lora), else the registry's alias."""
    family = endpoints.ENDPOINTS.get(model.endpoint_id)
    return family.model if family is not None else model.alias


def serving(mode: str) -> list[Model]:
    """Every model that serves a mode: the Kontext family first (in its order), then the others by title."""
    kontext = [models.get(endpoints.endpoint_for(mode, m).id) for m in endpoints.models_for(mode)]
    others = [m for m in models.registry().all() if m.mode == mode and m.endpoint_id not in endpoints.ENDPOINTS]
    return kontext + sorted(others, key=lambda m: m.title.lower())


def options_for(mode: str, text: str = "") -> list[tuple[str, str]]:
    """(label, name) of the models serving ``mode`` that match ``text`` (every word, any case)."""
    found = {m.endpoint_id for m in models.registry().search(text or None)}
    return [(f"{_name(m)} · {price_label(m)} · {m.title}", _name(m)) for m in serving(mode) if m.endpoint_id in found]


class ModelPicker:
    """A search box over a dropdown of models; ``dropdown.value`` is the name sent (max, or 'flux2-flex-edit')."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        wide = {"width": "calc(100% - 8px)", "min_width": "0"}
        self.dropdown = w.Dropdown(options=options_for(mode), description="model", layout=w.Layout(**wide))
        self.search = w.Text(
            placeholder=SEARCH_HINT, continuous_update=True, description="find", layout=w.Layout(**wide)
        )
        for control in (self.dropdown, self.search):
            control.style.description_width = "48px"
        self.note = w.HTML()
        """What the search found elsewhere, or what a switch left out."""
        self.about = w.Accordion(layout=w.Layout(width="auto"))
        self.widget = w.VBox([self.dropdown, self.search, self.note, self.about])
        self._found, self._said = "", ""
        self._listeners: list[Callable[[Any], None]] = []
        self._refiltering = False
        self.search.observe(lambda _: self.refilter(), "value")
        self.dropdown.observe(self._chosen, "value")
        self._describe()

    def observe(self, listener: Callable[[Any], None]) -> None:
        """Call ``listener(change)`` once per new choice (a refilter's passing values are not choices)."""
        self._listeners.append(listener)

    def _chosen(self, change: Any) -> None:
        if self._refiltering:
            return
        self._describe()
        for listener in list(self._listeners):
            listener(change)

    @staticmethod
    def options_name(model: Model) -> str:
        """The value that chooses ``model`` (max for the Kontext family's, else its alias)."""
        return _name(model)

    def model(self) -> Model:
        return models.get(endpoints.endpoint_for(self.mode, str(self.dropdown.value)).id)

    def set_mode(self, mode: str) -> None:
        """Offer the models of another mode (the same model's variant when it has one)."""
        self.mode = mode
        self.refilter()

    def refilter(self) -> None:
        """Show the models matching the search; keep the choice when it still matches, else take the first."""
        text = self.search.value.strip()
        options = options_for(self.mode, text)
        if not options:
            elsewhere = sorted({m.mode for m in models.registry().search(text)} - {self.mode})
            where = f" (it finds {', '.join(elsewhere)} models: switch the mode)" if elsewhere else ""
            self._found = f"no {self.mode} model matches {text!r}{where}"
            self._show()
            if not text:
                return
            options = options_for(self.mode)  # an empty list would leave no model to send
        else:
            self._found = ""
            self._show()
        old = self.dropdown.value
        keep = old if old in [v for _, v in options] else options[0][1]
        self._refiltering = True
        try:
            self.dropdown.options = options
            self.dropdown.value = keep
        finally:
            self._refiltering = False
        self._describe()
        for listener in list(self._listeners):
            listener(_Change(self.dropdown, old, keep))

    def say(self, text: str) -> None:
        """What the last switch left out or lacks (beside what the search found)."""
        self._said = text
        self._show()

    def _show(self) -> None:
        self.note.value = "<br>".join(_note(t) for t in (self._found, self._said) if t)

    def _describe(self) -> None:
        try:
            model = self.model()
        except Exception:  # an option set while the mode changes: described once it settles
            return
        self.about.children = [w.HTML(help_html(model))]
        self.about.titles = (f"about {model.alias}: {model.title}",)  # short: one line at 900 px
        self.about.selected_index = None


class _Change:
    """What a refilter's new choice looks like to a listener (as a traitlets change)."""

    name = "value"

    def __init__(self, owner: Any, old: Any, new: Any) -> None:
        self.owner, self.old, self.new = owner, old, new


def _note(text: str) -> str:
    return f'<span style="{NOTE_STYLE}">{html.escape(text)}</span>' if text else ""
