"""fal's Platform APIs (``https://api.fal.ai/v1``): usage, request history and pricing.

Requests go through the engine's own httpx client, so they carry the same ``Authorization: Key`` header, the same
routing (a sandbox or test server stands in for ``api.fal.ai`` as for the queue host: ``{base_url}/v1/...``), the
same retries and the same error translation, which never repeats a header or the key.

What fal documents (docs.fal.ai/platform-apis/v1/models/usage, /requests/by-endpoint, /pricing):
- ``GET /models/usage``: ``endpoint_id`` (1-50, comma-separated), ``start``/``end`` (ISO 8601), ``timezone``,
  ``timeframe`` (minute, hour, day, week, month), ``bound_to_timeframe`` (default true: ``end`` exclusive),
  ``expand`` (time_series, summary, auth_method), ``limit``, ``cursor`` -> ``{time_series: [{bucket, results:
  [{endpoint_id, unit, quantity, unit_price, cost, currency}]}], summary, next_cursor, has_more}``. fal says an
  admin key is needed.
- ``GET /models/requests/by-endpoint``: ``endpoint_id``, ``request_id``, ``start``/``end`` (24 h by default; 90 days
  when a request_id is given, as the serverless variant's page says), ``status``, ``expand=payloads``, ``limit``
  (at most 100), ``cursor`` -> ``{items: [{request_id, endpoint_id, started_at, ended_at, status_code, json_input,
  json_output}], next_cursor, has_more}``. Payloads are kept 30 days, and never with ``X-Fal-Store-IO: 0``.
- ``GET /models/pricing?endpoint_id=a,b`` -> ``{prices: [{endpoint_id, unit_price, unit, currency}]}``.
NOT DOCUMENTED by fal: whether a request still queued is listed, and which time the window filters on; so a lookup
uses a generous window and a request is called absent only well after it was sent (Settings.unconfirmed_after).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..errors import FalError
from .protocol import http_error

PLATFORM_URL = "https://api.fal.ai/v1"
OPENAPI_URL = "https://fal.ai/api/openapi/queue/openapi.json"
"""fal's OpenAPI document of one endpoint (``?endpoint_id=``); a sandbox at the base URL serves the same path."""
MAX_PAGES = 50
"""A bound on cursor paging (50 pages of 100 requests), so a lookup always ends."""
BILLABLE_UNITS_HEADER = "x-fal-billable-units"
"""fal-js (libs/client/src/headers.ts): 'Response header for billing units charged for the request'. Where it is
sent is NOT DOCUMENTED: it is read from the result response (where fal's apps set it and clients find it)."""


@dataclass(frozen=True)
class UsageLine:
    """One line of fal's usage: what fal billed for an endpoint in one time bucket (a day here)."""

    day: str
    """YYYY-MM-DD of the bucket (UTC unless another timezone was asked for)."""
    endpoint_id: str
    unit: str
    quantity: float
    unit_price: float
    cost: float


@dataclass(frozen=True)
class RequestItem:
    """One request of fal's request history (``expand=payloads`` fills the two payloads)."""

    request_id: str
    endpoint_id: str
    status_code: int | None
    started_at: str | None = None
    ended_at: str | None = None
    json_input: dict[str, Any] | None = field(default=None, repr=False)
    json_output: dict[str, Any] | None = field(default=None, repr=False)
    sent_at: str | None = None


@dataclass(frozen=True)
class Price:
    endpoint_id: str
    unit_price: float
    unit: str
    currency: str


def billable_units(headers: Mapping[str, str]) -> float | None:
    """``x-fal-billable-units`` as a number, or None when fal did not send it (or sent something else)."""
    value = headers.get(BILLABLE_UNITS_HEADER)
    try:
        units = float(value) if value is not None and value.strip() else None
    except ValueError:
        return None
    return units if units is not None and units >= 0 and units == units and units != float("inf") else None


def iso(when: float) -> str:
    return dt.datetime.fromtimestamp(when, dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


class PlatformAPI:
    """fal's Platform APIs on the engine's httpx client (``http`` gives it on the engine's loop)."""

    def __init__(self, http: Callable[[], Awaitable[httpx.AsyncClient]], base: str = PLATFORM_URL) -> None:
        self._http = http
        self.base = base.rstrip("/")

    async def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        client = await self._http()
        response = await client.get(f"{self.base}{path}", params=params)
        if response.status_code >= 400:
            raise http_error(response)
        body = response.json()
        if not isinstance(body, dict):
            raise FalError(f"fal's platform API answered {path} with something that is not an object")
        return body

    async def _pages(self, path: str, params: dict[str, str], key: str) -> list[dict[str, Any]]:
        """Every item under ``key``, following ``next_cursor`` (at most MAX_PAGES pages)."""
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            body = await self._get(path, {**params, **({"cursor": cursor} if cursor else {})})
            found += [x for x in body.get(key) or [] if isinstance(x, dict)]
            cursor = body.get("next_cursor") if body.get("has_more", body.get("next_cursor") is not None) else None
            if not cursor:
                return found
        return found

    async def usage(self, endpoint_ids: Iterable[str], start: str, end: str) -> list[UsageLine]:
        """fal's usage per UTC day and endpoint from ``start`` to ``end`` (dates, YYYY-MM-DD; end exclusive)."""
        ids = sorted(set(endpoint_ids))
        lines: list[UsageLine] = []
        for at in range(0, len(ids), 50):  # fal takes 1-50 endpoint ids per call
            params = {
                "endpoint_id": ",".join(ids[at : at + 50]),
                "start": start,
                "end": end,
                "timezone": "UTC",
                "timeframe": "day",
                "bound_to_timeframe": "true",
                "expand": "time_series",
            }
            for bucket in await self._pages("/models/usage", params, "time_series"):
                day = str(bucket.get("bucket", ""))[:10]
                for r in bucket.get("results") or []:
                    lines.append(
                        UsageLine(
                            day, str(r.get("endpoint_id")), str(r.get("unit", "")), float(r.get("quantity") or 0),
                            float(r.get("unit_price") or 0), float(r.get("cost") or 0),
                        )
                    )  # fmt: skip
        return lines

    async def requests(
        self,
        endpoint_id: str,
        *,
        request_id: str | None = None,
        start: float | None = None,
        end: float | None = None,
        payloads: bool = True,
        page_size: int = 100,
    ) -> list[RequestItem]:
        """Requests of one endpoint from fal's request history, newest first (every page, up to MAX_PAGES)."""
        params = {"endpoint_id": endpoint_id, "limit": str(page_size)}
        if request_id is not None:
            params["request_id"] = request_id
        if start is not None:
            params["start"] = iso(start)
        if end is not None:
            params["end"] = iso(end)
        if payloads:
            params["expand"] = "payloads"
        return [_item(x) for x in await self._pages("/models/requests/by-endpoint", params, "items")]

    async def find(self, endpoint_id: str, request_id: str) -> RequestItem | None:
        """One request by id (fal looks back 90 days when given one), or None when fal's history has none."""
        items = await self.requests(endpoint_id, request_id=request_id)
        return next((i for i in items if i.request_id == request_id), None)

    async def pricing(self, endpoint_ids: Iterable[str]) -> list[Price]:
        ids = sorted(set(endpoint_ids))
        prices: list[Price] = []
        for at in range(0, len(ids), 50):
            body = await self._pages("/models/pricing", {"endpoint_id": ",".join(ids[at : at + 50])}, "prices")
            prices += [
                Price(str(p.get("endpoint_id")), float(p.get("unit_price") or 0), str(p.get("unit", "")),
                      str(p.get("currency", "USD")))
                for p in body
            ]  # fmt: skip
        return prices

    async def openapi(self, endpoint_id: str) -> dict[str, Any]:
        """fal's OpenAPI 3 document of one endpoint (the registry's live models: kx.model)."""
        client = await self._http()
        response = await client.get(OPENAPI_URL, params={"endpoint_id": endpoint_id})
        if response.status_code >= 400:
            raise http_error(response)
        body = response.json()
        if not isinstance(body, dict) or not isinstance(body.get("paths"), dict):
            raise FalError(f"fal's OpenAPI document for {endpoint_id} is not an OpenAPI document")
        return body

    async def price(self, endpoint_id: str) -> dict[str, Any] | None:
        """fal's price of one endpoint as ``{unit_price, unit, currency}``, or None when fal lists none."""
        found = [p for p in await self.pricing([endpoint_id]) if p.endpoint_id == endpoint_id]
        return (
            {"unit_price": found[0].unit_price, "unit": found[0].unit, "currency": found[0].currency} if found else None
        )


def _item(x: dict[str, Any]) -> RequestItem:
    code = x.get("status_code")
    return RequestItem(
        request_id=str(x.get("request_id")),
        endpoint_id=str(x.get("endpoint_id")),
        status_code=int(code) if isinstance(code, (int, float)) else None,
        started_at=x.get("started_at"),
        ended_at=x.get("ended_at"),
        json_input=x.get("json_input") if isinstance(x.get("json_input"), dict) else None,
        json_output=x.get("json_output") if isinstance(x.get("json_output"), dict) else None,
        sent_at=x.get("sent_at"),
    )


# -- matching a journaled request to fal's history ---------------------------------------------------------------
def same_input(ours: Any, theirs: Any) -> bool:
    """Whether fal's ``json_input`` is the request we sent: every value we sent is there, equal (fal may add
    defaults). An inline image or LoRA file journaled as a hash label (``data:...;sha256=``, ``file:...;sha256=``)
    matches any string: the label cannot be compared with what was sent for it."""
    if isinstance(ours, dict):
        return isinstance(theirs, dict) and all(k in theirs and same_input(v, theirs[k]) for k, v in ours.items())
    if isinstance(ours, list):
        return (
            isinstance(theirs, list)
            and len(ours) == len(theirs)
            and all(same_input(a, b) for a, b in zip(ours, theirs, strict=True))
        )
    if isinstance(ours, str) and ";sha256=" in ours and ours.startswith(("data:", "file:")):
        return isinstance(theirs, str)
    if isinstance(ours, bool) or isinstance(theirs, bool):
        return ours is theirs
    if isinstance(ours, (int, float)) and isinstance(theirs, (int, float)):
        return float(ours) == float(theirs)
    return bool(ours == theirs)


def the_one_sent(items: Iterable[RequestItem], arguments: Mapping[str, Any], known: Iterable[str] = ()) -> str | None:
    """The request id of the one history item whose input is ``arguments`` and whose id is not already ``known``
    (in the journal); None when there is none or more than one (ambiguous: nothing is guessed)."""
    taken = set(known)
    found = {i.request_id for i in items if i.request_id not in taken and same_input(dict(arguments), i.json_input)}
    return found.pop() if len(found) == 1 else None
