"""Following a job another kernel sends, for a caller whose identical request joined it: one fal request.

Kernels share nothing but the runs folder, so the joiner watches the job's row in the journal until the owner's
outcome is known, with no deadline while the owner is alive (``Journal.alive``: the one test of liveness). When the row
is done, its images are read from the runs folder (the files the owner saved, byte for byte). When nobody collects it
any more (its kernel died, or kept it for later after a timeout) the joiner claims it and collects it itself, so
nothing paid for is lost and it is billed once. When the owner's submit is unconfirmed (its reply was lost, or its
kernel stopped while sending it), the joiner is unconfirmed too and sends nothing: fal may have it. Only when the
job ends without images (failed, cancelled), or its kernel is gone before it began sending it (``claim_unsent``,
atomic in the journal), does the joiner send its own request (``send_own()``: through the one door, so it may join
another identical job or be answered from the cache, as any request). The session supplies how to collect and how
to send.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from ..errors import JobCancelled, SubmitUnconfirmed
from ..jobs import Job, relay
from .db import JobRecord
from .tracking import Tracker

POLL = 0.2
"""Seconds between two looks at the joined job's row."""
NEVER_SENT = "never_sent"
"""The error_type of a row retired by a joiner because its kernel stopped before sending it."""
ENDED = {
    "failed": "failed in the other kernel",
    "cancelled": "was cancelled in the other kernel",
}


def joined_notice(record: JobRecord, *, here: bool) -> str:
    where = "in this kernel" if here else "in another kernel on this runs folder"
    return (
        f"kontext_nb: an identical request is in flight {where} ({record.ref}): joined it, "
        "so it is sent and billed once"
    )


def collecting_notice(record: JobRecord) -> str:
    return (
        f"kontext_nb: an identical request ({record.ref}, request {record.request_id}) was sent before and nobody "
        "is collecting it: collecting it here instead of sending it again (it is billed once)"
    )


def resend_notice(record: JobRecord, why: str) -> str:
    return f"kontext_nb: {record.ref}, which this request joined, {why}: sending it itself"


def unconfirmed_error(record: JobRecord, why: str) -> SubmitUnconfirmed:
    return SubmitUnconfirmed(
        f"{record.ref}, which this request joined, {why}: fal may have it (and may bill it), so nothing was sent "
        f"here; check fal's request history (fal.ai/dashboard) before sending it again",
        request_id=record.request_id,
    )


def ended_why(record: JobRecord) -> str:
    if record.error_type == NEVER_SENT:
        return "was never sent (its kernel stopped before sending it)"
    return ENDED.get(record.status, record.status)


class Follower:
    """The joiner's side of a job in flight in another kernel: ``job`` is the handle its caller holds."""

    def __init__(
        self,
        tracker: Tracker,
        record: JobRecord,
        *,
        collect: Callable[[JobRecord], Job],
        send_own: Callable[[], Job],
        notice: Callable[[str], None],
        on_update: Callable[..., None] | None = None,
    ) -> None:
        self.tracker, self.record_id = tracker, record.id
        self._collect, self._send_own, self._notice = collect, send_own, notice
        self.job = Job(record.endpoint, record.arguments, self._cancel)
        self.job.journal_id, self.job.request_id = record.id, record.request_id
        self.job.elsewhere = True
        if on_update is not None:
            self.job.on_update(on_update)
        self._lock = threading.RLock()  # a caller's callback may cancel from inside a hand-over
        self._stopped = False
        self._source: Job | None = None
        self.job.update_status("running", logs=[_log(f"following {record.ref}, sent by another kernel")])

    def start(self) -> Follower:
        """Look at the row every ``POLL`` seconds on a thread of its own until the job is settled or handed over."""
        threading.Thread(target=self._run, name=f"kontext-join-{self.record_id}", daemon=True).start()
        return self

    def _run(self) -> None:
        try:
            while True:
                with self._lock:
                    if self._stopped or self.step():
                        return
                time.sleep(POLL)
        except Exception as exc:  # the row was deleted, the journal cannot be read: say so on the job
            self.job.settle(error=exc)
        finally:
            self.tracker.journal.close()  # this thread's connection

    def step(self) -> bool:
        """One look at the row; True once the job is settled or handed to a job of this session."""
        record = self.tracker.journal.get(self.record_id)
        self.job.request_id = record.request_id or self.job.request_id
        if record.status == "done":
            self.job.settle(self.tracker.load_result(record))
            return True
        if record.status == "unconfirmed":
            self.job.settle(error=unconfirmed_error(record, "was never confirmed by fal in the other kernel"))
            return True
        if record.status not in ("pending", "submitted"):
            return self._hand_over(self._send_own, resend_notice(record, ended_why(record)))
        if self.tracker.unattended(record):
            claimed = self.tracker.claim(record)
            if claimed is None:  # another kernel took it first: follow that one
                return False
            return self._hand_over(lambda: self._collect(claimed), collecting_notice(claimed))
        if record.request_id is None and not self.tracker.journal.alive(record.session):
            if not record.unsent:  # it stopped while sending: fal may have it
                why = "stopped in the other kernel while it was being sent, before fal's answer was recorded"
                self.job.settle(error=unconfirmed_error(record, why))
                return True
            if self.tracker.journal.claim_unsent(record, self.tracker.session_id) is None:
                return False  # another joiner took it (follow its request), or the owner began sending after all
            why = "was never sent (its kernel stopped before sending it)"
            self.tracker.journal.finished(
                record.id, status="failed", error=f"{why}: nothing was sent", error_type=NEVER_SENT
            )
            return self._hand_over(self._send_own, resend_notice(record, why))
        return False  # the owner is alive: its outcome is still to come, however long that takes

    def _hand_over(self, start: Callable[[], Job], message: str) -> bool:
        self._notice(message)
        try:
            self._source = start()
        except Exception as exc:  # a cap, a closed session: the caller hears why
            self.job.settle(error=exc)
            return True
        self.job.elsewhere = False  # from here on this session runs it: cancelling cancels on fal
        relay(self._source, self.job)
        return True

    def _cancel(self, job: Job) -> bool:
        """Cancel what this session runs for the caller; a job another kernel runs is only no longer waited for."""
        with self._lock:
            if self._source is not None:
                return self._source.cancel()
        return self.stop(
            f"stopped waiting for @{self.record_id}, which goes on in the other kernel (nothing is charged here)"
        )

    def stop(self, why: str) -> bool:
        """Stop following (the session closes, or the caller cancels); a job already handed over goes on."""
        with self._lock:
            self._stopped = True
            if self._source is not None:
                return False
        self.job.settle(error=JobCancelled(why))
        return True


def _log(message: str) -> dict[str, Any]:
    return {"message": message, "level": "INFO", "source": "kontext_nb", "timestamp": time.time()}
