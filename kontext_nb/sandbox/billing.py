"""What the sandbox would bill: one append-only line per completed output, at endpoints.py's prices.

fal bills completed outputs (per image for [max]/[pro], per megapixel of the returned image for [dev] and
LoRA), so the sandbox does the same from the sizes it really returned, never from what was asked. Tests
compare it with what kontext_nb says it spent; fal's usage API (served by the sandbox) reads it too.
Lines are only ever appended; ``reset`` of the whole sandbox is the one way to forget them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from kontext_nb import endpoints

__all__ = ["Bill", "BillLog", "bill_for"]


@dataclass(frozen=True)
class Bill:
    """One billed request: its completed images, in fal's units, at the endpoint's price."""

    request_id: str
    endpoint: str
    unit: str
    """'image' or 'megapixel' (as endpoints.Endpoint.unit)."""
    quantity: int
    """Images, or billed megapixels (each image rounded up, endpoints.billed_megapixels)."""
    unit_price: float
    amount: float
    """Dollars: unit_price x quantity."""
    sizes: tuple[tuple[int, int], ...]
    """(width, height) of each returned image."""
    at: float
    """Unix time the request completed."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def bill_for(endpoint_id: str, request_id: str, sizes: Sequence[tuple[int, int]], at: float | None = None) -> Bill:
    """The bill for one completed request whose images came back at ``sizes`` (the one pricing rule)."""
    ep = endpoints.get_endpoint(endpoint_id)
    sized = tuple((int(w), int(h)) for w, h in sizes)
    quantity = len(sized) if ep.unit == "image" else sum(endpoints.billed_megapixels(w, h) for w, h in sized)
    amount = ep.cost(len(sized), list(sized))
    return Bill(request_id, ep.id, ep.unit, quantity, ep.price, amount, sized, time.time() if at is None else at)


class BillLog:
    """Append-only, thread-safe: the sandbox's loop appends, the control API and tests read."""

    def __init__(self) -> None:
        self._lines: list[Bill] = []
        self._lock = threading.Lock()

    def append(self, bill: Bill) -> None:
        with self._lock:
            self._lines.append(bill)

    def entries(
        self, *, endpoints_: Sequence[str] | None = None, since: float | None = None, until: float | None = None
    ) -> list[Bill]:
        """Bills in order, optionally only some endpoints and a time window [since, until)."""
        with self._lock:
            lines = list(self._lines)
        return [
            b
            for b in lines
            if (endpoints_ is None or b.endpoint in endpoints_)
            and (since is None or b.at >= since)
            and (until is None or b.at < until)
        ]

    def total(self) -> float:
        """Dollars billed so far (rounded to tenths of a cent's hundredth: sums of prices are cents)."""
        return round(sum(b.amount for b in self.entries()), 6)

    def clear(self) -> None:
        """Only for the sandbox's reset (a new sandbox, as far as clients can tell)."""
        with self._lock:
            self._lines.clear()
