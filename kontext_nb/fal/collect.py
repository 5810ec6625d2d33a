"""Collecting a finished job: the output JSON, then every image, downloaded at once.

fal's media URLs expire, so images are fetched the moment a job completes. Each is checked by decoding it once
(a truncated download fails here) and then only its bytes are kept; one over images.MAX_INPUT_PIXELS is checked
from its header alone and kept as received (the Result says it has no preview).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import Mapping
from typing import Any

import httpx

from .. import endpoints, models
from ..errors import DownloadFailed, FalError, ImageTooLarge, JobFailed
from ..images import decode_image, image_inputs, image_size, sniff_content_type
from ..jobs import Job
from ..result import Result
from .platform import billable_units
from .protocol import http_error


async def fetch_output(
    http: httpx.AsyncClient, response_url: str, request_id: str
) -> tuple[dict[str, Any], float | None]:
    """The model's output and the units fal says it bills for it (``x-fal-billable-units``, when sent)."""
    response = await http.get(response_url)
    if response.status_code >= 400:
        raise http_error(response, request_id)
    output = response.json()
    if not isinstance(output, dict):
        raise FalError(f"fal returned an unexpected result for request {request_id}", request_id=request_id)
    return output, billable_units(response.headers)


async def fetch_image(media: httpx.AsyncClient, url: str, request_id: str) -> bytes:
    if url.startswith("data:"):
        _, _, payload = url.partition(",")
        return base64.b64decode(payload)
    response = await media.get(url)
    if response.status_code >= 400:
        raise DownloadFailed(
            f"could not download an image of request {request_id} (HTTP {response.status_code}); "
            "it stays on fal until its URL expires",
            status_code=response.status_code,
            request_id=request_id,
        )
    return response.content


async def collect_result(
    http: httpx.AsyncClient,
    media: httpx.AsyncClient,
    *,
    job: Job,
    endpoint: str,
    arguments: dict[str, Any],
    response_url: str,
) -> Result:
    """The finished job's output and every image, downloaded and decoded, as a Result."""
    output, units = await fetch_output(http, response_url, job.request_id or "")
    return await result_from_output(media, job=job, endpoint=endpoint, arguments=arguments, output=output, units=units)


async def result_from_output(
    media: httpx.AsyncClient,
    *,
    job: Job,
    endpoint: str,
    arguments: dict[str, Any],
    output: dict[str, Any],
    units: float | None = None,
) -> Result:
    """A Result from the model's output JSON (the queue's result, or ``json_output`` in fal's request history):
    every image downloaded and decoded."""
    request_id = job.request_id or ""
    shaped = models.normalise(output)  # images[] or image, seed or seeds, either NSFW flag: one shape
    metas = [m for m in shaped.images if m.get("url")]
    if not metas:
        raise JobFailed(f"fal returned no images for request {request_id}", request_id=request_id)
    blobs = await asyncio.gather(*(fetch_image(media, m["url"], request_id) for m in metas))
    sizes = []
    for i, blob in enumerate(blobs):
        try:
            sizes.append(await asyncio.to_thread(_checked_size, blob))  # keep the loop free for other jobs
        except Exception:
            raise FalError(
                f"image {i + 1} of request {request_id} is not a readable image", request_id=request_id
            ) from None
    ep = endpoints.get_endpoint(endpoint)
    nsfw = [flag for m, flag in zip(shaped.images, shaped.nsfw, strict=True) if m.get("url")]
    return Result(
        endpoint=endpoint,
        request_id=request_id,
        arguments=job.arguments,
        seed=_seed(output, shaped.seeds, arguments),
        prompt=str(output.get("prompt") or arguments.get("prompt", "")),
        image_bytes=list(blobs),
        content_types=[str(m.get("content_type") or _sniff(b)) for m, b in zip(metas, blobs, strict=True)],
        urls=[m["url"] if not m["url"].startswith("data:") else "data:" for m in metas],
        has_nsfw_concepts=nsfw,
        timings=dict(output.get("timings") or {}),
        cost=billed_cost(ep, sizes, units, arguments),
        inputs=image_inputs(arguments),
        output=_elide(output),
        logs=job.status.logs,
        elapsed=job.status.elapsed,
        billable_units=units,
    )


def _seed(output: dict[str, Any], returned: tuple[int | None, ...], arguments: dict[str, Any]) -> Any:
    """The seed used: the one returned (``seed``, or the first of ``seeds``); a model that returns none (Nano Banana)
    used the one it was sent; None when it neither took nor returned one (not reproducible)."""
    if "seed" in output:
        return output.get("seed")
    found = next((x for x in returned if x is not None), None)
    sent = arguments.get("seed")
    return found if found is not None else (sent if isinstance(sent, int) and not isinstance(sent, bool) else None)


def billed_cost(
    ep: endpoints.Endpoint,
    sizes: list[tuple[int, int]],
    units: float | None,
    arguments: Mapping[str, Any] | None = None,
) -> float:
    """What the job costs: the units fal says it billed (``x-fal-billable-units``) by the endpoint's price rule
    when it sent them; else from the returned images (per image, or per megapixel of their sizes)."""
    if units is not None:
        return ep.cost_of_units(units, arguments)
    return ep.cost(len(sizes), sizes, arguments)


def _checked_size(blob: bytes) -> tuple[int, int]:
    """The image's size, after decoding it once and dropping the pixels; from the header alone when it is too
    large to decode (saved as received all the same)."""
    with contextlib.suppress(ImageTooLarge):
        decode_image(blob)
    return image_size(blob)  # a large JPEG decodes as a draft: the size fal made (and bills) is the header's


def _sniff(blob: bytes) -> str:
    return sniff_content_type(blob) or endpoints.DEFAULT_CONTENT_TYPE


def _elide(output: dict[str, Any]) -> dict[str, Any]:
    """The output with inline image data shortened, so it can be shown and stored."""
    out = dict(output)
    out["images"] = [
        {**m, "url": m["url"][:40] + "..."} if isinstance(m, dict) and str(m.get("url", "")).startswith("data:") else m
        for m in output.get("images") or []
    ]
    return out
