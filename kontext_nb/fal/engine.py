"""The queue engine: Kontext jobs on fal_client's AsyncClient, on an event loop of its own.

A Jupyter kernel already runs an asyncio loop, so the engine owns one on a daemon thread
and every fal request runs there. Callers get a Job at once; blocking calls wait on it.
The engine knows nothing of IPython or widgets: it reports through Job callbacks and
the JobHooks a caller passes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import fal_client
import httpx
from asyncstdlib import cached_property as async_cached_property
from fal_client.auth import MissingCredentialsError

from .. import endpoints
from ..config import Settings
from ..errors import FalError, JobCancelled, JobFailed, JobTimeout, KontextError, RetriesExhausted
from ..images import ImageInput, LoraFile, labelled
from ..jobs import Job
from ..result import Result
from .collect import collect_result
from .protocol import CANCEL_ERROR_TYPES, fal_error
from .status import StreamUnavailable, follow_stream, poll_status
from .transport import FalTransport
from .upload import StorageUploader

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobHooks:
    """Per-job seams for the journal; both run on the engine side, never on the caller's thread."""

    prepare: Callable[[Job], None] | None = None
    """Called with the new Job before it starts (to label it and subscribe to its end)."""
    on_submitted: Callable[[Job], None] | None = None
    """Right after fal accepts the job (request_id known), before waiting on it."""
    on_failed: Callable[[Job, BaseException], BaseException | None] | None = None
    """When the job ends without images (failed or cancelled), before anyone waiting hears of it;
    it may return a clearer error to end the job with."""
    finalize: Callable[[Result], None] | None = None
    """After the images are downloaded and before the job counts as done (in a worker thread,
    so files can be written without stalling other jobs). It must not raise."""


@dataclass(frozen=True)
class SubmitOptions:
    """fal's submit options, passed through as fal defines them."""

    webhook_url: str | None = None
    priority: str | None = None
    """'normal' or 'low' (X-Fal-Queue-Priority)."""
    start_timeout: float | None = None
    """Seconds fal may wait before starting the job (X-Fal-Request-Timeout)."""
    store_io: bool = True
    """False sends X-Fal-Store-IO: 0 so fal keeps no copy of inputs and outputs."""

    def headers(self) -> dict[str, str]:
        return {} if self.store_io else {"X-Fal-Store-IO": "0"}


class _RoutedAsyncClient(fal_client.AsyncClient):
    """fal_client's AsyncClient with our own httpx client (routing + retries) in place of its own."""

    def __init__(self, key: str | None, transport: FalTransport, timeout: float = 120.0) -> None:
        super().__init__(key=key, default_timeout=timeout)
        self._transport = transport

    @async_cached_property(asyncio.Lock)
    async def _client(self) -> httpx.AsyncClient:
        auth = await self._auth
        return httpx.AsyncClient(
            transport=self._transport,
            headers={"Authorization": auth.header_value, "User-Agent": fal_client.client.USER_AGENT},
            timeout=self.default_timeout,
        )


@dataclass(eq=False)
class _Run:
    """The engine's private bookkeeping for one job."""

    job: Job
    endpoint: str
    arguments: dict[str, Any]
    options: SubmitOptions
    hooks: JobHooks = JobHooks()
    phase: str = "waiting"  # waiting, uploading, submitting, watching, collecting
    task: asyncio.Task[None] | None = None
    handle: Any = None
    cancel_requested: bool = False
    cancelled_remotely: bool = False
    submitted_at: float | None = None
    completed_at: float | None = None


class Engine:
    """Runs Kontext jobs through fal's queue on a background event loop."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self._runs: dict[Job, _Run] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="kontext-engine", daemon=True)
        self._thread.start()
        self.transport = FalTransport(self.settings.base_url, self.settings.retry)
        self._fal = _RoutedAsyncClient(self.settings.key, self.transport)
        self._media = httpx.AsyncClient(transport=self.transport, timeout=60.0, follow_redirects=True)
        self._slots = asyncio.Semaphore(self.settings.concurrency)
        self._uploader = StorageUploader(self._http, self._media)
        self._stream_supported: bool | None = None
        self.closed = False

    def __repr__(self) -> str:
        return f"<Engine {self.settings.describe()} · {len(self.active_jobs())} jobs in flight>"

    # -- public ---------------------------------------------------------------------------
    def submit(
        self,
        endpoint: str,
        arguments: dict[str, Any],
        *,
        options: SubmitOptions | None = None,
        on_update: Callable[..., None] | None = None,
        hooks: JobHooks | None = None,
    ) -> Job:
        """Start a job with validated arguments (image fields hold ImageInputs); returns at once."""
        if self.closed:
            raise KontextError("this engine is closed")
        job = Job(endpoint, labelled(arguments), self.cancel)
        if on_update is not None:
            job.on_update(on_update)
        run = _Run(job, endpoint, arguments, options or SubmitOptions(), hooks or JobHooks())
        if run.hooks.prepare is not None:
            run.hooks.prepare(job)
        self._runs[job] = run
        asyncio.run_coroutine_threadsafe(self._start(run), self._loop)
        return job

    def attach(
        self,
        endpoint: str,
        request_id: str,
        on_update: Callable[..., None] | None = None,
        hooks: JobHooks | None = None,
        arguments: dict[str, Any] | None = None,
    ) -> Job:
        """Follow a request already on fal (after a timeout, a crash, or from elsewhere) and collect it."""
        endpoints.get_endpoint(endpoint)
        job = Job(endpoint, dict(arguments or {}), self.cancel)
        job.request_id = request_id
        if on_update is not None:
            job.on_update(on_update)
        run = _Run(job, endpoint, dict(arguments or {}), SubmitOptions(), hooks or JobHooks(), phase="watching")
        if run.hooks.prepare is not None:
            run.hooks.prepare(job)
        self._runs[job] = run
        asyncio.run_coroutine_threadsafe(self._start(run, attach=True), self._loop)
        return job

    def cancel(self, job: Job, timeout: float = 15.0) -> bool:
        """Cancel a job on fal (or before it is sent). Blocks until fal answers."""
        run = self._runs.get(job)
        if run is None or job.done():
            return False
        future = asyncio.run_coroutine_threadsafe(self._cancel(run), self._loop)
        try:
            return future.result(timeout)
        except Exception as exc:  # the cancel request itself failed: say so, keep the job
            log.warning("cancel of %s failed: %s", job.request_id, exc)
            return False

    def active_jobs(self) -> list[Job]:
        return [j for j in self._runs.copy() if not j.done()]  # copy: the engine thread removes runs

    def close(self, timeout: float = 5.0) -> None:
        """Stop the loop. Jobs in flight stay on fal; their request ids are on their Jobs."""
        if self.closed:
            return
        self.closed = True

        async def shutdown() -> None:
            tasks = [r.task for r in self._runs.copy().values() if r.task is not None and not r.task.done()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._media.aclose()
            await self.transport.aclose()
            await self._loop.shutdown_asyncgens()

        done = asyncio.run_coroutine_threadsafe(shutdown(), self._loop)
        try:
            done.result(timeout)
        except concurrent.futures.TimeoutError:  # a busy machine: stop anyway; the daemon thread cannot outlive us
            done.cancel()
            log.warning("the engine's jobs did not stop within %.0f s; its loop is stopped regardless", timeout)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
            if not self._thread.is_alive():
                self._loop.close()

    # -- loop plumbing --------------------------------------------------------------------
    async def _http(self) -> httpx.AsyncClient:
        try:
            return await self._fal._client
        except MissingCredentialsError:
            raise FalError(
                "no fal key found: set FAL_KEY (or FAL_KEY_ID and FAL_KEY_SECRET), "
                "or leave both unset to use the offline sandbox"
            ) from None

    # -- one job --------------------------------------------------------------------------
    async def _start(self, run: _Run, attach: bool = False) -> None:
        run.task = asyncio.current_task()
        try:
            if attach:
                run.handle = fal_client.AsyncRequestHandle.from_request_id(
                    await self._http(), run.endpoint, run.job.request_id or ""
                )
                final = await self._watch(run)
            else:
                final = await self._send_and_watch(run)
            cancelled = final.get("error_type") in CANCEL_ERROR_TYPES
            if final.get("error") and (run.cancelled_remotely or cancelled):
                raise asyncio.CancelledError
            if final.get("error"):
                raise JobFailed(
                    f"fal reports the job failed: {final['error']}",
                    error_type=final.get("error_type"),
                    request_id=run.job.request_id,
                )
            run.phase = "collecting"
            result = await collect_result(
                await self._http(),
                self._media,
                job=run.job,
                endpoint=run.endpoint,
                arguments=run.arguments,
                response_url=run.handle.response_url,
            )
            if run.hooks.finalize is not None:
                try:
                    await asyncio.to_thread(run.hooks.finalize, result)
                except Exception:  # the images are in hand: never lose them over a bookkeeping error
                    log.exception("finalizing request %s failed", run.job.request_id)
            run.job.settle(result)
        except asyncio.CancelledError:
            self._fail(run, JobCancelled(_cancel_message(run)))
        except KontextError as exc:
            self._fail(run, exc)
        except Exception as exc:  # anything unexpected still ends the job with a readable error
            log.debug("job failed", exc_info=True)
            self._fail(run, fal_error(exc, run.job.request_id))
        finally:
            self._runs.pop(run.job, None)  # the Job (and its images) belong to whoever holds it now

    def _fail(self, run: _Run, error: BaseException) -> None:
        if run.hooks.on_failed is not None:
            try:
                error = run.hooks.on_failed(run.job, error) or error
            except Exception:
                log.exception("recording the end of %s failed", run.job.request_id)
        run.job.settle(error=error)

    async def _send_and_watch(self, run: _Run) -> dict[str, Any]:
        async with self._slots:
            if run.cancel_requested:
                raise asyncio.CancelledError
            run.phase = "uploading"
            sent = await self._materialize(run.arguments)
            run.phase = "submitting"
            try:
                run.handle = await asyncio.shield(self._submit(run, sent))
            except FalError:
                raise
            except Exception as exc:
                raise fal_error(exc, None) from None
            run.submitted_at = time.time()
            run.job.request_id = run.handle.request_id
            run.phase = "watching"
            if run.hooks.on_submitted is not None:
                try:
                    run.hooks.on_submitted(run.job)
                except Exception:
                    log.exception("recording the submit of %s failed", run.job.request_id)
            if run.cancel_requested:  # set by the user's thread while we awaited: mypy cannot see that
                await self._cancel_remote(run)  # type: ignore[unreachable]
            return await self._watch(run)

    async def _submit(self, run: _Run, sent: dict[str, Any]) -> Any:
        opts = run.options
        return await self._fal.submit(
            run.endpoint,
            sent,
            webhook_url=opts.webhook_url,
            priority=opts.priority,  # type: ignore[arg-type]
            start_timeout=opts.start_timeout,
            headers=opts.headers(),
        )

    async def _materialize(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """Turn ImageInputs into what fal accepts: their URL, a data URI, or an upload."""
        out: dict[str, Any] = {}
        for key, value in arguments.items():
            if key == "loras" and isinstance(value, list):
                out[key] = [await self._lora(v) for v in value]
            elif isinstance(value, list):
                out[key] = [await self._image_url(v) for v in value]
            else:
                out[key] = await self._image_url(value) if isinstance(value, ImageInput) else value
        return out

    async def _lora(self, lora: Any) -> Any:
        """A LoRA whose path is a local file: uploaded through fal's storage protocol, sent as its URL."""
        if isinstance(lora, dict) and isinstance(lora.get("path"), LoraFile):
            file = lora["path"]
            url = await self._uploader.upload(file.data, "application/octet-stream", file.filename())
            return {**lora, "path": url}
        return lora

    async def _image_url(self, image: Any) -> Any:
        if not isinstance(image, ImageInput):
            return image
        if image.url is not None:
            return image.url
        assert image.data is not None
        if len(image.data) <= self.settings.inline_max_bytes:
            return image.data_uri()
        return await self._uploader.upload(image.data, image.content_type or "image/png", image.filename())

    async def _watch(self, run: _Run) -> dict[str, Any]:
        timeout = self.settings.job_timeout
        try:
            return await asyncio.wait_for(self._follow(run), timeout)
        except asyncio.TimeoutError:
            raise JobTimeout(
                f"no result after {timeout:g} s; request {run.job.request_id} is left on fal: kx.resume() "
                f"(or %kontext resume) collects it later; without a journal, kx.attach({run.job.request_id!r}, "
                f"endpoint={run.endpoint!r})"
            ) from None

    async def _follow(self, run: _Run) -> dict[str, Any]:
        http = await self._http()
        rid = run.job.request_id
        apply = lambda data: self._apply(run, data)  # noqa: E731
        if self.settings.use_stream and self._stream_supported is not False:
            for _ in range(3):
                try:
                    final = await follow_stream(http, run.handle.status_url, apply, rid)
                    self._stream_supported = True
                    return final
                except StreamUnavailable as exc:
                    if exc.for_server:
                        self._stream_supported = False
                    break
                except (httpx.TransportError, RetriesExhausted) as exc:
                    log.debug("status stream broke (%s); reconnecting", exc)
        return await poll_status(http, run.handle.status_url, self.settings.poll_interval, apply, rid)

    def _apply(self, run: _Run, data: dict[str, Any]) -> None:
        status = data.get("status")
        logs = data.get("logs") or None
        if status == "IN_QUEUE":
            run.job.update_status("queued", position=data.get("queue_position"), logs=logs)
        elif status == "IN_PROGRESS":
            run.job.update_status("running", logs=logs)
        elif status == "COMPLETED":
            run.completed_at = time.time()
            if logs:
                run.job.update_status("running", logs=logs)

    # -- cancel ---------------------------------------------------------------------------
    async def _cancel(self, run: _Run) -> bool:
        if run.job.done():
            return False
        if run.phase in ("waiting", "uploading"):
            run.cancel_requested = True
            if run.task is not None:
                run.task.cancel()
            return True
        if run.phase == "submitting":
            run.cancel_requested = True  # cancelled on fal as soon as the submit answers
            return True
        if run.phase == "watching":
            return await self._cancel_remote(run)
        return False  # collecting: the images exist and are paid for; keep them

    async def _cancel_remote(self, run: _Run) -> bool:
        answer = await self._put_cancel(run)
        if answer in ("CANCELLATION_REQUESTED", "NOT_FOUND"):
            run.cancelled_remotely = answer == "CANCELLATION_REQUESTED"
            if run.task is not None and run.task is not asyncio.current_task():
                run.task.cancel()
            elif run.task is asyncio.current_task():
                raise asyncio.CancelledError
            return True
        return False  # ALREADY_COMPLETED: collect the result as usual

    async def _put_cancel(self, run: _Run) -> str:
        http = await self._http()
        response = await http.put(run.handle.cancel_url)
        try:
            body = response.json()
        except ValueError:
            body = {}
        answer = body.get("status") if isinstance(body, dict) else None
        if answer:
            return str(answer)
        if response.status_code >= 400:
            raise fal_error(response, run.job.request_id)
        return "CANCELLATION_REQUESTED"


def _cancel_message(run: _Run) -> str:
    if run.job.request_id is None:
        return "cancelled before it was sent to fal (nothing was charged)"
    where = "on fal" if run.cancelled_remotely else "locally"
    return f"request {run.job.request_id} was cancelled {where}"
