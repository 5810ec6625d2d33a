"""The model registry: every fal image model kontext_nb knows, from fal's published OpenAPI schemas and prices.

Below everything (imports only errors.py and the standard library); importing it reads nothing: the vendored
snapshot (``models/snapshot/``, one JSON document per endpoint) is read on the first lookup.

API (``from kontext_nb import models``)::

    models.get(name) -> Model                      # alias ('max', 'pro', 'dev', 'lora', 'flux2-flex-edit', ...) or
                                                   # endpoint id; ValidationError (one line, did-you-mean) if unknown
    models.registry() -> Registry                  # the process's registry:
        .get(name) / .find(name) -> Model | None / name in registry
        .all() / .search(text=None, category=None) -> list[Model]
        .variant(name, mode) -> Model              # mode: text-to-image | edit | multi | inpaint; follows `sibling`:
                                                   # ('max', 'text-to-image') -> .../kontext/max/text-to-image
        .family(name) -> list[Model]; .aliases() -> {alias: endpoint_id}; .endpoint_ids()
        .set_price(name, unit_price, per='image'|'megapixel') -> Model   # a price the user declares (kx.set_price)
    models.load_live(registry, endpoint_id, runs_folder, openapi, price) -> Model
                                                   # any endpoint with a key: fetched by the caller's two callables,
                                                   # cached in <runs>/models/ for a day (models/live.py)

    Model (frozen): endpoint_id, alias, title, category, sibling, inputs (InputField, in x-fal-order-properties
        order), output (OutputShape: images 'images'|'image', seed 'seed'|'seeds', nsfw flag field), pricing
        (Pricing | None: unit_price, unit 'image'|'megapixel', currency, rule, source), provenance (dict), live;
        .input(name), .takes(name), .defaults(), .image_inputs, .source_field, .mask_field, .count_field,
        .takes_seed, .takes_mask, .mode, .price_source
    InputField (frozen): name, kind (string|integer|float|boolean|enum|image|images|size|loras|object|array),
        type, description, required, default (MISSING when none; .has_default), enum, minimum, maximum,
        min_items, max_items, max_side, title

    Prices (models/pricing.py): bound(model, arguments, input_sizes=None) -> dollars, an upper bound before sending;
        billed(model, arguments, output_sizes, input_sizes=(), text_tokens=None) -> dollars from what came back
        (a rule's extras for options on and text tokens included: tools/snapshot/README.md);
        billed_units(model, output_sizes, input_sizes=(), arguments=None), from_units(model, arguments, units)
        (x-fal-billable-units -> dollars; the sandbox bills with billed and billed_units too),
        output_size(model, arguments, input_size), images_asked(model, arguments),
        can_price(model) -> None | reason; Unpriced (a ValidationError): no price published / a rule not known ->
        nothing is sent (a declared price, set_price, is the one way past it).
    Adapters (models/adapters.py): adapt(model, Intention(prompt, sources, mask, size, n, seed, settings)) ->
        Adapted(endpoint_id, arguments, not_taken, reproducible, notes); normalise(output_json) ->
        Output(images, seeds, nsfw, extra).
    Live: check_endpoint_id(text) -> the id or ValidationError; Session.model(name) / kx.model(name) wire load_live
        to the engine (fal/platform.py: PlatformAPI.openapi, .price); kx.set_price(name, unit_price, per).
    Endpoints (kontext_nb/endpoints.py) are built from these Models: ENDPOINTS is the Kontext family;
        get_endpoint(endpoint_id) and endpoint_for(mode, alias or id) give every other model too (Endpoint.spec is
        its Model; .estimate -> bound, .cost(n, sizes, arguments), .cost_of_units(units, arguments), .priced).
    Table: models_frame(search=None, category=None) -> pandas.DataFrame. This module is callable, so that
        ``kx.models(search=None, category=None)`` (the user's table) and ``kontext_nb.models`` (this package) are one
        name: ``kx.models("flux 2", "image-to-image")`` is ``models_frame("flux 2", "image-to-image")``.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

from .catalog import MODES, Registry, get, registry
from .pricing import Unpriced, billed, billed_units, bound, can_price, from_units, images_asked, output_size
from .schema import MISSING, InputField, Model, OutputShape, Pricing, parse

if TYPE_CHECKING:
    import pandas

    from .adapters import Adapted, Intention, Output, adapt, normalise
    from .live import check_endpoint_id
    from .live import load as load_live
    from .table import models_frame

_LAZY = {
    "Adapted": ("adapters", "Adapted"),
    "Intention": ("adapters", "Intention"),
    "Output": ("adapters", "Output"),
    "adapt": ("adapters", "adapt"),
    "normalise": ("adapters", "normalise"),
    "check_endpoint_id": ("live", "check_endpoint_id"),
    "load_live": ("live", "load"),
    "models_frame": ("table", "models_frame"),
}
"""Loaded on first use: importing kontext_nb (and %load_ext) stays as cheap as before the registry."""


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "MISSING",
    "MODES",
    "Adapted",
    "InputField",
    "Intention",
    "Model",
    "Output",
    "OutputShape",
    "Pricing",
    "Registry",
    "Unpriced",
    "adapt",
    "billed",
    "billed_units",
    "bound",
    "can_price",
    "check_endpoint_id",
    "from_units",
    "get",
    "images_asked",
    "load_live",
    "models_frame",
    "normalise",
    "output_size",
    "parse",
    "registry",
]


class _CallableModule(types.ModuleType):
    """``kx.models(...)``: the package called is the table of its models."""

    def __call__(self, search: str | None = None, category: str | None = None) -> pandas.DataFrame:
        from .table import models_frame

        return models_frame(search, category)


sys.modules[__name__].__class__ = _CallableModule
