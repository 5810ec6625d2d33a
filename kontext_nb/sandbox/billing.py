"""What the sandbox would bill, and fal's retention of queue results: pure functions the platform routes use.

Each completed request (no error) is billed as fal bills it: per image for [max] and [pro], per output megapixel
for [dev] and LoRA (endpoints.py's prices and megapixel rule). ``x-fal-billable-units`` carries the quantity in the
endpoint's unit, and ``/v1/models/usage`` sums quantity and cost per time bucket and endpoint.

fal keeps a queue result 1 hour after completion, or 6 minutes if it is 10 KB or larger (``result_ttl``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from kontext_nb import endpoints

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
    unit: str
    unit_price: float

    @property
    def cost(self) -> float:
        return round(self.quantity * self.unit_price, 6)


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
    buckets: dict[dt.datetime, dict[tuple[str, str, float], float]] = {}
    for line in lines:
        if line.endpoint_id not in wanted or not start <= line.at < end:
            continue
        key = (line.endpoint_id, line.unit, line.unit_price)
        bucket = buckets.setdefault(bucket_start(line.at, timeframe, zone), {})
        bucket[key] = bucket.get(key, 0.0) + line.quantity
    return [
        {"bucket": when.isoformat(), "results": [_result(key, qty) for key, qty in sorted(buckets[when].items())]}
        for when in sorted(buckets)
    ]


def summary(lines: Iterable[Billed], *, endpoint_ids: Iterable[str], start: float, end: float) -> list[dict[str, Any]]:
    """fal's ``summary``: one aggregate row per endpoint (and unit price) over the whole window."""
    wanted = set(endpoint_ids)
    totals: dict[tuple[str, str, float], float] = {}
    for line in lines:
        if line.endpoint_id in wanted and start <= line.at < end:
            key = (line.endpoint_id, line.unit, line.unit_price)
            totals[key] = totals.get(key, 0.0) + line.quantity
    return [_result(key, qty) for key, qty in sorted(totals.items())]


def _result(key: tuple[str, str, float], quantity: float) -> dict[str, Any]:
    endpoint_id, unit, unit_price = key
    return {
        "endpoint_id": endpoint_id,
        "unit": unit,
        "quantity": round(quantity, 6),
        "unit_price": unit_price,
        "cost": round(quantity * unit_price, 6),
        "currency": "USD",
        "auth_method": "Sandbox Key",
    }
