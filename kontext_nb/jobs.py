"""Job handles: what a non-blocking call returns at once, and the seam for widgets.

A Job is updated from the engine thread and read from any thread. Callbacks fire on the
engine thread on every status change, in order; a failing callback is logged, never
allowed to break the job.
"""

from __future__ import annotations

import concurrent.futures
import html
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .endpoints import format_cost
from .errors import Interrupted, JobCancelled
from .keys import redact

if TYPE_CHECKING:
    from .result import Result

log = logging.getLogger(__name__)

State = Literal["queued", "running", "done", "failed", "cancelled"]
WAIT_SLICE = 0.1
FINAL_STATES: frozenset[str] = frozenset({"done", "failed", "cancelled"})


def queue_place(position: int | None) -> str:
    """Where a queued job stands, in words (fal's queue_position counts the requests ahead: 0 is next), the one
    wording every status line uses."""
    if position is None:
        return "waiting to be sent"
    if position <= 0:
        return "next in fal's queue"
    return f"{position} ahead in fal's queue"


@dataclass(frozen=True)
class JobStatus:
    """Where a job is: queued (with fal's queue position), running (with logs), or finished."""

    state: State
    position: int | None = None
    logs: tuple[dict[str, Any], ...] = ()
    error: str | None = None
    error_type: str | None = None
    elapsed: float = 0.0

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES

    def __repr__(self) -> str:
        return f"<JobStatus {self}>"

    def __str__(self) -> str:
        if self.state == "queued":
            return f"queued ({queue_place(self.position)})"
        if self.state == "running":
            last = f": {self.logs[-1].get('message', '')}" if self.logs else ""
            return f"running ({self.elapsed:.1f} s){last}"
        if self.state == "failed":
            return f"failed: {self.error}"
        return self.state


Callback = Callable[["Job", JobStatus], None]


class Job:
    """A Kontext job on fal (or the sandbox): status, logs, cancel, and its Result."""

    def __init__(self, endpoint: str, arguments: dict[str, Any], canceller: Callable[[Job], bool]) -> None:
        self.endpoint = endpoint
        self.arguments = arguments
        """The arguments as validated (images described, not inlined)."""
        self.request_id: str | None = None
        self.journal_id: int | None = None
        """The job's row in the run journal ('@12' names it), when it has one."""
        self.created = time.time()
        self._canceller = canceller
        self._lock = threading.Lock()
        self._status = JobStatus("queued")
        self._callbacks: list[Callback] = []
        self._future: concurrent.futures.Future[Result] = concurrent.futures.Future()
        self._started: float | None = None
        self.interrupted = False
        """Whether a kernel interrupt cancelled this job (so a report of the interrupted run counts it once)."""
        self.elsewhere = False
        """Whether another kernel runs this job and this handle only follows it: cancelling stops the wait here."""

    # -- reading ------------------------------------------------------------------------
    @property
    def status(self) -> JobStatus:
        return self._status

    @property
    def state(self) -> State:
        return self._status.state

    def done(self) -> bool:
        return self._future.done()

    def result(self, timeout: float | None = None, *, interrupt_cancels: bool = True) -> Result:
        """Wait for the images. A kernel interrupt while waiting cancels the job on fal, unless the caller only
        collects a job made earlier (resume): then the interrupt stops the wait and the job goes on."""
        try:
            return self._wait(timeout)
        except concurrent.futures.TimeoutError:
            if self._future.done():  # the job itself timed out (JobTimeout): not our wait
                raise
            raise TimeoutError(
                f"job {self.request_id or '(not yet submitted)'} is still {self.state} after {timeout} s; "
                "it keeps running: call .result() again to wait"
            ) from None
        except concurrent.futures.CancelledError:
            raise JobCancelled(f"job {self.request_id} was cancelled") from None
        except KeyboardInterrupt:
            if not interrupt_cancels:
                raise
            raise interrupted([self]) from None

    def _wait(self, timeout: float | None) -> Result:
        # Wait in slices: a blocked lock wait may not see a SIGINT delivered to another
        # thread, and the kernel's interrupt must reach us while a job runs.
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            step = WAIT_SLICE if deadline is None else max(0.0, min(WAIT_SLICE, deadline - time.monotonic()))
            try:
                return self._future.result(step)
            except concurrent.futures.TimeoutError:
                if self._future.done() or (deadline is not None and time.monotonic() >= deadline):
                    raise

    def exception(self, timeout: float | None = None) -> BaseException | None:
        return self._future.exception(timeout)

    def __await__(self) -> Any:
        import asyncio

        return asyncio.wrap_future(self._future).__await__()

    # -- acting -------------------------------------------------------------------------
    def cancel(self) -> bool:
        """Cancel on fal (or before sending). False if it had already finished."""
        if self.done():
            return False
        return self._canceller(self)

    def on_update(self, callback: Callback) -> Callable[[], None]:
        """Call ``callback(job, status)`` on every change; returns a function that unsubscribes."""
        with self._lock:
            self._callbacks.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)

        return unsubscribe

    # -- the engine's side: whoever runs the job reports through these ------------------------
    def update_status(self, state: State, **fields: Any) -> None:
        """A new state from fal (queued with a position, running with logs); callbacks hear of real changes."""
        self._fire(self._set(state, **fields))

    def _set(self, state: State, **fields: Any) -> JobStatus | None:
        with self._lock:
            if self._status.finished:
                return None
            if state == "running" and self._started is None:
                self._started = time.time()
            old = self._status
            logs = fields.pop("logs", None)
            new = JobStatus(
                state,
                logs=_merge_logs(old.logs, logs) if logs else old.logs,
                elapsed=time.time() - (self._started or self.created),
                **fields,
            )
            same = (new.state, new.position, len(new.logs), new.error)
            if same == (old.state, old.position, len(old.logs), old.error):
                return None
            self._status = new
            return new

    def _fire(self, status: JobStatus | None) -> None:
        if status is None:
            return
        with self._lock:
            callbacks = list(self._callbacks)
        for cb in callbacks:
            try:
                cb(self, status)
            except Exception:
                log.exception("a job callback failed")

    def settle(self, result: Result | None = None, error: BaseException | None = None) -> None:
        """Record the outcome (once; later calls are ignored): the result is readable before callbacks hear of it."""
        if self._future.done():
            return
        if result is not None:
            status = self._set("done")
            self._future.set_result(result)
        elif isinstance(error, JobCancelled):
            status = self._set("cancelled", error=str(error))
            self._future.set_exception(error)
        else:
            assert error is not None
            status = self._set("failed", error=redact(str(error)), error_type=getattr(error, "error_type", None))
            self._future.set_exception(error)
        self._fire(status)

    # -- display ------------------------------------------------------------------------
    def __repr__(self) -> str:
        rid = self.request_id or "not yet submitted"
        return f"<Job {self.endpoint} request {rid}: {self._status}>"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        if self.done() and self._future.exception() is None:
            return self._future.result()._repr_mimebundle_(include, exclude)
        text = repr(self)
        return {"text/plain": text, "text/html": f"<code>{html.escape(text)}</code>"}


def relay(source: Job, target: Job) -> None:
    """Let ``target`` (the handle a caller holds) follow ``source`` (the job doing the work): its request id and
    journal id, every status change, and its outcome."""

    def forward(job: Job, status: JobStatus) -> None:
        target.request_id = job.request_id or target.request_id
        target.journal_id = job.journal_id or target.journal_id
        if not job.done():
            target.update_status(status.state, position=status.position, logs=list(status.logs))
            return
        error = job.exception(0)
        if error is None:
            target.settle(job.result(0))
        else:
            target.settle(error=error)

    source.on_update(forward)
    if source.done():  # it may have ended before we listened: settling twice is ignored
        forward(source, source.status)


def interrupted(jobs: list[Job]) -> Interrupted:
    """Cancel the jobs of a run a kernel interrupt stopped, and say in one line what was cancelled and what it cost
    (fal bills only finished images: a cancelled job costs nothing). A job another kernel runs goes on there."""
    followed = [j for j in jobs if j.elsewhere and not j.done()]
    for job in jobs:
        job.interrupted = job.cancel() or job.interrupted
    cancelled = [j for j in jobs if j.interrupted and j not in followed]
    finished = [j for j in jobs if j.state == "done"]
    cost = sum(j.result(0).cost for j in finished)
    n = len(cancelled)
    them = "them" if n != 1 else "it"
    parts = []
    if n or not followed:
        parts.append(f"cancelled {n} job{'s' if n != 1 else ''} on fal (nothing is charged for {them})")
    if followed:
        k = len(followed)
        parts.append(f"stopped waiting for {k} job{'s' if k != 1 else ''} another kernel runs (it goes on there)")
    if finished:
        parts.append(f"{len(finished)} had already finished ({format_cost(cost)}, kept in the journal)")
    return Interrupted("; ".join(parts))


def _merge_logs(old: tuple[dict[str, Any], ...], new: list[dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    """fal sends the whole log so far with each status; keep each line once, in order."""
    seen = {(d.get("timestamp"), d.get("message")) for d in old}
    merged = list(old)
    for line in new:
        key = (line.get("timestamp"), line.get("message"))
        if key not in seen:
            seen.add(key)
            merged.append(line)
    return tuple(merged)
