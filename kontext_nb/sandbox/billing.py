"""What the sandbox would bill, and fal's retention of queue results.

Each completed request (no error) is billed as fal bills it: per image for [max] and [pro], per output megapixel
for [dev] and LoRA (endpoints.py's prices and megapixel rule), from the sizes it really returned, never from what
was asked. Every other snapshot endpoint is billed by its snapshot price rule through the registry's one rule
interpreter (``kontext_nb.models.billed``: what came back, the options it ran with, the text tokens its "model"
read), never by a second reading of the rules here; an endpoint whose price fal does not publish is billed $0 (the
sandbox cannot know it) in images. Text tokens: the sandbox's model reads the prompt as one token per 4 UTF-8 bytes
(rounded up) and writes no text.
The bill log is append-only (``reset`` of the whole sandbox is the one way to forget it): tests compare it with what
kontext_nb says it spent, ``x-fal-billable-units`` carries each request's quantity in the endpoint's unit, and
``/v1/models/usage`` sums quantity and cost per time bucket and endpoint.

fal keeps a queue result 1 hour after completion, or 6 minutes if it is 10 KB or larger (``result_ttl``).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from kontext_nb import endpoints
from kontext_nb import models as registry

from . import models

RESULT_TTL_SMALL = 3600.0
RESULT_TTL_LARGE = 360.0
LARGE_RESULT_BYTES = 10 * 1024
TIMEFRAMES = ("minute", "hour", "day")
"""The aggregation timeframes the sandbox serves (fal also has week and month)."""


@dataclass(frozen=True)
class Billed:
    """One billed request: fal's usage line items are sums of these."""

    request_id: str
    endpoint_id: str
    at: float
    """When it completed (seconds since the epoch)."""
    quantity: float
    """Images, or billed megapixels (each image rounded up, endpoints.billed_megapixels)."""
    unit: str
    """'image' or 'megapixel' (as endpoints.Endpoint.unit)."""
    unit_price: float
    sizes: tuple[tuple[int, int], ...] = ()
    """(width, height) of each returned image."""
    amount: float | None = None
    """Dollars, where the rule is not unit_price x quantity (a first megapixel dearer than the rest)."""

    @property
    def cost(self) -> float:
        """Dollars: unit_price x quantity (or the rule's own amount)."""
        return round(self.quantity * self.unit_price if self.amount is None else self.amount, 6)

    def as_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id, "endpoint": self.endpoint_id, "unit": self.unit,
            "quantity": self.quantity, "unit_price": self.unit_price, "amount": self.cost,
            "sizes": [list(s) for s in self.sizes], "at": self.at,
        }  # fmt: skip


def bill_for(
    endpoint_id: str,
    request_id: str,
    sizes: Sequence[tuple[int, int]],
    at: float | None = None,
    *,
    inputs: Sequence[tuple[int, int]] = (),
    arguments: Mapping[str, Any] | None = None,
) -> Billed:
    """The bill for one completed request whose images came back at ``sizes`` (``inputs``: the sizes of its image
    inputs; ``arguments``: what it ran with, for rules that depend on a setting)."""
    sized = tuple((int(w), int(h)) for w, h in sizes)
    when = time.time() if at is None else at
    ep = endpoints.ENDPOINTS.get(endpoint_id)
    if ep is not None:
        return Billed(request_id, ep.id, when, billable_units(ep, sized), ep.unit, ep.price, sized)
    served = models.get(endpoint_id)
    if served is None:
        raise KeyError(endpoint_id)
    model = served.spec
    if model.pricing is None:  # not published: counted, at $0
        return Billed(request_id, endpoint_id, when, float(len(sized)), "image", 0.0, sized)
    ran = registry.pricing.arguments_with_defaults(model, arguments or {})
    amount = registry.billed(model, ran, sized, inputs, text_tokens=(prompt_tokens(ran), 0))
    quantity = registry.billed_units(model, sized, inputs, ran)
    unit = "image" if model.pricing.unit != "megapixel" else "megapixel"
    return Billed(request_id, endpoint_id, when, quantity, unit, model.pricing.unit_price, sized, amount)


def prompt_tokens(arguments: Mapping[str, Any]) -> int:
    """The input text tokens the sandbox's model reads: one per 4 UTF-8 bytes of the prompt, rounded up."""
    return -(-len(str(arguments.get("prompt") or "").encode("utf-8")) // 4)


class BillLog:
    """Append-only, thread-safe: the sandbox's loop appends; the control and usage APIs and tests read."""

    def __init__(self) -> None:
        self._lines: list[Billed] = []
        self._lock = threading.Lock()

    def append(self, bill: Billed) -> None:
        with self._lock:
            self._lines.append(bill)

    def entries(
        self, *, endpoints_: Sequence[str] | None = None, since: float | None = None, until: float | None = None
    ) -> list[Billed]:
        """Bills in order, optionally only some endpoints and a time window [since, until)."""
        with self._lock:
            lines = list(self._lines)
        return [
            b
            for b in lines
            if (endpoints_ is None or b.endpoint_id in endpoints_)
            and (since is None or b.at >= since)
            and (until is None or b.at < until)
        ]

    def total(self) -> float:
        """Dollars billed so far."""
        return round(sum(b.cost for b in self.entries()), 6)

    def clear(self) -> None:
        """Only for the sandbox's reset (a new sandbox, as far as clients can tell)."""
        with self._lock:
            self._lines.clear()


def billable_units(ep: endpoints.Endpoint, sizes: Sequence[tuple[int, int]]) -> float:
    """The quantity fal bills for these output images, in the endpoint's unit (images, or whole megapixels)."""
    if ep.unit == "image":
        return float(len(sizes))
    return float(sum(endpoints.billed_megapixels(w, h) for w, h in sizes))


def units_text(quantity: float) -> str:
    """The header's value: '2' for whole units, '2.5' otherwise."""
    return str(int(quantity)) if float(quantity).is_integer() else repr(float(quantity))


def result_ttl(result_bytes: int) -> float:
    """Seconds fal keeps a queue result after completion."""
    return RESULT_TTL_LARGE if result_bytes >= LARGE_RESULT_BYTES else RESULT_TTL_SMALL


def bucket_start(when: float, timeframe: str, zone: str) -> dt.datetime:
    """The start of the bucket holding ``when``, in ``zone`` (an aware datetime)."""
    local = dt.datetime.fromtimestamp(when, ZoneInfo(zone))
    if timeframe == "minute":
        return local.replace(second=0, microsecond=0)
    if timeframe == "hour":
        return local.replace(minute=0, second=0, microsecond=0)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def time_series(
    lines: Iterable[Billed], *, endpoint_ids: Iterable[str], start: float, end: float, timeframe: str, zone: str
) -> list[dict[str, Any]]:
    """fal's ``time_series``: one entry per bucket with usage, oldest first; per endpoint and unit price within it.

    A line counts when ``start <= at < end`` (fal's end is exclusive when bound to the timeframe)."""
    wanted = set(endpoint_ids)
    buckets: dict[dt.datetime, dict[tuple[str, str, float], tuple[float, float]]] = {}
    for line in lines:
        if line.endpoint_id not in wanted or not start <= line.at < end:
            continue
        key = (line.endpoint_id, line.unit, line.unit_price)
        bucket = buckets.setdefault(bucket_start(line.at, timeframe, zone), {})
        qty, cost = bucket.get(key, (0.0, 0.0))
        bucket[key] = (qty + line.quantity, cost + line.cost)
    return [
        {"bucket": when.isoformat(), "results": [_result(key, *sums) for key, sums in sorted(buckets[when].items())]}
        for when in sorted(buckets)
    ]


def summary(lines: Iterable[Billed], *, endpoint_ids: Iterable[str], start: float, end: float) -> list[dict[str, Any]]:
    """fal's ``summary``: one aggregate row per endpoint (and unit price) over the whole window."""
    wanted = set(endpoint_ids)
    totals: dict[tuple[str, str, float], tuple[float, float]] = {}
    for line in lines:
        if line.endpoint_id in wanted and start <= line.at < end:
            key = (line.endpoint_id, line.unit, line.unit_price)
            qty, cost = totals.get(key, (0.0, 0.0))
            totals[key] = (qty + line.quantity, cost + line.cost)
    return [_result(key, *sums) for key, sums in sorted(totals.items())]


def _result(key: tuple[str, str, float], quantity: float, cost: float) -> dict[str, Any]:
    """One usage line; its cost is the sum of the bills' own (a first megapixel may cost more than the rest)."""
    endpoint_id, unit, unit_price = key
    return {
        "endpoint_id": endpoint_id,
        "unit": unit,
        "quantity": round(quantity, 6),
        "unit_price": unit_price,
        "cost": round(cost, 6),
        "currency": "USD",
        "auth_method": "Sandbox Key",
    }
