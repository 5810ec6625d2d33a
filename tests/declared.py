"""Declared prices in tests, always taken back: kontext_nb sends nothing it cannot price, and fal publishes no price
for many snapshot models, so tests that send to every model declare one (as ``kx.set_price`` does), and tests of the
refusal take a declaration away."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

from kontext_nb import models


@contextlib.contextmanager
def prices_declared(dollars: float, endpoint_ids: Iterable[str] | None = None) -> Iterator[None]:
    """Every model among ``endpoint_ids`` (all the snapshot's) that cannot be priced gets ``dollars`` per image."""
    reg = models.registry()
    before = dict(reg._declared)
    try:
        for endpoint_id in reg.endpoint_ids() if endpoint_ids is None else endpoint_ids:
            if models.can_price(reg.get(endpoint_id)) is not None:
                reg.set_price(endpoint_id, dollars)
        yield
    finally:
        reg._declared.clear()
        reg._declared.update(before)


@contextlib.contextmanager
def undeclared(endpoint_id: str) -> Iterator[None]:
    """``endpoint_id`` as if nobody had declared its price (whatever is declared inside is dropped afterwards)."""
    reg = models.registry()
    before = dict(reg._declared)
    reg._declared.pop(endpoint_id, None)
    try:
        yield
    finally:
        reg._declared.clear()
        reg._declared.update(before)
