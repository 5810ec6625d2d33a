"""Following a job another kernel sends, for a caller whose identical request joined it: one fal request.

Kernels share nothing but the runs folder, so the joiner watches the job's row in the journal. When the row is
done, its images are read from the runs folder (the files the owner saved, byte for byte). When nobody collects it
any more (its kernel died, or kept it for later after a timeout) the joiner claims it and collects it itself, so
nothing paid for is lost and it is billed once. When it ends without images (failed, cancelled, never confirmed),
or gets no request id within ``SUBMIT_WAIT`` while its kernel is still sending it, the joiner sends its own
request (``send_own(True)``: it may join another identical job or be answered from the cache, as any request;
``send_own(False)`` after the wait, so it does not join that same row again). The session supplies how to collect
and how to send.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from ..errors import JobCancelled
from ..jobs import Job, relay
from .db import JobRecord, owner_alive
from .tracking import Tracker

POLL = 0.2
"""Seconds between two looks at the joined job's row."""
SUBMIT_WAIT = 120.0
"""Seconds to wait for a job another kernel is still sending (uploading, or waiting for a free slot) to get fal's
request id; after that the joiner sends its own (it may then be billed twice, but never waits forever)."""
ENDED = {
    "failed": "failed in the other kernel",
    "cancelled": "was cancelled in the other kernel",
    "unconfirmed": "was never confirmed by fal in the other kernel",
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


class Follower:
    """The joiner's side of a job in flight in another kernel: ``job`` is the handle its caller holds."""

    def __init__(
        self,
        tracker: Tracker,
        record: JobRecord,
        *,
        collect: Callable[[JobRecord], Job],
        send_own: Callable[[bool], Job],
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
        self._since = time.monotonic()
        self.job.update_status("running", logs=[_log(f"following {record.ref}, sent by another kernel")])
        threading.Thread(target=self._run, name=f"kontext-join-{record.id}", daemon=True).start()

    def _run(self) -> None:
        try:
            while True:
                with self._lock:
                    if self._stopped or self._step():
                        return
                time.sleep(POLL)
        except Exception as exc:  # the row was deleted, the journal cannot be read: say so on the job
            self.job.settle(error=exc)
        finally:
            self.tracker.journal.close()  # this thread's connection

    def _step(self) -> bool:
        """One look at the row; True once the job is settled or handed to a job of this session."""
        record = self.tracker.journal.get(self.record_id)
        self.job.request_id = record.request_id or self.job.request_id
        if record.status == "done":
            self.job.settle(self.tracker.load_result(record))
            return True
        if record.status not in ("pending", "submitted"):
            why = ENDED.get(record.status, record.status)
            return self._hand_over(lambda: self._send_own(True), resend_notice(record, why))
        if self.tracker.unattended(record):
            claimed = self.tracker.claim(record)
            if claimed is None:  # another kernel took it first: follow that one
                return False
            return self._hand_over(lambda: self._collect(claimed), collecting_notice(claimed))
        if record.request_id is None and not owner_alive(record.session):
            why = "stopped in the other kernel before fal answered (fal may have it; see its request history)"
            return self._hand_over(lambda: self._send_own(True), resend_notice(record, why))
        if record.request_id is None and time.monotonic() - self._since > SUBMIT_WAIT:
            why = f"got no request id from fal within {SUBMIT_WAIT:g} s in the other kernel"
            return self._hand_over(lambda: self._send_own(False), resend_notice(record, why))  # not that row again
        return False

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
