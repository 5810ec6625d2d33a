"""``kx.models()``: the registry as a pandas DataFrame, one row per model (pandas loads only here)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .catalog import Registry, registry
from .pricing import can_price

if TYPE_CHECKING:
    import pandas

    from .schema import Model

COLUMNS = (
    "endpoint_id", "alias", "title", "category", "mode", "unit", "unit_price", "price_source", "image_inputs",
    "takes_seed", "takes_mask",
)  # fmt: skip
NOT_PUBLISHED = "not published"


def row(model: Model) -> dict[str, Any]:
    """One model's row: its price as fal publishes it, or 'not published' (never a guess)."""
    p = model.pricing
    unpriced = can_price(model)
    return {
        "endpoint_id": model.endpoint_id,
        "alias": model.alias,
        "title": model.title,
        "category": model.category,
        "mode": model.mode,
        "unit": p.unit if p else NOT_PUBLISHED,
        "unit_price": p.unit_price if p else NOT_PUBLISHED,
        "price_source": model.price_source if unpriced is None or p is None else f"{model.price_source} ({unpriced})",
        "image_inputs": ", ".join(model.image_inputs),
        "takes_seed": model.takes_seed,
        "takes_mask": model.takes_mask,
    }


def models_frame(
    search: str | None = None, category: str | None = None, reg: Registry | None = None
) -> pandas.DataFrame:
    """Every model matching ``search`` (words in its id, alias or title) and ``category``, Kontext first."""
    import pandas

    found = (reg or registry()).search(search, category)
    found.sort(
        key=lambda m: (not m.endpoint_id.startswith(("fal-ai/flux-pro/kontext", "fal-ai/flux-kontext")), m.endpoint_id)
    )
    return pandas.DataFrame([row(m) for m in found], columns=list(COLUMNS))
