"""What the journal adds to a session: rows before submit, files on completion, the cache,
the budget, job references, and results loaded back from disk.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from .._version import __version__
from ..config import ANNOUNCED, Settings
from ..endpoints import DEFAULT_CONTENT_TYPE, format_cost, get_endpoint
from ..errors import (
    ConfirmationRequired,
    DownloadFailed,
    FalError,
    ImageTooLarge,
    JobCancelled,
    JobFailed,
    JournalError,
    SubmitUnconfirmed,
    TakenOver,
)
from ..fal.engine import JobHooks
from ..images import ImageInput, LoraFile, decode_image, image_inputs, labelled, sniff_content_type
from ..jobs import Job
from ..result import Result
from . import caps
from . import folder as store
from .caps import Kernel
from .db import Holdings, JobRecord, Journal, NewJob, default_folder, left_behind, unattended
from .ledger import check_zone
from .mounts import network_notice

REF_PATTERN = re.compile(r"^@(last|-\d+|\d+)$")


def is_ref(value: Any) -> bool:
    """Whether a value names a journal job rather than an image (used for edit sources)."""
    if isinstance(value, (Result, JobRecord)):
        return isinstance(value, JobRecord) or value.journal_id is not None
    if isinstance(value, int) and not isinstance(value, bool):
        return True
    return isinstance(value, str) and bool(REF_PATTERN.match(value.strip()))


def source_name() -> str:
    """The notebook (Jupyter tells kernels its path) or the script this job came from."""
    name = os.environ.get("JPY_SESSION_NAME") or (sys.argv[0] if sys.argv and sys.argv[0] else "")
    return os.path.basename(name) if name and not name.startswith("-") else "<interactive>"


class Tracker:
    """The journal side of one session."""

    def __init__(self, settings: Settings, notice: Callable[[str], None], kernel: Kernel | None = None) -> None:
        self.journal = Journal(settings.runs_dir, settings.journal())
        self.kernel = kernel or Kernel()
        """The kernel's money identity: the Session keeps one across runs_dir changes (its session cap is its)."""
        if self.journal.url is None:  # a shared journal counts this kernel's spend in every runs folder itself
            self.kernel.folders.add(self.journal.folder)
        self.session_id = self.kernel.id
        self.journal.keep_alive(self.session_id)
        self.source = source_name()
        self.notice = notice
        self.settings = settings
        self._agree_zone()
        self._warn_network()
        self._active: set[int] = self.kernel.active_in(self.journal.folder)
        self._unsaved: dict[int, tuple[Result, int | None]] = {}
        """Results whose images or row could not be written (a full disk), by journal id: resume saves them."""
        self.started = time.time()

    def use_settings(self, settings: Settings) -> None:
        """New settings on the same runs folder (a budget_timezone is agreed with the folder's)."""
        changed = settings.budget_timezone != self.settings.budget_timezone
        self.settings = settings
        if changed:
            self._agree_zone()

    def _warn_network(self) -> None:
        """A SQLite journal on NFS, CIFS or FUSE: one line recommending journal_url, once per runs folder."""
        if self.journal.url is not None or f"network:{self.journal.folder}" in ANNOUNCED:
            return
        ANNOUNCED.add(f"network:{self.journal.folder}")
        notice = network_notice(self.journal.folder)
        if notice:
            self.notice(notice)

    def _agree_zone(self) -> None:
        if self.settings.budget_timezone is not None:
            check_zone(self.settings.budget_timezone)
        _, notice = self.journal.agree_zone(self.settings.budget_timezone)
        if notice:
            self.notice(notice)

    def close(self) -> None:
        """The session closes: this thread's connection, and its heartbeat on a shared journal."""
        self.journal.let_go(self.session_id)
        self.journal.close()

    @staticmethod
    def folder_for(settings: Settings) -> Path:
        return Path(settings.runs_dir).expanduser().resolve() if settings.runs_dir else default_folder()

    # -- references -------------------------------------------------------------------------
    def resolve(self, ref: Any) -> JobRecord:
        """A journal id (12, '@12'), '@last', '@-2' (second to last), a Result or a JobRecord."""
        if isinstance(ref, JobRecord):
            return ref
        if isinstance(ref, Result):
            if ref.journal_id is None:
                raise JournalError("that Result is not in the journal (it was made without one)")
            return self.journal.get(ref.journal_id)
        if isinstance(ref, int) and not isinstance(ref, bool):
            return self.journal.get(ref)
        text = ref.strip() if isinstance(ref, str) else ""
        if text.isdigit():
            return self.journal.get(int(text))
        match = REF_PATTERN.match(text)
        if match is None:
            raise JournalError(
                f"unknown job reference {ref!r}: use a journal id (12 or '@12'), '@last', "
                "'@-2' (second to last) or a Result"
            )
        word = match.group(1)
        if word == "last":
            return self.journal.nth_latest(1)
        if word.startswith("-"):
            return self.journal.nth_latest(int(word[1:]))
        return self.journal.get(int(word))

    def load_result(self, record: JobRecord) -> Result:
        """A finished job as a Result again, its images read back from the runs folder."""
        if record.status != "done" or not record.files:
            why = record.error or f"its status is {record.status}"
            raise JournalError(f"job {record.ref} has no images on disk ({why})")
        blobs: list[bytes] = []
        for path in record.paths:
            try:
                data = path.read_bytes()
                with contextlib.suppress(ImageTooLarge):  # a damaged file fails here, not when shown
                    decode_image(data)  # then dropped: the Result keeps the bytes and decodes what it shows
            except OSError as exc:
                raise JournalError(f"job {record.ref}'s image {path} cannot be read: {exc}") from None
            blobs.append(data)
        return Result(
            endpoint=record.endpoint,
            request_id=record.request_id or "",
            arguments=record.arguments,
            seed=record.seed,
            prompt=record.output_prompt or record.prompt,
            image_bytes=blobs,
            content_types=[sniff_content_type(b) or DEFAULT_CONTENT_TYPE for b in blobs],
            urls=[],
            has_nsfw_concepts=list(record.nsfw),
            timings=record.timings or {},
            cost=record.cost,
            cached=record.cached,
            inputs=self._inputs(record),
            files=record.paths,
            journal_id=record.id,
            parent_id=record.parent_id,
            billable_units=record.billable_units,
        )

    def _inputs(self, record: JobRecord) -> list[ImageInput]:
        """The job's input images as kept in the runs folder (URL inputs as their URL)."""
        found = []
        for identity in record.input_hashes:
            path = store.input_source(self.journal.folder, identity)
            if isinstance(path, str):
                found.append(ImageInput(f"URL {path!r}", url=path))
            elif path is not None:
                data = path.read_bytes()
                ctype = sniff_content_type(data) or DEFAULT_CONTENT_TYPE
                found.append(ImageInput(f"input of {record.ref}", data=data, content_type=ctype))
        return found

    def mark_active(self, journal_id: int) -> None:
        """This session is collecting the job now: no other resume should take it."""
        self._active.add(journal_id)

    def unattended(self, record: JobRecord) -> bool:
        """Whether nobody collects this job fal may still finish (so this session may claim it)."""
        return unattended(record, session=self.session_id, active=self._active, alive=self.journal.alive)

    def claim(self, record: JobRecord) -> JobRecord | None:
        """Make an unattended job this session's to collect (None: another kernel took it, or it ended)."""
        claimed = self.journal.claim(record, self.session_id)
        if claimed is not None:
            self._active.add(claimed.id)
        return claimed

    def unsaved(self, journal_id: int) -> tuple[Result, int | None] | None:
        """The Result this session holds for a job whose images or row a full disk kept from being written."""
        return self._unsaved.get(journal_id)

    def forget_unsaved(self, journal_id: int) -> None:
        self._unsaved.pop(journal_id, None)

    # -- cache and budget -------------------------------------------------------------------
    @staticmethod
    def cache_key(endpoint: str, arguments: dict[str, Any]) -> str | None:
        """Only requests that must give the same images: an explicit seed, no prompt enhancing."""
        if arguments.get("seed") is None or arguments.get("enhance_prompt"):
            return None
        canonical = {k: _identity(v) for k, v in arguments.items()}
        blob = json.dumps({"endpoint": endpoint, "arguments": canonical}, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()

    def find_cached(self, endpoint: str, arguments: dict[str, Any]) -> JobRecord | None:
        """The earlier identical finished job that answers this request, if any (nothing written)."""
        key = self.cache_key(endpoint, arguments)
        return self.journal.find_cached(key) if key else None

    def answer_cached(self, original: JobRecord, tags: Iterable[str]) -> Result:
        """A request answered from the journal: its own row, no request, no cost."""
        journal_id = self.journal.record_cached(original, session=self.session_id, source=self.source, tags=tags)
        result = self.load_result(self.journal.get(journal_id))
        result.cached = True
        return result

    def cached(self, endpoint: str, arguments: dict[str, Any], tags: Iterable[str]) -> Result | None:
        original = self.find_cached(endpoint, arguments)
        return None if original is None else self.answer_cached(original, tags)

    def check_confirm(self, cost: float, description: str, confirm: bool) -> None:
        """A call above the confirmation threshold needs confirm=True (the magics and the panel ask)."""
        s = self.settings
        if cost > s.confirm_above + 1e-9 and not confirm:
            raise ConfirmationRequired(
                f"{description} would cost {format_cost(cost)}, more than {format_cost(s.confirm_above)}: "
                "pass confirm=True to go ahead"
            )

    def cap_guard(self, cost: float, description: str) -> Callable[[Holdings], None]:
        """The budget rule (journal/caps.py), run inside the journal's write transaction that reserves."""
        return caps.cap_guard(self.settings, self.kernel, self.journal.folder, cost, description)

    def check_budget(self, cost: float, description: str, confirm: bool) -> None:
        """Stop before sending when a cap would be passed or a call is large and unconfirmed."""
        self.cap_guard(cost, description)(self.journal.holdings())
        self.check_confirm(cost, description, confirm)

    def spending(self) -> dict[str, Any]:
        return caps.spending(self.settings, self.kernel, self.journal)

    # -- one job's rows ---------------------------------------------------------------------
    def begin(self, endpoint: str, arguments: dict[str, Any], *, parent_id: int | None, tags: Iterable[str]) -> int:
        """Keep the inputs and write the row, before anything is sent (nothing reserved, no cap checked)."""
        written = self.begin_all([(endpoint, arguments, parent_id, 0.0)], tags=tags)[0]
        assert isinstance(written, int)  # nothing is joined without join=True
        return written

    def begin_all(
        self,
        jobs: list[tuple[str, dict[str, Any], int | None, float]],
        *,
        tags: Iterable[str],
        guard: Callable[[Holdings, Sequence[int]], None] | None = None,
        join: bool = False,
    ) -> list[int | JobRecord]:
        """Keep the inputs and write every job's row holding its price, all in one transaction checked by
        ``guard`` (the caps): all the jobs are recorded, or none (and a BudgetError says why). With ``join``, a job
        identical to one in flight in any kernel on the runs folder gets that job's record instead of a row."""
        tag_list = list(tags)
        rows: list[NewJob] = []
        for endpoint, arguments, parent_id, _ in jobs:
            hashes = []
            for image in image_inputs(arguments):
                if image.data is not None and image.sha256:
                    store.save_input(self.journal.folder, image.data, image.content_type or "", image.sha256)
                    hashes.append(image.sha256)
                elif image.url:
                    hashes.append(store.input_identity(None, image.url))
            rows.append(
                NewJob(
                    endpoint=endpoint,
                    arguments=labelled(arguments),
                    input_hashes=tuple(hashes),
                    parent_id=parent_id,
                    tags=tuple(tag_list),
                    source=self.source,
                    session=self.session_id,
                    cache_key=self.cache_key(endpoint, arguments),
                    parents=tuple(i.journal_id for i in image_inputs(arguments) if i.journal_id is not None),
                )
            )
        with self.kernel.lock:  # one reservation at a time in this kernel: its session cap spans runs folders
            begun = self.journal.create_all(rows, reserved=[price for *_, price in jobs], guard=guard, join=join)
        self._active.update(i for i in begun if isinstance(i, int))
        return begun

    def hooks(self, journal_id: int, parent_id: int | None) -> JobHooks:
        def prepare(job: Job) -> None:
            job.journal_id = journal_id

        def on_sending(job: Job) -> None:
            if not self.journal.sending(journal_id, self.session_id):
                raise TakenOver(
                    f"another kernel on this runs folder took over @{journal_id} before it was sent (it judged this "
                    "kernel stopped) and sends it itself: nothing was sent here; sending the same request again "
                    "joins that kernel's job (or is answered from the journal)"
                )

        def on_submitted(job: Job) -> None:
            try:
                self.journal.submitted(journal_id, job.request_id or "")
            except JournalError as exc:  # the job runs on: its request id is written with its outcome
                self.notice(
                    f"kontext_nb: {exc}; fal accepted @{journal_id} as request {job.request_id}, which is kept in "
                    "memory and written when the job ends"
                )

        def finalize(result: Result) -> None:
            self.save(journal_id, result, parent_id)

        return JobHooks(
            prepare=prepare,
            on_sending=on_sending,
            on_submitted=on_submitted,
            on_failed=self.on_failed(journal_id),
            finalize=finalize,
        )

    def save(self, journal_id: int, result: Result, parent_id: int | None) -> None:
        """Write the images with their metadata, then the row: done, seed, cost, files."""
        result.journal_id, result.parent_id = journal_id, parent_id
        result.save_error = None  # this try's outcome (resume tries again a save a full disk stopped)
        meta = {
            "prompt": result.prompt,
            "endpoint": result.endpoint,
            "arguments": result.arguments,
            "seed": result.seed,
            "request_id": result.request_id,
            "parent": parent_id,
            "journal_id": journal_id,
            "created": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "kontext_nb_version": __version__,
        }
        files: list[str] = []
        try:
            saved = [
                store.save_result_image(self.journal.folder, data, ctype, meta)
                for data, ctype in zip(result.image_bytes, result.content_types, strict=True)
            ]
            files = [name for name, _ in saved]
            result.image_bytes = [data for _, data in saved]  # what is on disk: fal's bytes plus metadata
            for name, data in zip(files, result.image_bytes, strict=True):
                store.save_thumbnail(self.journal.folder, name, data)
        except OSError as exc:  # a full disk: the images stay in memory, resume saves them later
            result.save_error = f"could not save the images to {self.journal.folder}: {exc.strerror or exc}"
            self._unsaved[journal_id] = (result, parent_id)
            unwritten = self._record_save_error(journal_id, result)
            self.notice(
                f"kontext_nb: {result.save_error}{f' (nor note it in the journal: {unwritten})' if unwritten else ''}"
                "; they are still in result.images, and kx.resume() saves them once there is room"
            )
            return
        result.files = [self.journal.folder / f for f in files]
        try:
            overrun = self.journal.finished(
                journal_id,
                status="done",
                seed=result.seed,
                cost=result.cost,
                num_images=len(result.image_bytes),
                timings=result.timings,
                nsfw=result.has_nsfw_concepts,
                output_prompt=result.prompt,
                files=files,
                error=None,
                request_id=result.request_id,
                billable_units=result.billable_units,
            )
        except JournalError as exc:  # the journal cannot be written (a full disk): the row stays collectable
            result.save_error = str(exc)
            self._unsaved[journal_id] = (result, parent_id)
            self.notice(f"kontext_nb: {exc}; the images are still in result.images, and kx.resume() records them later")
        else:
            self._unsaved.pop(journal_id, None)
            if overrun is not None:
                self.notice(
                    f"kontext_nb: @{journal_id} cost {format_cost(result.cost)}, {format_cost(overrun)} more than was "
                    "reserved for it (kontext_nb's upper bound was wrong: please report it); nothing more is sent "
                    "until you have looked: kx.budget(acknowledge=True)"
                )
        self._active.discard(journal_id)

    def _record_save_error(self, journal_id: int, result: Result) -> str | None:
        """Keep the job collectable (status submitted, its request id) with the error, if the row can be written;
        returns why it could not be (a disk full for the journal too), for the one line the user gets."""
        try:
            self.journal.finished(journal_id, status="submitted", error=result.save_error, request_id=result.request_id)
        except JournalError as exc:
            return str(exc)
        finally:
            self._active.discard(journal_id)
        return None

    def on_failed(self, journal_id: int) -> Callable[[Job, BaseException], BaseException | None]:
        """Record failures and cancels. A job that fal may still finish stays collectable, and says so;
        a submit fal may have received unconfirmed keeps its price as spent."""

        def record(job: Job, error: BaseException) -> BaseException | None:
            try:  # the row is written before it stops counting as in flight here (a request joining it then sees it)
                return written(job, error)
            finally:
                self._active.discard(journal_id)

        def written(job: Job, error: BaseException) -> BaseException | None:
            if isinstance(error, TakenOver):  # the row is the other kernel's now: nothing to write here
                return None
            if isinstance(error, SubmitUnconfirmed):
                price = self.journal.money(journal_id)[1]  # from the ledger: the row may have been deleted
                message = (
                    f"{error}; it may cost {format_cost(price)}, so @{journal_id} is recorded as unconfirmed and "
                    "counted as spent: kx.resume() looks it up in fal's request history"
                )
                self.journal.unconfirmed(journal_id, error=message, request_id=job.request_id)
                return SubmitUnconfirmed(message, request_id=job.request_id)
            cancelled = isinstance(error, JobCancelled)
            still_on_fal = (
                not cancelled
                and job.request_id is not None
                and not isinstance(error, JobFailed)
                and (
                    isinstance(error, DownloadFailed)  # fal has the images: only fal saying they are gone ends it
                    or not (isinstance(error, FalError) and error.status_code in (401, 403, 404, 422))
                )
            )
            if still_on_fal:  # timeouts, network trouble, failed downloads: kx.resume() collects it
                self.journal.finished(
                    journal_id, status="submitted", error=f"not collected yet: {error}", request_id=job.request_id
                )
                if "resume" in str(error):
                    return None
                clearer = copy.copy(error)
                clearer.args = (f"{error}; the job is kept: kx.resume() (or %kontext resume) collects it later",)
                return clearer
            self.journal.finished(
                journal_id,
                status="cancelled" if cancelled else "failed",
                error=str(error),
                error_type=getattr(error, "error_type", None),
                request_id=job.request_id,
            )
            return None

        return record

    def resumable(self) -> list[JobRecord]:
        """Rows left unfinished by sessions that are gone (or by this one, no longer in flight)."""
        return left_behind(
            self.journal.uncollected(), session=self.session_id, active=self._active, alive=self.journal.alive
        )


def _identity(value: Any) -> Any:
    if isinstance(value, ImageInput):
        return value.sha256 or value.url
    if isinstance(value, LoraFile):
        return value.sha256
    if isinstance(value, dict):
        return {k: _identity(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_identity(v) for v in value]
    return value


def describe_request(endpoint: str, num_images: int) -> str:
    ep = get_endpoint(endpoint)
    return f"{num_images} image{'s' if num_images != 1 else ''} of {ep.model}"
