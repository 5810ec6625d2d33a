"""The registry (``models.registry()`` is the process's): every model kontext_nb knows, by alias or endpoint id,
parsed from the vendored snapshot on first use (importing this costs nothing; the first lookup reads the snapshot,
each model is parsed once when asked for).

Models loaded live with a key (kx.model) join the registry of the process that loaded them (models/live.py).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import threading
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import ValidationError
from .schema import Model, Pricing, parse

Documents = Callable[[], Mapping[str, Mapping[str, Any]]]
MODES = ("text-to-image", "edit", "multi", "inpaint")
ESTIMATES: dict[str, Pricing] = {
    "fal-ai/flux-kontext/dev": Pricing(
        0.025,
        "megapixel",
        "USD",
        {"per": "megapixel", "of": "output"},
        "an estimate, not fal's: fal publishes no price for [dev] that kontext_nb could read; $0.025 per megapixel "
        "is the figure third-party catalogues quote (kontext_nb's price for it before the registry)",
    ),
}
"""Where fal publishes no price but kontext_nb priced a model before the registry (so its jobs still run): a
labelled estimate, shown as such in kx.models() (price_source). No other model gets one: Registry.set_price."""


def _snapshot() -> Mapping[str, Mapping[str, Any]]:
    from . import snapshot

    return snapshot.documents()


class Registry:
    """Models by endpoint id and alias. Thread-safe; parsing happens once per model."""

    def __init__(self, documents: Documents = _snapshot) -> None:
        self._documents = documents
        self._docs: Mapping[str, Mapping[str, Any]] | None = None
        self._aliases: dict[str, str] = {}
        self._models: dict[str, Model] = {}
        self._extra: dict[str, Model] = {}
        self._declared: dict[str, Pricing] = {}
        self.version = 0
        """Grows when a model is added or a price declared (views built from the registry rebuild)."""
        self._lock = threading.RLock()

    # -- lookups ----------------------------------------------------------------------------------------------------
    def _index(self) -> Mapping[str, Mapping[str, Any]]:
        if self._docs is None:
            with self._lock:
                if self._docs is None:
                    docs = self._documents()
                    self._aliases = {str(d.get("alias") or eid).lower(): eid for eid, d in docs.items()}
                    self._docs = docs
        return self._docs

    def endpoint_ids(self) -> list[str]:
        """Every endpoint id known: the snapshot's, then those loaded live."""
        return [*self._index(), *(e for e in self._extra if e not in self._index())]

    def aliases(self) -> dict[str, str]:
        """alias -> endpoint id."""
        self._index()
        return {**self._aliases, **{m.alias.lower(): e for e, m in self._extra.items()}}

    def find(self, name: str) -> Model | None:
        """The model named by an alias (any case) or an endpoint id, or None."""
        docs = self._index()
        key = str(name).strip()
        eid = key if (key in docs or key in self._extra) else self._aliases.get(key.lower())
        eid = eid or self.aliases().get(key.lower())
        if eid is None:
            return None
        model = self._extra.get(eid) or self._models.get(eid)
        if model is None:
            with self._lock:
                model = self._models.get(eid) or parse(docs[eid])
                if model.pricing is None and eid in ESTIMATES:
                    model = dataclasses.replace(model, pricing=ESTIMATES[eid])
                self._models[eid] = model
        declared = self._declared.get(eid)
        return model if declared is None else dataclasses.replace(model, pricing=declared)

    def get(self, name: str) -> Model:
        """The model named by an alias or endpoint id; ValidationError naming what is allowed when it is unknown."""
        model = self.find(name)
        if model is None:
            raise ValidationError(self.unknown(name), field="model")
        return model

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.find(name) is not None

    def unknown(self, name: str) -> str:
        """The one line for a model name the registry does not hold."""
        names = [*self.aliases(), *self.endpoint_ids()]
        close = difflib.get_close_matches(str(name), names, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        shown = ", ".join(sorted(self.aliases()))
        return (
            f"model={name!r} is not a model kontext_nb knows{hint}: give an alias ({shown}) or an endpoint id of "
            "the snapshot (kx.models() lists them), or, with a fal key, any fal endpoint id ('fal-ai/...')"
        )

    def all(self) -> list[Model]:
        return [m for m in (self.find(e) for e in self.endpoint_ids()) if m is not None]

    def search(self, text: str | None = None, category: str | None = None) -> list[Model]:
        """Models whose id, alias, title or category hold every word of ``text`` (any case), in ``category``."""
        words = str(text or "").lower().split()
        found = []
        for m in self.all():
            hay = f"{m.endpoint_id} {m.alias} {m.title} {m.category}".lower()
            if all(w in hay for w in words) and (category is None or m.category == category):
                found.append(m)
        return found

    def family(self, name: str) -> list[Model]:
        """The model and every model linked to it by ``sibling`` (either way, transitively), itself first."""
        first = self.get(name)
        links = {e: m.sibling for e, m in self._extra.items()}
        links.update({e: d.get("sibling") for e, d in self._index().items()})  # read from the documents: no parsing
        found, todo = [first.endpoint_id], [first.endpoint_id]
        while todo:
            eid = todo.pop()
            for other, sibling in links.items():
                if (sibling == eid or links.get(eid) == other) and other not in found:
                    found.append(other)
                    todo.append(other)
        return [self.get(e) for e in found]

    def variant(self, name: str, mode: str) -> Model:
        """The model to use for a mode (text-to-image, edit, multi, inpaint): the one named if it serves the mode,
        else its sibling that does (``variant('max', 'text-to-image')`` is FLUX.1 Kontext [max] text to image).
        An edit model taking a list of images also serves multi."""
        if mode not in MODES:
            raise ValidationError(f"mode={mode!r} is not allowed: choose one of {', '.join(MODES)}", field="mode")
        family = self.family(name)
        for m in family:
            if m.mode == mode:
                return m
        if mode == "inpaint":  # an editor taking an optional mask (GPT-image edit's mask_image_url)
            for m in family:
                if m.takes_mask:
                    return m
        if mode == "multi":
            for m in family:
                src = m.source_field
                if m.mode == "edit" and src is not None and src.kind == "images" and (src.max_items or 2) >= 2:
                    return m
        serves = ", ".join(sorted({m.mode for m in family}))
        raise ValidationError(
            f"model={name!r} has no {mode} endpoint in kontext_nb's registry (it does {serves})", field="model"
        )

    def set_price(self, name: str, unit_price: float, per: str = "image") -> Model:
        """Declare a price for a model fal publishes none for (or override one), in this process: ``unit_price``
        dollars per image or per megapixel of output. Its price_source then says it came from you."""
        model = self.get(name)
        if per not in ("image", "megapixel"):
            raise ValidationError(f"per={per!r} is not allowed: choose 'image' or 'megapixel'", field="per")
        ok = isinstance(unit_price, (int, float)) and not isinstance(unit_price, bool) and math.isfinite(unit_price)
        if not ok or unit_price < 0:
            raise ValidationError(f"unit_price={unit_price!r} must be a number of dollars >= 0", field="unit_price")
        rule = {"per": "image"} if per == "image" else {"per": "megapixel", "of": "output"}
        was = model.pricing.source if model.pricing else "fal publishes none"
        pricing = Pricing(float(unit_price), per, "USD", rule, f"declared by you (was: {was})")
        with self._lock:
            self._declared[model.endpoint_id] = pricing
            self.version += 1
        return self.get(model.endpoint_id)

    # -- live models ------------------------------------------------------------------------------------------------
    def add(self, model: Model) -> Model:
        """Make a model loaded live (kx.model) known by its endpoint id and alias, in this process."""
        with self._lock:
            self._extra[model.endpoint_id] = model
            self.version += 1
        return self.get(model.endpoint_id)


_default: Registry | None = None
_default_lock = threading.Lock()


def registry() -> Registry:
    """The process's registry (made on first use; the snapshot is read on its first lookup)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Registry()
    return _default


def get(name: str) -> Model:
    """``registry().get(name)``."""
    return registry().get(name)
