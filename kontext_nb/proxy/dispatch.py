"""The proxy's own queue: jobs wait here, go upstream round-robin between students, and are watched to the end.

At most ``class_in_flight`` jobs run upstream at once. The rest wait in one FIFO per
student, and the dispatcher takes one job from each student in turn, so a student who sends
twenty jobs at once delays the others by one job each, not by twenty. Every job sent is
watched by the proxy itself (the upstream status stream, polling as the fallback) until it
completes; its result is fetched once and stored, and its cost settled, before the student
hears COMPLETED — so a result is never lost and a status poll never costs an upstream call.
Used from the server's event loop only.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kontext_nb import models
from kontext_nb.fal.protocol import CANCEL_ERROR_TYPES, http_error
from kontext_nb.images import sniff_content_type
from kontext_nb.models.pricing import LARGEST
from kontext_nb.sandbox import schema

from . import instances
from .classroom import DONE, SUBMITTING, UPSTREAM, WAITING, Classroom, StateError
from .job import FairQueue as FairQueue
from .job import ProxyJob as ProxyJob
from .limits import to_micros
from .upstream import Upstream

log = logging.getLogger("kontext_nb.proxy")

CANCELLED = {"detail": "Request was cancelled", "error_type": "request_cancelled"}
CANCEL_TYPES = CANCEL_ERROR_TYPES  # fal documents both; client_cancelled is HTTP 499
WATCH_ATTEMPTS = 12  # consecutive failures to follow a job before _collect pauses and starts again
HALF_SENT = (
    "the proxy stopped while sending this job and cannot tell whether fal received it: it still counts against "
    "your limits (fal may bill it); submit it again if you need the image"
)
TICK = 0.2  # seconds between an instance's looks at what other instances changed
COLLECT_PAUSE, COLLECT_PAUSE_MAX = 1.0, 60.0  # seconds between tries to reach an upstream that keeps failing


class Dispatcher:
    """Holds the waiting jobs, sends them upstream in fair order, and watches each to the end."""

    def __init__(
        self, classroom: Classroom, upstream: Upstream, limit: int | None, poll_interval: float, me: str = "local"
    ) -> None:
        self.classroom = classroom
        self.upstream = upstream
        self.limit = limit
        self.poll_interval = poll_interval
        self.me = me
        """This instance's name in the state: the owner of the jobs it sends and watches."""
        self.settings = ""
        """Its limits and session, as its heartbeat tells the other instances."""
        self.heartbeat = instances.HEARTBEAT
        """Seconds between its heartbeats; another instance's jobs are taken over after ``lapse`` without one."""
        self.jobs: dict[str, ProxyJob] = {}
        self.foreign: dict[str, ProxyJob] = {}
        """Unfinished jobs of other instances that this one's students asked about: re-read on each tick."""
        self.queue = FairQueue()
        self.running: set[ProxyJob] = set()
        self.closing = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._sends: set[asyncio.Future[Any]] = set()
        self._adopt_after = 0.0

    # ---- admission and order -------------------------------------------------------------
    def add(self, job: ProxyJob) -> None:
        """Queue a job already recorded (reserved) in the db, and send what may go now."""
        self.jobs[job.id] = job
        self.queue.push(job.student, job.id)
        self.pump()

    def resume(self) -> None:
        """After a restart: take this instance's jobs, and those of instances that stopped or were lost, again."""
        instances.beat(self.classroom, self.me, self.settings)
        instances.adopt(self.classroom, self.me, self.lapse)
        self.take(self.classroom.active_jobs(self.me))
        self._spawn(self.tick())

    def take(self, rows: list[dict[str, Any]]) -> None:
        """Queue the waiting jobs of these rows again and watch those that were upstream."""
        for row in rows:
            job = self.foreign.pop(row["id"], None)  # a stream here may be following it: the same object
            if job is None:
                job = ProxyJob.from_row(row)
            else:
                job.refresh(row)
            self.jobs[job.id] = job
            if job.state == WAITING:
                self.queue.push(job.student, job.id)
            elif job.upstream_id is None:  # stopped while sending: fal may have it (and bill it)
                self._finish(job, "failed", 502, {"detail": HALF_SENT}, error_type="proxy_restarted", unconfirmed=True)
            else:
                self.running.add(job)
                self._spawn(self._run(job))
        self.pump()

    def pump(self) -> None:
        """Send waiting jobs upstream while the class has room (counted over every instance), one student at a
        time."""
        moved = False
        while not self.closing and (self.limit is None or len(self.running) < self.limit):
            job_id = self.queue.peek()
            if job_id is None:
                break
            try:
                claimed = self.classroom.claim(job_id, self.me, self.limit)
            except StateError as exc:  # the state is away: the job waits here; the tick tries again
                log.warning("cannot send waiting jobs: %s", exc)
                self._trouble()
                break
            if claimed == "full":
                break
            self.queue.pop()
            moved = True
            job = self.jobs[job_id]
            if claimed == "gone":  # cancelled through another instance, or taken over by one
                row = self.classroom.job(job_id)
                if row is not None:
                    job.refresh(row)
                continue
            job.state = SUBMITTING
            self.running.add(job)
            self._spawn(self._run(job))
            job.notify()
        if moved:
            for job_id in self.queue.order():  # positions moved up
                self.jobs[job_id].notify()

    async def tick(self) -> None:
        """Every few tenths of a second: send what waits when another instance freed a slot; wake the watchers of
        other instances' jobs that moved; say this instance is alive and take over the jobs of lost ones."""
        beat = time.monotonic()  # resume() has just beaten
        while not self.closing:
            try:
                if len(self.queue):
                    self.pump()
                for job_id, job in list(self.foreign.items()):
                    if not job.followers:  # polls read the row themselves: only streams need it read here
                        self.foreign.pop(job_id, None)
                        continue
                    row = self.classroom.job_status(job_id)
                    if row is None or row["state"] == DONE or row.get("owner") == self.me:
                        self.foreign.pop(job_id, None)
                    if row is not None:
                        job.refresh(row)
                if time.monotonic() - beat > self.heartbeat:
                    instances.beat(self.classroom, self.me, self.settings)
                    beat = time.monotonic()
                if time.monotonic() > self._adopt_after:  # never right after an outage: the others beat first
                    taken = set(instances.adopt(self.classroom, self.me, self.lapse))
                    if taken:
                        log.info("took over %d jobs of a proxy instance that stopped or was lost", len(taken))
                        self.take([r for r in self.classroom.active_jobs(self.me) if r["id"] in taken])
            except StateError as exc:  # the state's database is away: try again on the next tick
                log.warning("the proxy's state cannot be reached: %s", exc)
                self._trouble()
            await asyncio.sleep(TICK)

    @property
    def lapse(self) -> float:
        return self.heartbeat * instances.LAPSE_BEATS

    def _trouble(self) -> None:
        """The state was unreachable: every instance's heartbeat may have lapsed meanwhile, so none is taken over
        until they have all had time to beat again."""
        self._adopt_after = time.monotonic() + self.lapse

    def position(self, job: ProxyJob) -> int | None:
        if job.state == WAITING and job.id in self.foreign:
            return self.classroom.waiting_before(job.id)
        if job.state == WAITING:
            return self.queue.position(job.id)
        if job.state == SUBMITTING:
            return 0
        return job.upstream_position if job.upstream_status == "IN_QUEUE" else None

    def lookup(self, job_id: str) -> ProxyJob | None:
        """A job of this run, or one from the db: a finished one (old jobs' status and results stay available),
        or one another instance watches (read from its row now, and again on every tick while it is asked about)."""
        job = self.jobs.get(job_id) or self.foreign.get(job_id)
        if job is not None and (job.id not in self.foreign or job.done):
            return job
        row = self.classroom.job_status(job_id)
        if row is None:
            return None
        if job is None:
            job = ProxyJob.from_row(row)
        else:
            job.refresh(row)
        if job.done:
            self.foreign.pop(job_id, None)
            self.jobs[job_id] = job
        else:
            self.foreign[job_id] = job
        return job

    # ---- cancel --------------------------------------------------------------------------
    async def cancel(self, job: ProxyJob) -> tuple[int, str]:
        """(HTTP status, fal's cancel answer) for a student's cancel."""
        if job.done:
            return 400, "ALREADY_COMPLETED"
        if job.state == WAITING:
            self.queue.remove(job.student, job.id)
            if self._finish(job, "cancelled", 400, CANCELLED, error_type="request_cancelled", only_from=WAITING):
                self.pump()
                return 202, "CANCELLATION_REQUESTED"
            row = self.classroom.job(job.id)  # another instance sent it just now: cancel it as a running job
            if row is not None:
                job.refresh(row)
            if job.state == DONE:
                return 400, "ALREADY_COMPLETED"
        if job.state == SUBMITTING or job.urls is None:
            job.cancel_requested = True  # cancelled upstream the moment the submit answers
            if job.id not in self.foreign:
                return 202, "CANCELLATION_REQUESTED"
            self.classroom.update_job(job.id, cancel_requested=1)  # the sending instance reads it once sent...
            row = self.classroom.job(job.id)
            if row is None or row["state"] != UPSTREAM:
                return 202, "CANCELLATION_REQUESTED"
            job.refresh(row)  # ...unless it read before this was written: then it is upstream now, cancelled here
            if job.urls is None:
                return 202, "CANCELLATION_REQUESTED"
        status, body = await self.upstream.get_json(job.urls["cancel_url"], "PUT")
        answer = body.get("status") if isinstance(body, dict) else None
        return status, str(answer or ("CANCELLATION_REQUESTED" if status < 400 else "NOT_FOUND"))

    # ---- one job upstream ----------------------------------------------------------------
    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, job: ProxyJob) -> None:
        try:
            if job.upstream_id is None:
                send = asyncio.ensure_future(self._send(job))
                self._sends.add(send)
                send.add_done_callback(self._sends.discard)
                if not await asyncio.shield(send):  # a stop does not cut a submit in half
                    return
            if job.cancel_requested:
                assert job.urls is not None
                await self.upstream.get_json(job.urls["cancel_url"], "PUT")
            await self._collect(job)
        except asyncio.CancelledError:
            raise  # the proxy is stopping: the db says where this job was; a restart takes it up
        except Exception as exc:
            log.warning("job %s of %s: %s", job.id, job.student, self.upstream.explain(exc))
            self._finish(job, "failed", 502, {"detail": f"upstream error: {self.upstream.explain(exc)}"})
        finally:
            self.running.discard(job)
            self.pump()

    async def _send(self, job: ProxyJob) -> bool:
        """Submit upstream; True once the upstream accepted (its id and URLs are in the db)."""
        try:
            body = job.body if job.body is not None else (self.classroom.job(job.id) or {}).get("body")
            response = await self.upstream.submit(job.endpoint, body or {}, job.headers)
            del body
        except Exception as exc:
            self._finish(job, "failed", 502, {"detail": f"upstream error: {self.upstream.explain(exc)}"})
            return False
        if response.status_code in (401, 403):  # the class key was refused: the instructor's problem, not the student's
            detail = _json_body(response)
            detail = detail.get("detail") if isinstance(detail, dict) else None
            log.warning("the upstream refused the class key (HTTP %s): %s", response.status_code, detail)
            text = (
                f"upstream error: the upstream refused the class's key (HTTP {response.status_code}); "
                "tell your instructor"
            )
            self._finish(job, "failed", 502, {"detail": text}, error_type="upstream_auth")
            return False
        if response.status_code >= 400:
            err = http_error(response)
            body = _json_body(response) or {"detail": str(err)}
            self._finish(job, "failed", response.status_code, body, error_type=err.error_type)
            return False
        data = response.json()
        job.upstream_id = str(data["request_id"])
        job.urls = {k: str(data[k]) for k in ("status_url", "response_url", "cancel_url")}
        job.state, job.body = UPSTREAM, None
        job.upstream_status, job.upstream_position = "IN_QUEUE", data.get("queue_position")
        fields = {"upstream_id": job.upstream_id, "upstream_urls": job.urls, "upstream_status": "IN_QUEUE"}
        moved = await self._stored(job, lambda: self.classroom.move_job(job.id, SUBMITTING, state=UPSTREAM, **fields))
        if not moved:
            log.warning(
                "job %s of %s was given up while it was being sent: cancelling it upstream", job.id, job.student
            )
            await self.upstream.get_json(job.urls["cancel_url"], "PUT")
            row = self.classroom.job(job.id)
            if row is not None:
                job.refresh(row)
            return False
        row = self.classroom.job(job.id)
        job.cancel_requested = job.cancel_requested or bool(row and row["cancel_requested"])
        log.info("job %s of %s is upstream", job.id, job.student)
        job.notify()
        return True

    async def _stored(self, job: ProxyJob, write: Callable[[], bool]) -> bool:
        """A write about a job the upstream has accepted (and may bill): tried until the state takes it, however
        long its database is away; the upstream's id stays in memory meanwhile."""
        pause = COLLECT_PAUSE
        while True:
            try:
                return write()
            except StateError as exc:
                self._trouble()
                log.warning(
                    "job %s of %s (upstream id %s): the proxy's state cannot be reached (%s); trying again in %.0f s",
                    job.id,
                    job.student,
                    job.upstream_id,
                    exc,
                    pause,
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, COLLECT_PAUSE_MAX)

    async def _collect(self, job: ProxyJob) -> None:
        """Follow an upstream job to COMPLETED and store its result.

        fal may bill a job the proxy has lost touch with, so trouble reaching the upstream is waited
        out with the reservation held, never turned into a failure; only the upstream saying the
        request is gone (404) or failed ends it without a result.
        """
        pause = COLLECT_PAUSE
        while True:
            try:
                final = await self._watch(job)
                if final is None:
                    return
                assert job.urls is not None
                status, body, headers = await self.upstream.result(job.urls["response_url"])
                body = await self._store_inline(job, body)
                self._complete(job, final, status, body, headers)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the upstream, or the state's database (the result is read again)
                if isinstance(exc, StateError):
                    self._trouble()
                where = "the proxy's state" if isinstance(exc, StateError) else "the upstream"
                log.warning(
                    "job %s of %s: %s cannot be reached (%s); trying again in %.0f s",
                    job.id,
                    job.student,
                    where,
                    exc if isinstance(exc, StateError) else self.upstream.explain(exc),
                    pause,
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, COLLECT_PAUSE_MAX)

    async def _watch(self, job: ProxyJob) -> dict[str, Any] | None:
        assert job.urls is not None
        failures = 0
        while True:
            try:
                return await self.upstream.follow(
                    job.urls["status_url"], lambda data: self._apply(job, data), self.poll_interval
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if getattr(exc, "status_code", None) == 404:
                    self._finish(job, "failed", 502, {"detail": "upstream error: the upstream lost this request"})
                    return None
                failures += 1
                if failures >= WATCH_ATTEMPTS:
                    raise
                log.info("following job %s: %s; trying again", job.id, self.upstream.explain(exc))
                await asyncio.sleep(min(0.25 * 2**failures, 10.0))

    async def _store_inline(self, job: ProxyJob, body: Any) -> Any:
        """``sync_mode`` images come back inline (data URIs): store each as a file upstream, as any other image is,
        so the instructor page, the class duel and the student see a picture and the db keeps a URL, not megabytes.
        An image that cannot be stored stays inline (nothing is lost)."""
        images = body.get("images") if isinstance(body, dict) else None
        if not isinstance(images, list):
            return body
        for meta in images:
            url = meta.get("url") if isinstance(meta, dict) else None
            if not (isinstance(url, str) and url.startswith("data:image/")):
                continue
            try:
                data = base64.b64decode(url.partition(",")[2], validate=True)
            except (binascii.Error, ValueError):
                continue
            kind = sniff_content_type(data)
            if kind is None:
                continue
            try:
                response = await self.upstream.upload(data, {"content-type": kind})
                stored = response.json().get("access_url") if response.status_code < 400 else None
            except Exception as exc:
                log.warning("job %s: an inline image could not be stored: %s", job.id, self.upstream.explain(exc))
                continue
            if isinstance(stored, str):
                meta["url"] = stored
                meta.setdefault("content_type", kind)
        return body

    def _apply(self, job: ProxyJob, data: dict[str, Any]) -> None:
        status = data.get("status")
        if status == "COMPLETED":
            job.logs = list(data.get("logs") or job.logs)
            return  # COMPLETED is told only once the result is stored
        before = (job.upstream_status, job.upstream_position, len(job.logs))
        job.upstream_status = status if status in ("IN_QUEUE", "IN_PROGRESS") else job.upstream_status
        job.upstream_position = data.get("queue_position") if status == "IN_QUEUE" else None
        if data.get("logs"):
            job.logs = list(data["logs"])
        if (job.upstream_status, job.upstream_position, len(job.logs)) != before:
            job.notify()
        if job.upstream_status != before[0] and job.upstream_status == "IN_PROGRESS":  # for the other instances
            with contextlib.suppress(StateError):  # only shown elsewhere: not worth a retry
                self.classroom.update_job(job.id, upstream_status="IN_PROGRESS")

    def _complete(self, job: ProxyJob, final: dict[str, Any], status: int, body: Any, headers: dict[str, str]) -> None:
        """The upstream said COMPLETED and answered the result read: whatever it says is the job's end."""
        job.metrics = dict(final.get("metrics") or {})
        error, error_type = final.get("error"), final.get("error_type")
        error_type = error_type or headers.get("x-fal-error-type")
        if status == 200 and not error and isinstance(body, dict):
            self._finish(job, "ok", 200, body)
            return
        types = (error_type, body.get("error_type") if isinstance(body, dict) else None)
        cancelled = next((t for t in types if t in CANCEL_TYPES), None)
        if cancelled is not None or status == 499:
            kind = cancelled or "client_cancelled"
            self._finish(
                job, "cancelled", status, body, error="Request was cancelled", error_type=kind, headers=headers
            )
        else:
            detail = body.get("detail") if isinstance(body, dict) else None
            text = error or (detail if isinstance(detail, str) else None) or f"upstream answered HTTP {status}"
            self._finish(job, "failed", status, body, error=str(text), error_type=error_type, headers=headers)

    def _finish(
        self,
        job: ProxyJob,
        outcome: str,
        status: int,
        body: Any,
        *,
        error: str | None = None,
        error_type: str | None = None,
        headers: dict[str, str] | None = None,
        only_from: str | None = None,
        unconfirmed: bool = False,
    ) -> bool:
        """Store the result (with fal's error headers), settle or release the reservation, then tell COMPLETED.

        False when the job had ended already (through another instance: a cancel while it waited), or was no
        longer in state ``only_from``: the row is left as it is and the job takes it on."""
        if job.done:
            return False
        if outcome == "ok":
            metas = [m for m in models.normalise(body).images if m.get("url")]  # images[] or image
            images = len(metas)
            urls = [m["url"] if not m["url"].startswith("data:") else "data:" for m in metas]  # one not stored
            cost = to_micros(recorded_cost(job, _sizes(metas)))
        else:
            images, urls, cost = 0, None, 0
            if error is None:
                detail = body.get("detail") if isinstance(body, dict) else None
                error = detail if isinstance(detail, str) else f"upstream answered HTTP {status}"
            error_type = error_type or (body.get("error_type") if isinstance(body, dict) else None)
        text = self.upstream.scrub(_rename(body, job))
        ended = self.classroom.finish(
            job.id,
            images,
            cost,
            outcome == "ok",
            only_from,
            unconfirmed=unconfirmed,
            outcome=outcome,
            error=error,
            error_type=error_type,
            finished=time.time(),
            metrics=job.metrics,
            result_status=status,
            result=text,
            result_headers=headers or None,
            image_urls=urls,
            body=None,
        )
        if not ended:
            row = self.classroom.job(job.id)
            if row is not None:
                job.refresh(row)
            return False
        job.state, job.outcome, job.error, job.error_type, job.body = DONE, outcome, error, error_type, None
        log.info("job %s of %s: %s%s", job.id, job.student, outcome, f" ({images} images)" if outcome == "ok" else "")
        job.notify()
        return True

    # ---- stopping ------------------------------------------------------------------------
    def begin_close(self) -> None:
        """No more dispatching; wake every watcher so open status streams end."""
        self.closing = True
        for job in list(self.jobs.values()):
            job.notify()

    async def aclose(self, grace: float = 5.0) -> None:
        """Let submits in progress finish (so their upstream ids are recorded), stop watching, then hand this
        instance's jobs to the others (or to the next start)."""
        self.closing = True
        if self._sends:
            await asyncio.wait(list(self._sends), timeout=grace)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            instances.leave(self.classroom, self.me)
        except StateError as exc:  # the others take its jobs over once its heartbeat lapses
            log.warning("could not hand this instance's jobs over: %s", exc)


def _json_body(response: Any) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _rename(body: Any, job: ProxyJob) -> str:
    """The body as JSON text with the upstream's request id replaced by the proxy's, except inside URLs
    (a media file may be named after it: the name is part of the address)."""
    text = json.dumps(body)
    if not job.upstream_id:
        return text
    return re.sub(r"(?<![/\w.-])" + re.escape(job.upstream_id), job.id, text)


def recorded_cost(job: ProxyJob, sizes: list[tuple[int, int] | None]) -> float:
    """What a finished job costs by the registry's rule (models.billed) from what came back; an image or an input of
    unknown size is priced as the largest fal makes (never under what fal bills)."""
    model = models.get(job.endpoint)
    outputs = [s or LARGEST for s in sizes]
    if job.input_sizes is not None:
        inputs = [s or LARGEST for s in job.input_sizes]
    else:  # a restart lost them: every image the request named, at the largest
        named = [v for k, v in job.arguments.items() if k in model.image_inputs and v]
        inputs = [LARGEST] * sum(len(v) if isinstance(v, list) else 1 for v in named)
    return models.billed(model, schema.with_defaults(job.endpoint, job.arguments), outputs, inputs)  # what it ran


def _sizes(metas: Sequence[Mapping[str, Any]]) -> list[tuple[int, int] | None]:
    """Each returned image's (width, height) as fal reports it; None where it does not (priced high)."""
    out: list[tuple[int, int] | None] = []
    for m in metas:
        w, h = m.get("width"), m.get("height")
        ok = isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0
        out.append((int(w), int(h)) if ok else None)  # type: ignore[arg-type]
    return out
