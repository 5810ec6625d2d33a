"""The sandbox's request store and inference workers.

Jobs wait in a real queue (normal priority before low, then submit order) so
``queue_position`` counts down; ``workers`` slots run them. Every change to a job wakes
whoever watches it through an asyncio.Event, so a status stream hears about completion at
once instead of on its next poll. Rendering runs in a thread pool inside the simulated
inference window, so the event loop never blocks and many jobs overlap as on fal.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes, urlsplit

import httpx

from . import billing, render
from .models import Model

if TYPE_CHECKING:
    from . import SandboxConfig

log = logging.getLogger(__name__)

IN_QUEUE, IN_PROGRESS, COMPLETED = "IN_QUEUE", "IN_PROGRESS", "COMPLETED"
CANCELLED_MESSAGE = "Request was cancelled"
_NSFW = re.compile(r"\bnsfw\b", re.IGNORECASE)
RUNNER_ERROR_MARK = "[sandbox:runner_server_error]"
"""A prompt containing this ends its job with fal's stored 500 runner_server_error (to test clients)."""
_EXT = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}


class JobError(Exception):
    """Why a job failed, in fal's terms: message, error_type, HTTP status of its result, input field."""

    def __init__(self, message: str, error_type: str, status_code: int = 500, field: str | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.status_code = status_code
        self.field = field

    def payload(self) -> dict[str, Any]:
        """The error body fal's result route answers for this failure."""
        if self.field is not None:
            item = {"loc": ["body", self.field], "msg": str(self), "type": self.error_type}
            return {"detail": [{**item, "url": f"https://docs.fal.ai/errors/#{self.error_type}"}]}
        return {"detail": str(self), "error_type": self.error_type}


@dataclass(eq=False)
class Job:
    """One queued request and everything the status, result and control routes report about it."""

    id: str
    endpoint: Model
    arguments: dict[str, Any]
    priority: str = "normal"
    timeout: float | None = None
    store_io: bool = True
    raw_input: dict[str, Any] | None = None
    """The body as submitted (before defaults): fal's request history shows it as ``json_input``."""
    input_sizes: list[tuple[int, int]] = field(default_factory=list)
    """(width, height) of each image input as fetched: what per-megapixel-of-input prices bill."""
    billable_units: float | None = None
    """What fal bills for it once it completed with images (``x-fal-billable-units``), in the endpoint's unit."""
    headers_seen: dict[str, str | None] = field(default_factory=dict)  # the raw header values, for the control API
    webhook: str | None = None
    submitted_at: float = field(default_factory=time.time)
    started_at: float | None = None
    completed_at: float | None = None
    status: str = IN_QUEUE
    logs: list[dict[str, Any]] = field(default_factory=list)
    result: dict[str, Any] | None = None
    error: JobError | None = None
    cancel_requested: bool = False
    forgotten: bool = False
    task: asyncio.Task[None] | None = None
    timer: asyncio.TimerHandle | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def app_path(self) -> str:
        """By-id URLs use only owner and app: fal-ai/flux-pro/kontext/max -> fal-ai/flux-pro."""
        return "/".join(self.endpoint.id.split("/")[:2])

    @property
    def done(self) -> bool:
        return self.status == COMPLETED

    def notify(self) -> None:
        """Wake every watcher: they hold the old event, later waiters get a fresh one."""
        old, self.changed = self.changed, asyncio.Event()
        old.set()


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


class BlobStore:
    """Generated media and uploaded files, in memory, keyed by URL path (/media/x.jpg, /files/k/x.png)."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[bytes, str]] = {}

    def put(self, path: str, data: bytes, content_type: str) -> None:
        self._items[path] = (data, content_type)

    def get(self, path: str) -> tuple[bytes, str] | None:
        return self._items.get(path)

    def clear(self) -> None:
        self._items.clear()


class JobQueue:
    """Request store, queue and workers. Used from the server's event loop only."""

    def __init__(self, config: SandboxConfig, blobs: BlobStore, base_url: str, local_bases: set[str]) -> None:
        self.config = config
        self.blobs = blobs
        self.base_url = base_url
        self.local_bases = local_bases
        self.jobs: dict[str, Job] = {}
        self.counters: Counter[str] = Counter()
        self.bills = billing.BillLog()
        """What fal would bill: a line per completed request, from the sizes returned (billing.py)."""
        self.closing = False
        self._normal: list[Job] = []
        self._low: list[Job] = []
        self._positions: dict[str, int] = {}
        self._running: set[Job] = set()
        self._wake: asyncio.TimerHandle | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._executor = ThreadPoolExecutor(thread_name_prefix="kontext-sandbox-render")
        self._http: httpx.AsyncClient | None = None

    # ---- queue bookkeeping ------------------------------------------------------------
    def submit(self, job: Job, *, forget: bool = False) -> None:
        """Enqueue a validated job. With forget=True it is accepted and then lost (the 'vanish' fault)."""
        if forget:
            return
        self.jobs[job.id] = job
        (self._low if job.priority == "low" else self._normal).append(job)
        if job.timeout is not None:
            job.timer = asyncio.get_running_loop().call_later(job.timeout, self._expire, job)
        self._dispatch()

    def kick(self) -> None:
        """Re-run dispatch after a config change (more workers, shorter queue_delay)."""
        self._dispatch()

    def begin_close(self) -> None:
        """Mark the queue closing and wake every watcher so open status streams end before shutdown."""
        self.closing = True
        for job in list(self.jobs.values()):
            job.notify()

    def position(self, job: Job) -> int | None:
        return self._positions.get(job.id) if job.status == IN_QUEUE else None

    def _reposition(self) -> None:
        order = self._normal + self._low
        fresh = {job.id: i for i, job in enumerate(order)}
        for job in order:
            if self._positions.get(job.id) != fresh[job.id]:
                job.notify()
        self._positions = fresh

    def _unqueue(self, job: Job) -> None:
        for lane in (self._normal, self._low):
            if job in lane:
                lane.remove(job)

    def _dispatch(self) -> None:
        """Start waiting jobs while slots are free; normal before low, each after queue_delay."""
        if self.closing:
            return
        loop = asyncio.get_running_loop()
        now, delay = time.time(), max(0.0, float(self.config.queue_delay))
        while len(self._running) < max(1, int(self.config.workers)):
            ready = next((j for j in self._normal + self._low if j.submitted_at + delay <= now), None)
            if ready is None:
                break
            self._unqueue(ready)
            self._running.add(ready)
            ready.status, ready.started_at = IN_PROGRESS, time.time()
            ready.task = loop.create_task(self._run(ready))
            ready.notify()
        waiting = self._normal + self._low
        if waiting and len(self._running) < max(1, int(self.config.workers)):
            when = min(j.submitted_at for j in waiting) + delay - now
            if self._wake is not None:
                self._wake.cancel()
            self._wake = loop.call_later(max(0.0, when) + 0.001, self._dispatch)
        self._reposition()

    def _expire(self, job: Job) -> None:
        if job.status == IN_QUEUE and not job.forgotten:
            self._unqueue(job)
            message = f"Request timed out: it did not start within {job.timeout:g} s (X-Fal-Request-Timeout)"
            self._finish(job, error=JobError(message, "request_timeout", 504))

    def cancel(self, request_id: str) -> str:
        """CANCELLATION_REQUESTED, ALREADY_COMPLETED or NOT_FOUND, as fal's cancel route says."""
        job = self.jobs.get(request_id)
        if job is None:
            return "NOT_FOUND"
        if job.done:
            return "ALREADY_COMPLETED"
        job.cancel_requested = True
        self._unqueue(job)
        self._finish(job, error=JobError(CANCELLED_MESSAGE, "request_cancelled", 400))
        if job.task is not None:
            job.task.cancel()
        return "CANCELLATION_REQUESTED"

    def forget(self, request_id: str) -> None:
        """Drop a request without a trace (the 'vanish' fault): status and result then give 404."""
        job = self.jobs.pop(request_id, None)
        if job is None:
            return
        job.forgotten = True
        self._unqueue(job)
        self._running.discard(job)
        for handle in (job.task, job.timer):
            if handle is not None:
                handle.cancel()
        job.notify()
        self._dispatch()

    def reset(self) -> None:
        for request_id in list(self.jobs):
            self.forget(request_id)
        self.counters.clear()
        self.bills.clear()

    def now(self) -> float:
        """The sandbox's clock: real time moved on by ``clock_offset`` (tests move it to expire results)."""
        return time.time() + float(self.config.clock_offset)

    def expired(self, job: Job) -> bool:
        """Whether fal no longer keeps this completed request's queue result (1 h; 6 min from 10 KB): its status
        and result then answer 404, and only the request history (``/v1/models/requests/by-endpoint``) has it."""
        if not job.done or job.completed_at is None:
            return False
        size = len(json.dumps(job.result if job.result is not None else (job.error.payload() if job.error else {})))
        return self.now() > job.completed_at + billing.result_ttl(size)

    async def aclose(self) -> None:
        """Stop everything: cancel jobs, end open streams, close the HTTP client."""
        self.closing = True
        for job in list(self.jobs.values()):
            for handle in (job.task, job.timer):
                if handle is not None:
                    handle.cancel()
            job.notify()
        for task in list(self._background):
            task.cancel()
        if self._http is not None:
            await self._http.aclose()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _finish(self, job: Job, *, result: dict[str, Any] | None = None, error: JobError | None = None) -> None:
        if job.done or job.forgotten:
            return
        job.status, job.completed_at = COMPLETED, time.time()
        job.result, job.error = result, error
        if job.timer is not None:
            job.timer.cancel()
        self._running.discard(job)
        if error is None:
            self.counters["completed"] += 1
            self._bill(job)
        elif error.error_type == "request_cancelled":
            self.counters["cancelled"] += 1
        else:
            self.counters["failed"] += 1
        job.notify()
        if job.webhook:
            self._spawn(self._deliver(job))
        self._dispatch()

    def _bill(self, job: Job) -> None:
        result = job.result or {}
        images = result.get("images") or ([result["image"]] if isinstance(result.get("image"), dict) else [])
        sizes = [(int(m["width"]), int(m["height"])) for m in images]
        when = job.completed_at or time.time()
        bill = billing.bill_for(job.endpoint.id, job.id, sizes, when, inputs=job.input_sizes, arguments=job.arguments)
        job.billable_units = bill.quantity
        self.bills.append(bill)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ---- views -------------------------------------------------------------------------
    def urls(self, job: Job) -> dict[str, str]:
        base = f"{self.base_url}/{job.app_path}/requests/{job.id}"
        return {"response_url": base, "status_url": base + "/status", "cancel_url": base + "/cancel"}

    def status_json(self, job: Job, with_logs: bool = False) -> dict[str, Any]:
        """The status body fal sends; every key is always present (fal_client reads them directly)."""
        body: dict[str, Any] = {"status": job.status, "request_id": job.id, **self.urls(job)}
        body["queue_position"] = self.position(job)
        body["logs"] = [dict(entry) for entry in job.logs] if with_logs else None
        body["metrics"] = {}
        if job.done:
            ran = (job.completed_at or 0) - job.started_at if job.started_at else 0.0
            body["metrics"] = {"inference_time": round(ran, 4)}
            if job.error is not None:
                body["error"], body["error_type"] = str(job.error), job.error.error_type
        return body

    def info(self, job: Job) -> dict[str, Any]:
        """What the control API reports about one request (tests check headers and timings here)."""
        return {
            "request_id": job.id,
            "status": job.status,
            "endpoint": job.endpoint.id,
            "arguments": job.arguments,
            "headers_seen": dict(job.headers_seen),
            "priority": job.priority,
            "store_io": job.store_io,
            "timeout": job.timeout,
            "webhook": job.webhook,
            "queue_position": self.position(job),
            "submitted_at": job.submitted_at,
            "started_at": job.started_at,
            "completed_at": job.completed_at,
            "error": None if job.error is None else str(job.error),
            "error_type": None if job.error is None else job.error.error_type,
            "billable_units": job.billable_units,
        }

    def stats(self) -> dict[str, Any]:
        counts = Counter(job.status for job in self.jobs.values())
        return {
            "billed": self.bills.total(),  # dollars, as fal's usage API reports them
            "completed": self.counters["completed"],
            "failed": self.counters["failed"],
            "cancelled": self.counters["cancelled"],
            "in_queue": counts[IN_QUEUE],
            "in_progress": counts[IN_PROGRESS],
        }

    # ---- running a job -----------------------------------------------------------------
    def _log(self, job: Job, message: str) -> None:
        job.logs.append({"message": message, "level": "INFO", "source": "USER", "timestamp": _now_iso()})
        job.notify()

    async def _run(self, job: Job) -> None:
        try:
            result = await self._infer(job)
        except asyncio.CancelledError:
            return  # cancelled (already marked COMPLETED), forgotten or shutting down
        except JobError as exc:
            self._finish(job, error=exc)
        except Exception as exc:  # a sandbox bug must still end the job, as a runner error does on fal
            log.warning("sandbox job %s failed: %r", job.id, exc)
            self._finish(job, error=JobError(f"Internal error in the sandbox: {exc}", "internal_error", 500))
        else:
            self._finish(job, result=result)

    async def _infer(self, job: Job) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        start, budget = time.monotonic(), max(0.0, float(self.config.inference_time))
        ep, args = job.endpoint, dict(job.arguments)
        self._log(job, f"Loading {ep.title if ep.kontext is None else f'FLUX.1 Kontext [{ep.model}]'} (sandbox)")
        if args.get("seed") is None:  # a model without a seed input still draws one, to vary its pictures
            args["seed"] = random.randrange(2**31)
        prompt, nonce = str(args.get("prompt") or ""), ""
        if RUNNER_ERROR_MARK in prompt:
            raise JobError(
                "Internal server error (sandbox: the prompt asked for a runner error)", "runner_server_error"
            )
        if args.get("enhance_prompt"):
            prompt, nonce = enhance(prompt), uuid.uuid4().hex
            self._log(job, f"Enhanced prompt: {prompt}")
        sources: list[tuple[str, str]] = []  # every image input, in the schema's order
        for name, many in ep.image_inputs:
            if many:
                sources += [(name, url) for url in args.get(name) or []]
            elif args.get(name) is not None:
                sources.append((name, args[name]))
        for lora in args.get("loras") or []:
            await self._check_lora(job, str(lora["path"]))
        inputs, source_size = [], None
        for name, url in sources:
            data = await self._fetch(url, name)
            size = render.header_size(data)
            source_size = source_size or size  # the first source's own size, as fal sees it
            job.input_sizes.append(size or (1024, 1024))
            try:
                inputs.append(await loop.run_in_executor(self._executor, render.decode_image, data))
            except render.ImageLoadError as exc:
                message = f"Failed to load the image given as {name}: {exc}"
                raise JobError(message, "image_load_error", 422, name) from None
        n, scale, nsfw = int(args.get("num_images", 1)), float(self.config.image_scale), bool(_NSFW.search(prompt))
        images = []
        for i in range(n):
            self._log(job, f"Generating image {i + 1}/{n}")
            draw: Callable[[], render.RenderedImage] = partial(
                render.render_image,
                ep.id,
                {**args, "prompt": args.get("prompt") or ""},
                index=i,
                inputs=inputs,
                scale=scale,
                nonce=nonce,
                prompt=prompt,
                nsfw=nsfw,
                source_size=source_size,
                title=ep.title,
                mode=ep.mode,
            )
            images.append(await loop.run_in_executor(self._executor, draw))
            await _sleep_until(start + budget * (i + 1) / (n + 1))
        await _sleep_until(start + budget)
        elapsed = time.monotonic() - start
        self._log(job, f"Generated {n} image{'s' * (n != 1)} in {elapsed:.2f} s")
        published = [self._publish(job, i, img, bool(args.get("sync_mode"))) for i, img in enumerate(images)]
        values = {
            "images": published,
            "image": published[0] if published else None,
            "timings": {"inference": round(elapsed, 4)},
            "seed": args["seed"],
            "seeds": [args["seed"]] * n,
            "has_nsfw_concepts": [nsfw] * n,
            "nsfw_content_detected": [nsfw] * n,
            "prompt": prompt,
        }
        return shaped(ep.output_schema, values)

    def _publish(self, job: Job, index: int, img: render.RenderedImage, sync: bool) -> dict[str, Any]:
        if sync:
            url = f"data:{img.content_type};base64,{base64.b64encode(img.data).decode()}"
        else:
            name = f"{job.id}-{index}.{_EXT[img.content_type]}"
            self.blobs.put(f"/media/{name}", img.data, img.content_type)
            url = f"{self.base_url}/media/{name}"
        return {"url": url, "width": img.width, "height": img.height, "content_type": img.content_type}

    async def _check_lora(self, job: Job, path: str) -> None:
        """A LoRA uploaded to this sandbox's storage must be there (others are only named in the log)."""
        parts = urlsplit(path)
        if f"{parts.scheme}://{parts.netloc}" in self.local_bases:
            data = await self._fetch(path, "loras")
            self._log(job, f"Loaded LoRA {path.rsplit('/', 1)[-1]} ({len(data)} bytes)")
        else:
            self._log(job, f"LoRA {path} (the sandbox does not download LoRAs from elsewhere)")

    async def _fetch(self, url: str, name: str) -> bytes:
        """Input bytes from a data URI or this sandbox's own storage and media, nothing else.

        The sandbox never fetches another address: run behind a classroom proxy (or on a shared
        machine) it would otherwise fetch whatever a student names, from inside. The refusal is
        the same line for every other URL, so it tells nothing about what is listening where.
        """
        if url.startswith("data:"):
            header, comma, payload = url.partition(",")
            try:
                if not comma:
                    raise ValueError("no comma")
                return base64.b64decode(payload) if header.endswith(";base64") else unquote_to_bytes(payload)
            except (ValueError, binascii.Error) as exc:
                raise JobError(
                    f"Failed to load the image given as {name}: bad data URI ({exc})", "image_load_error", 422, name
                ) from None
        parts = urlsplit(url)
        if f"{parts.scheme}://{parts.netloc}" in self.local_bases and parts.path.startswith(("/files/", "/media/")):
            blob = self.blobs.get(parts.path)
            if blob is not None:
                return blob[0]
            shown = url if len(url) <= 120 else url[:117] + "..."
            raise JobError(
                f"Failed to download the file from {shown}: not found (404)", "file_download_error", 422, name
            )
        raise JobError(
            f"Failed to download the file given as {name}: the sandbox reads only data URIs and its own "
            "storage and media URLs (upload the image first)",
            "file_download_error",
            422,
            name,
        )

    async def _deliver(self, job: Job) -> None:
        """POST fal's webhook body to the job's webhook; failures are ignored (best effort, as documented).

        fal's documented shape: ``status`` OK or ERROR; on ERROR ``error`` is a message and
        ``payload`` the error body the result route would answer.
        """
        body: dict[str, Any] = {"request_id": job.id, "gateway_request_id": job.id}
        if job.error is None:
            body.update(status="OK", payload=job.result, error=None)
        else:
            body.update(
                status="ERROR",
                error=f"Invalid status code: {job.error.status_code}",
                payload=job.error.payload(),
            )
        if self._http is None:
            self._http = httpx.AsyncClient(follow_redirects=False, timeout=5.0, trust_env=False)
        try:
            await self._http.post(job.webhook or "", json=body)
        except httpx.HTTPError as exc:
            log.debug("webhook for %s not delivered: %r", job.id, exc)

    async def wait(self, job: Job) -> None:
        """Until the job is COMPLETED (or forgotten, or the sandbox closes)."""
        while not (job.done or job.forgotten or self.closing):
            await job.changed.wait()


_EMPTY = {"string": "", "integer": 0, "number": 0.0, "boolean": False, "array": [], "object": {}}


def shaped(schema: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """The result as the endpoint's output schema declares it: its fields in its order (``images`` or ``image``,
    ``seed``, ``has_nsfw_concepts``, ...), a required field the sandbox has no value for as an empty one."""
    props: dict[str, Any] = schema.get("properties") or {}
    order = [p for p in schema.get("x-fal-order-properties") or () if p in props]
    required = set(schema.get("required") or ())
    out: dict[str, Any] = {}
    for name in order + [p for p in props if p not in order]:
        if values.get(name) is not None:
            out[name] = values[name]
        elif name in required:
            out[name] = _EMPTY.get(str(props[name].get("type")))
    return out


def enhance(prompt: str) -> str:
    """The 'enhanced' prompt the sandbox reports when enhance_prompt is on."""
    return f"{prompt.strip().rstrip('.')}, highly detailed, balanced composition, soft natural light"


async def _sleep_until(deadline: float) -> None:
    remaining = deadline - time.monotonic()
    if remaining > 0:
        await asyncio.sleep(remaining)
