"""fal's Platform APIs in the sandbox (``https://api.fal.ai/v1`` -> ``{sandbox}/v1``): pricing, usage, request history.

Shapes as fal documents them (docs.fal.ai/platform-apis/v1/models/...):
- ``GET /v1/models/pricing?endpoint_id=a,b`` -> ``{prices: [{endpoint_id, unit_price, unit, currency}], next_cursor,
  has_more}``, from endpoints.py's prices for the Kontext family and the snapshot's for every other model (an
  endpoint whose price fal does not publish is left out, as one fal does not know);
- ``GET /v1/models/usage?endpoint_id=..&start=..&end=..&timeframe=day&timezone=UTC&expand=time_series,summary`` ->
  ``{time_series: [{bucket, results: [{endpoint_id, unit, quantity, unit_price, cost, currency}]}], summary,
  next_cursor, has_more}``, from what the sandbox would bill (billing.py);
- ``GET /v1/models/requests/by-endpoint?endpoint_id=..&request_id=..&start=..&end=..&expand=payloads`` -> ``{items:
  [{request_id, endpoint_id, sent_at, started_at, ended_at, status_code, duration, json_input, json_output}],
  next_cursor, has_more}``: every request the queue accepted (also one still queued: fal does not say whether it
  lists those), newest first; ``start`` defaults to 24 h ago, 90 days with a ``request_id``. The time window filters
  on the submit time (fal does not say which time it filters on). Payloads are absent for ``X-Fal-Store-IO: 0``.
Cursors are the base64 page number, as fal's examples show ("Mg==" is page 2).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from kontext_nb import endpoints

from . import billing, models
from .queue import Job
from .state import fal_error, sandbox_of

DAY = 86400.0
MAX_ENDPOINTS = 50


class BadQuery(ValueError):
    """A query parameter fal would refuse (400, one line)."""


async def pricing(request: Request) -> Response:
    denied = await sandbox_of(request).gate(request, "platform")
    if denied is not None:
        return denied
    try:
        ids = endpoint_ids(request)
    except BadQuery as exc:
        return fal_error(400, str(exc), "bad_request")
    prices = [price for i in ids if (price := _price(i)) is not None]
    return JSONResponse({"prices": prices, "next_cursor": None, "has_more": False})


def _price(endpoint_id: str) -> dict[str, Any] | None:
    ep = endpoints.ENDPOINTS.get(endpoint_id)
    if ep is not None:
        return {"endpoint_id": endpoint_id, "unit_price": ep.price, "unit": ep.unit, "currency": "USD"}
    model = models.get(endpoint_id)
    if model is None or model.pricing is None:
        return None
    p = model.pricing
    return {"endpoint_id": endpoint_id, "unit_price": p["unit_price"], "unit": p["unit"], "currency": p["currency"]}


async def usage(request: Request) -> Response:
    sb = sandbox_of(request)
    denied = await sb.gate(request, "platform")
    if denied is not None:
        return denied
    q = request.query_params
    try:
        ids = endpoint_ids(request)
        zone = _zone(q.get("timezone") or "UTC")
        now = sb.queue.now()
        start = _when(q.get("start"), now - DAY, zone)
        end = _when(q.get("end"), now, zone)
        timeframe = q.get("timeframe") or _auto_timeframe(end - start)
        if timeframe not in billing.TIMEFRAMES:
            raise BadQuery(f"timeframe {timeframe!r}: the sandbox serves {', '.join(billing.TIMEFRAMES)}")
        if (q.get("bound_to_timeframe") or "true").lower() != "false":
            start = billing.bucket_start(start, timeframe, zone).timestamp()
            end = _next_boundary(end, timeframe, zone)
        expand = expand_of(request) or {"time_series"}
        if not expand & {"time_series", "summary"}:
            raise BadQuery("expand must hold time_series or summary")
        page, limit = page_of(request)
    except BadQuery as exc:
        return fal_error(400, str(exc), "bad_request")
    lines = sb.queue.bills.entries()
    body: dict[str, Any] = {"next_cursor": None, "has_more": False}
    if "time_series" in expand:
        series = billing.time_series(lines, endpoint_ids=ids, start=start, end=end, timeframe=timeframe, zone=zone)
        body["time_series"], body["next_cursor"], body["has_more"] = paged(series, page, limit)
    if "summary" in expand:
        body["summary"] = billing.summary(lines, endpoint_ids=ids, start=start, end=end)
    return JSONResponse(body)


async def requests_by_endpoint(request: Request) -> Response:
    sb = sandbox_of(request)
    denied = await sb.gate(request, "platform")
    if denied is not None:
        return denied
    q = request.query_params
    try:
        ids = endpoint_ids(request)
        wanted = q.get("request_id")
        now = sb.queue.now()
        start = _when(q.get("start"), now - (90 * DAY if wanted else DAY), "UTC")
        end = _when(q.get("end"), now + 1.0, "UTC")
        status = q.get("status")
        if status not in (None, "success", "error", "user_error"):
            raise BadQuery(f"status {status!r}: use success, error or user_error")
        payloads = "payloads" in expand_of(request)
        page, limit = page_of(request, default=50, most=100)
    except BadQuery as exc:
        return fal_error(400, str(exc), "bad_request")
    jobs = [
        job
        for job in sb.queue.jobs.values()
        if job.endpoint.id in ids
        and (wanted is None or job.id == wanted)
        and start <= job.submitted_at < end
        and (status is None or _status_class(job) == status)
    ]
    jobs.sort(key=lambda j: (j.completed_at or float("inf"), j.submitted_at), reverse=True)
    items = [_item(job, payloads) for job in jobs]
    shown, cursor, more = paged(items, page, limit)
    return JSONResponse({"items": shown, "next_cursor": cursor, "has_more": more})


def _item(job: Job, payloads: bool) -> dict[str, Any]:
    item: dict[str, Any] = {
        "request_id": job.id,
        "endpoint_id": job.endpoint.id,
        "sent_at": _iso(job.submitted_at),
        "started_at": _iso(job.started_at),
        "ended_at": _iso(job.completed_at),
        "status_code": _status_code(job),
        "duration": None if job.completed_at is None else round(job.completed_at - job.submitted_at, 4),
    }
    if payloads:
        kept = job.store_io
        item["json_input"] = job.raw_input if kept else None
        output = job.result if job.error is None else job.error.payload()
        item["json_output"] = output if kept and job.done else None
    return item


def _status_code(job: Job) -> int | None:
    if not job.done:
        return None
    return 200 if job.error is None else job.error.status_code


def _status_class(job: Job) -> str | None:
    code = _status_code(job)
    if code is None:
        return None
    return "success" if code < 400 else "user_error" if code < 500 else "error"


def endpoint_ids(request: Request) -> list[str]:
    ids = [part.strip() for value in request.query_params.getlist("endpoint_id") for part in value.split(",")]
    ids = [i for i in ids if i]
    if not 1 <= len(ids) <= MAX_ENDPOINTS:
        raise BadQuery(f"endpoint_id: give 1 to {MAX_ENDPOINTS} endpoint ids (comma-separated or repeated)")
    return ids


def expand_of(request: Request) -> set[str]:
    return {p.strip() for v in request.query_params.getlist("expand") for p in v.split(",") if p.strip()}


def _zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadQuery(f"timezone {name!r} is not an IANA time zone") from None
    return name


def _when(text: str | None, default: float, zone: str) -> float:
    """An ISO 8601 date or time (a bare date is midnight in ``zone``; a time without offset is UTC)."""
    if not text:
        return default
    try:
        if len(text) == 10:
            return dt.datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadQuery(f"{text!r} is not an ISO 8601 date or time") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)).timestamp()


def _auto_timeframe(span: float) -> str:
    """fal's auto-detection, as far as the sandbox serves it: minute (<2 h), hour (<2 d), else day."""
    return "minute" if span < 2 * 3600 else "hour" if span < 2 * DAY else "day"


def _next_boundary(when: float, timeframe: str, zone: str) -> float:
    """The exclusive end: the start of the bucket after the one holding ``when`` (unless it is a boundary)."""
    start = billing.bucket_start(when, timeframe, zone)
    if start.timestamp() == when:
        return when
    step = {"minute": dt.timedelta(minutes=1), "hour": dt.timedelta(hours=1), "day": dt.timedelta(days=1)}[timeframe]
    return (start + step).timestamp()


def page_of(request: Request, default: int = 50, most: int = 1000) -> tuple[int, int]:
    q = request.query_params
    try:
        limit = int(q.get("limit") or default)
        page = int(base64.b64decode(q["cursor"]).decode()) if q.get("cursor") else 1
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadQuery("limit must be a whole number and cursor one this API returned") from None
    if not 1 <= limit <= most or page < 1:
        raise BadQuery(f"limit must be from 1 to {most}")
    return page, limit


def paged(items: list[Any], page: int, limit: int) -> tuple[list[Any], str | None, bool]:
    shown = items[(page - 1) * limit : page * limit]
    more = len(items) > page * limit
    return shown, base64.b64encode(str(page + 1).encode()).decode() if more else None, more


def _iso(when: float | None) -> str | None:
    return None if when is None else dt.datetime.fromtimestamp(when, dt.timezone.utc).isoformat()
