"""The facade the magics, the panel and users call.

A Session owns one Engine and one journal. It picks the backend (fal when a key is found,
KONTEXT_FAL_URL when set, otherwise an offline sandbox on a free loopback port), checks
every request before sending, answers repeats from the cache, keeps to the budget, and
records every job so nothing paid for is lost.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import ANNOUNCED, Settings, env_base_url, has_fal_credentials, resolve_key, sandbox_notice, search_request
from .endpoints import text_problem
from .errors import FalError, Interrupted, ValidationError
from .fal.engine import Engine
from .jobs import Job
from .journal.caps import Kernel
from .journal.db import Holdings, JobRecord
from .journal.following import NEVER_SENT, Follower, collecting_notice, joined_notice
from .journal.tracking import Tracker, describe_request, is_ref
from .keys import redact
from .request import Request, build_request, edit_mode
from .result import Result

if TYPE_CHECKING:
    from . import models
    from .endpoints import Endpoint
    from .journal.reconcile import Reconciliation
    from .sweep import Sweep, SweepPlan
    from .views.grid import Grid
    from .views.history import History

SANDBOX_KEY = "kontext-sandbox"
ANONYMOUS_KEY = "anonymous"
NEVER_SENT_ERROR = "the kernel stopped before sending it: nothing was sent, nothing is spent"
ENHANCE_NOTICE = (
    "kontext_nb: enhance_prompt is on, so fal rewrites the prompt each time: the same seed will not "
    "reproduce the image (and such requests are never answered from the cache)"
)


SWEEP_OPTIONS = ("loras", "webhook_url", "priority", "start_timeout", "private")
"""A sweep's keywords that are not settings of a cell's model (the same for every cell)."""


def _print_notice(message: str) -> None:
    print(message)


@dataclass(frozen=True)
class RunOptions:
    """How a checked request is run, besides fal's inputs: the one list of these options.

    Every entry point (``generate``, ``edit``, ``rerun``, ``run``, ``submit``, ``submit_all``) takes them as keywords
    and hands them here, so a new option is added in one place.
    """

    timeout: float | None = None
    """Seconds a blocking call waits for the Result (the job goes on on fal after that)."""
    on_update: Callable[..., None] | None = None
    """``callback(job, status)`` on every status change."""
    cache: bool = True
    """False: always run, even when the journal holds an identical earlier request with an explicit seed."""
    confirm: bool = False
    """True: go ahead above the ``confirm_above`` threshold."""
    tags: tuple[str, ...] = ()
    """Tags kept with the job in the journal (one string or several)."""

    @classmethod
    def take(cls, keywords: dict[str, Any]) -> RunOptions:
        """Pop the run options out of a call's keywords, leaving fal's inputs; tags are checked here."""
        names = {f.name for f in fields(cls)}
        found = {k: keywords.pop(k) for k in list(keywords) if k in names}
        tags = found.get("tags", ())
        tag_list = [tags] if isinstance(tags, str) else list(tags)
        for tag in tag_list:
            if not isinstance(tag, str) or not tag.strip() or text_problem(tag):
                raise ValidationError(f"tags: {tag!r} is not a tag: give non-empty text", field="tags")
        found["tags"] = tuple(tag_list)
        return cls(**found)


class Session:
    """One engine, one backend, one journal, and the calls users make."""

    def __init__(self, settings: Settings | None = None, *, notice: Callable[[str], None] | None = None) -> None:
        self._settings = settings
        self._engine: Engine | None = None
        self._tracker: Tracker | None = None
        self._sandbox: Any = None
        self._lock = threading.RLock()
        self._retired: list[Engine] = []
        self._enhance_said = False
        self._listeners: list[Callable[[Job], None]] = []
        self._flying: dict[tuple[Path, int], Job] = {}
        self._flying_lock = threading.Lock()  # not self._lock: close() holds that while jobs end on the engine thread
        """This session's jobs in flight by journal id: an identical request the journal joins to one gets that Job."""
        self._followers: list[Follower] = []
        """Jobs this session follows for requests joined to a job another kernel runs (stopped on close)."""
        say = notice or _print_notice
        self.notice: Callable[[str], None] = lambda message: say(redact(message))  # never the key, whatever it says
        self.backend: str | None = None
        """'fal', 'sandbox' or 'custom' (a KONTEXT_FAL_URL server), once the engine exists."""
        self.kernel = Kernel()
        """This kernel's money identity: its budget_session spans every runs folder it writes to."""

    @property
    def settings(self) -> Settings:
        return self._settings or Settings()

    # -- engine, backend, journal ---------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        with self._lock:
            if self._engine is None:
                self._engine = self._create_engine()
            return self._engine

    def _create_engine(self) -> Engine:
        settings = self.settings
        base = settings.base_url or env_base_url()
        settings = settings.with_(key=resolve_key(settings.key))  # stripped, as fal must get it (no local holds it)
        have_key = settings.key is not None or has_fal_credentials()
        if base is None and not have_key:
            from . import sandbox

            if self._sandbox is None:  # new settings keep the same sandbox: its jobs stay collectable
                self._sandbox = sandbox.start()
            settings = settings.with_(base_url=self._sandbox.url, key=SANDBOX_KEY)
            self.backend = "sandbox"
            if "sandbox" not in ANNOUNCED:
                ANNOUNCED.add("sandbox")
                self.notice(sandbox_notice(self._sandbox.url))
        else:
            settings = settings.with_(base_url=base, key=settings.key or (None if have_key else ANONYMOUS_KEY))
            self.backend = "fal" if base is None else "custom"
        return Engine(settings)

    @property
    def tracker(self) -> Tracker:
        """The journal of the runs folder (opened on first use; says so if jobs wait to be collected)."""
        with self._lock:
            if self._tracker is None:
                self._tracker = Tracker(self.settings, self.notice, self.kernel)
                waiting = self._tracker.resumable()
                if waiting and "resume" not in ANNOUNCED:
                    n = len(waiting)
                    self.notice(
                        f"kontext_nb: {n} job{'s' if n != 1 else ''} from an earlier run "
                        f"{'were' if n != 1 else 'was'} not collected: kx.resume() collects "
                        f"{'them' if n != 1 else 'it'} without submitting again"
                    )
            return self._tracker

    @property
    def runs_folder(self) -> Path:
        """The runs folder this session's journal and images are in (settings.runs_dir, KONTEXT_HOME or the default)."""
        return self.tracker.journal.folder

    def on_job(self, listener: Callable[[Job], None]) -> Callable[[], None]:
        """Call ``listener(job)`` for every job this session starts (from any cell, magic or panel),
        and for cached answers; returns a function that unsubscribes. The panel's gallery uses it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _announce(self, job: Job) -> None:
        for listener in list(self._listeners):
            try:
                listener(job)
            except Exception:  # a broken listener must not break a job
                logging.getLogger(__name__).exception("a job listener failed")

    def configure(self, settings: Settings) -> None:
        """Use new settings from the next job on (jobs in flight finish on the old engine)."""
        with self._lock:
            self._settings = settings
            if self._engine is not None:
                self._retired.append(self._engine)
            self._engine = None
            if self._tracker is not None and (
                self._tracker.journal.folder != Tracker.folder_for(settings)
                or self._tracker.journal.url != settings.journal()
            ):
                self._tracker = None
            elif self._tracker is not None:
                self._tracker.use_settings(settings)

    def model(self, name: str) -> models.Model:
        """A model by alias or endpoint id: the registry's, or, with a key, any fal endpoint (its OpenAPI document
        and price fetched through this session's engine and cached in the runs folder for a day)."""
        from . import models

        reg = models.registry()
        found = reg.find(str(name))
        if found is not None:
            return found
        if "/" not in str(name):
            reg.get(str(name))  # an alias the registry does not know: its one line
        models.check_endpoint_id(str(name))
        engine = self.engine  # first: it decides the backend
        online = self.backend != "sandbox"  # the offline sandbox stands in for fal without a key: nothing to load

        def openapi(eid: str) -> dict[str, Any]:
            return engine.call(engine.platform.openapi(eid), timeout=60.0)

        def price(eid: str) -> dict[str, Any] | None:
            try:
                return engine.call(engine.platform.price(eid), timeout=60.0)
            except FalError:  # the price is optional: without it the model is listed as not published
                return None

        folder = self.runs_folder
        return models.load_live(reg, str(name), folder, openapi if online else None, price if online else None)

    def _named(self, model: str) -> str:
        """A model name as given, after loading it live when it is an endpoint id the registry lacks (with a key;
        offline: the one line saying so). Every generating call names its model through here."""
        from . import endpoints, models

        name = str(model)
        if "/" in name and name not in endpoints.ENDPOINTS and models.registry().find(name) is None:
            self.model(name)
        return name

    def proxy_view(self) -> dict[str, Any] | None:
        """A classroom proxy's view of this student (allowed models and settings, quota left) when the base URL
        is one; None otherwise."""
        from .fal.proxy_view import proxy_view

        engine = self.engine
        if self.backend != "custom" or not engine.settings.base_url:
            return None
        return proxy_view(engine.settings.base_url, engine.settings.key)

    def info(self) -> dict[str, Any]:
        """Backend, URL, whether a key is set (never the key), jobs in flight, money spent; a classroom proxy's
        view under "proxy"."""
        engine = self.engine
        view = self.proxy_view()
        return {
            "backend": "classroom proxy" if view else self.backend,
            "proxy": view,
            "url": engine.settings.base_url or "https://queue.fal.run",
            "key_set": self.backend != "sandbox" and engine.settings.key != ANONYMOUS_KEY,
            "jobs_in_flight": len(engine.active_jobs()),
            "concurrency": engine.settings.concurrency,
            "runs_dir": str(self.tracker.journal.folder),
            "journal": self.tracker.journal.where,  # a file, or a postgresql:// URL without its password
            **{f"spent_{k}" if k in ("session", "today", "total") else k: v for k, v in self.budget().items()},
        }

    def close(self) -> None:
        with self._flying_lock:
            followers, self._followers = self._followers, []
        for follower in followers:
            follower.stop("this session was closed while it waited for a job another kernel runs")
        with self._lock:
            engines, self._engine, self._retired = [*self._retired, self._engine], None, []
            sandbox, self._sandbox = self._sandbox, None
        # not holding the lock: a job's last callbacks, on the engine's thread, may still ask for the journal
        for engine in engines:
            if engine is not None:
                engine.close()
        if sandbox is not None:
            sandbox.stop()
        with self._lock:
            tracker, self._tracker = self._tracker, None
        if tracker is not None:
            tracker.close()

    # -- making images ----------------------------------------------------------------------------
    def run(
        self,
        request: Request,
        *,
        wait: bool = True,
        parent_id: int | None = None,
        options: RunOptions | None = None,
        **keywords: Any,
    ) -> Result | Job:
        """Send a checked request; block for the Result, or return the Job at once."""
        run = options or RunOptions.take(keywords)
        _no_more(keywords)
        job = self.submit_all([(request, parent_id)], options=run)[0]
        return job.result(run.timeout) if wait else job

    def submit(
        self, request: Request, *, parent_id: int | None = None, options: RunOptions | None = None, **keywords: Any
    ) -> Job:
        """Send a checked request and return its Job at once (a finished one when the journal answers it)."""
        return self.submit_all([(request, parent_id)], options=options, **keywords)[0]

    def submit_all(
        self,
        requests: Sequence[tuple[Request, int | None]],
        *,
        options: RunOptions | None = None,
        **keywords: Any,
    ) -> list[Job]:
        """Send checked requests (each with the journal id of the job it edits), all or none.

        The one way jobs are sent (the API, the magics' batches and sweeps, the panel): repeats are answered from
        the journal; the rest reserve their price in the journal in one transaction checked against the session and
        daily caps, so a run that would cross a cap is refused whole, before anything is sent. In that same
        transaction a request identical to one in flight in any kernel on the runs folder (same cache key) joins it
        instead of being written: one fal request, every caller gets its Result."""
        run = options or RunOptions.take(keywords)
        _no_more(keywords)
        return self._send(requests, run)

    def _send(
        self, requests: Sequence[tuple[Request, int | None]], run: RunOptions, *, announce: bool = True
    ) -> list[Job]:
        for request, _ in requests:
            refuse_secrets(request, self.settings, run.tags)
        tracker = self.tracker
        plan: list[JobRecord | tuple[Request, int | None]] = [
            (tracker.find_cached(r.endpoint.id, r.arguments) if run.cache else None) or (r, parent_id)
            for r, parent_id in requests
        ]
        to_send = [item for item in plan if isinstance(item, tuple)]
        fresh = [r for r, _ in to_send]
        if fresh:
            tracker.check_confirm(_cost(fresh), _describe(fresh), run.confirm)
        if any(r.arguments.get("enhance_prompt") for r in fresh) and not self._enhance_said:
            self._enhance_said = True
            self.notice(ENHANCE_NOTICE)

        def within_caps(holdings: Holdings, written: Sequence[int]) -> None:
            sent = [fresh[i] for i in written]
            tracker.cap_guard(_cost(sent), _describe(sent))(holdings)

        begun = iter(
            tracker.begin_all(
                [(r.endpoint.id, r.arguments, parent, r.cost) for r, parent in to_send],
                tags=run.tags,
                guard=within_caps,
                join=run.cache,
            )
        )
        jobs: list[Job] = []
        for item, (_, parent_id) in zip(plan, requests, strict=True):
            new = True
            if isinstance(item, JobRecord):
                hit_result = tracker.answer_cached(item, run.tags)
                hit_result.parent_id = parent_id if parent_id is not None else hit_result.parent_id
                job = _finished_job(hit_result)
            else:
                request, outcome = item[0], next(begun)
                if isinstance(outcome, JobRecord):
                    job, new = self._join(outcome, request, parent_id, run)
                else:
                    for message in request.notices:
                        self.notice(f"kontext_nb: {message}")
                    job = self.engine.submit(
                        request.endpoint.id,
                        request.arguments,
                        options=request.options,
                        on_update=run.on_update,
                        hooks=tracker.hooks(outcome, parent_id),
                    )
                    self._track_in_flight(outcome, job)
            if new and announce:
                self._announce(job)
            jobs.append(job)
        return jobs

    def _join(self, record: JobRecord, request: Request, parent_id: int | None, run: RunOptions) -> tuple[Job, bool]:
        """The Job for a request the journal joined to an identical one in flight, and whether it is new here:
        this kernel's own Job; the job itself, claimed and collected here when nobody collects it any more; or a
        Follower of the kernel that sends it."""
        tracker = self.tracker
        with self._flying_lock:
            own = self._flying.get((record.folder, record.id)) if record.session == tracker.session_id else None
        if own is not None:
            self.notice(joined_notice(record, here=True))
            if run.on_update is not None:
                own.on_update(run.on_update)
            return own, False
        claimed = tracker.claim(record) if tracker.unattended(record) else None
        if claimed is not None:
            self.notice(collecting_notice(claimed))
            job = self._collect(claimed)
            if run.on_update is not None:
                job.on_update(run.on_update)
            return job, True
        self.notice(joined_notice(record, here=False))
        alone = replace(run, on_update=None, confirm=True)  # the caller's callback is on the follower's job
        follower = Follower(
            tracker,
            record,
            collect=self._collect,
            send_own=lambda: self._send([(request, parent_id)], alone, announce=False)[0],
            notice=self.notice,
            on_update=run.on_update,
        )
        with self._flying_lock:  # a follower's own resend may join and follow too, from its thread
            self._followers = [f for f in self._followers if not f.job.done()] + [follower]
        follower.start()
        return follower.job, True

    def _collect(self, record: JobRecord) -> Job:
        """Collect a job fal accepted that this session has claimed (resume; a join whose kernel stopped)."""
        tracker = self.tracker
        tracker.mark_active(record.id)
        hooks = tracker.hooks(record.id, record.parent_id)
        engine = self.engine  # first: it decides the backend
        if self.backend == "sandbox":
            hooks = replace(hooks, on_failed=_sandbox_restarted(hooks.on_failed))
        job = engine.attach(record.endpoint, record.request_id or "", hooks=hooks, arguments=record.arguments)
        self._track_in_flight(record.id, job)
        return job

    def _track_in_flight(self, journal_id: int, job: Job) -> None:
        key = (self.tracker.journal.folder, journal_id)  # by runs folder too: the kernel's id spans folders
        with self._flying_lock:
            self._flying[key] = job

        def landed(job: Job, status: Any) -> None:
            if status.finished:
                with self._flying_lock:
                    if self._flying.get(key) is job:
                        del self._flying[key]

        job.on_update(landed)
        if job.done():
            landed(job, job.status)

    def generate(
        self,
        prompt: str,
        *,
        model: str = "max",
        wait: bool = True,
        **arguments: Any,
    ) -> Result | Job:
        """Text to image; ``arguments`` are fal's inputs and the run options (``RunOptions``)."""
        options = RunOptions.take(arguments)
        request = build_request("text-to-image", prompt, model=self._named(model), **arguments)
        return self.run(request, wait=wait, options=options)

    def edit(
        self,
        source: Any,
        prompt: str,
        *,
        model: str = "max",
        wait: bool = True,
        **arguments: Any,
    ) -> Result | Job:
        """Edit one image (or 2-4: multi-reference); ``arguments`` are fal's inputs and the run options."""
        options = RunOptions.take(arguments)
        request, parent_id = self.prepare_edit(source, prompt, model=model, **arguments)
        return self.run(request, wait=wait, parent_id=parent_id, options=options)

    def prepare_edit(
        self, source: Any, prompt: str, *, model: str = "max", **arguments: Any
    ) -> tuple[Request, int | None]:
        """A checked edit request and the journal id of the job whose image it edits (if any)."""
        model = self._named(model)
        mode, sources = edit_mode(source, model)
        sources = [self.result(s) if is_ref(s) else s for s in sources]
        parent_id = next((s.journal_id for s in sources if isinstance(s, Result) and s.journal_id), None)
        request = build_request(
            mode, prompt, model=model, sources=sources, max_input_side=self.settings.max_input_side, **arguments
        )
        return request, parent_id

    def inpaint(
        self,
        source: Any,
        prompt: str,
        *,
        mask: Any,
        reference: Any = None,
        model: str = "lora",
        wait: bool = True,
        **arguments: Any,
    ) -> Result | Job:
        """Change only the masked region; ``arguments`` are fal's inputs and the run options (``RunOptions``)."""
        options = RunOptions.take(arguments)
        request, parent_id = self.prepare_inpaint(
            source, prompt, mask=mask, reference=reference, model=model, **arguments
        )
        return self.run(request, wait=wait, parent_id=parent_id, options=options)

    def prepare_inpaint(
        self, source: Any, prompt: str, *, mask: Any, reference: Any = None, model: str = "lora", **arguments: Any
    ) -> tuple[Request, int | None]:
        """A checked inpainting request (source, mask, optional reference) and the job it edits (if any)."""
        model = self._named(model)
        src, msk, ref = (self.result(x) if is_ref(x) else x for x in (source, mask, reference))
        parent_id = src.journal_id if isinstance(src, Result) else None
        request = build_request(
            "inpaint", prompt, model=model, sources=[src], mask=msk, reference=ref,
            max_input_side=self.settings.max_input_side, **arguments,
        )  # fmt: skip
        return request, parent_id

    def plan_sweep(
        self,
        sweep: Sweep,
        *,
        source: Any = None,
        defaults: Callable[[Endpoint], dict[str, Any]] | None = None,
        **arguments: Any,
    ) -> SweepPlan:
        """Every cell of a sweep as a checked request in its own model's shape, priced; nothing is sent.
        ``source``: the image an edit sweep edits; ``defaults(endpoint)``: settings a caller adds where the cell's
        model takes them (the magics' %config); ``arguments``: fixed inputs that are not sweep settings (loras, the
        submit options)."""
        from .sweep import SweepPlan

        requests: list[tuple[Request, int | None]] = []
        parent = None
        if sweep.mode != "text-to-image" and source is not None and not isinstance(source, (list, tuple)):
            from .images import prepare_image

            found = self.result(source) if is_ref(source) else source
            parent = found.journal_id if isinstance(found, Result) else None
            side = self.settings.max_input_side
            source = prepare_image(found) if side is None else prepare_image(found, max_side=side)  # read once
        for cell in sweep.cells:
            ep = sweep.endpoint(cell)
            args = {**(defaults(ep) if defaults is not None else {}), **arguments, **cell.arguments}
            if sweep.mode == "text-to-image":
                requests.append((build_request(sweep.mode, cell.prompt, model=cell.model, **args), None))
            else:
                request, parent_id = self.prepare_edit(source, cell.prompt, model=cell.model, **args)
                requests.append((request, parent if parent_id is None else parent_id))
        sizes = [r.input_size for r, _ in requests if r.input_size]
        return SweepPlan(replace(sweep, input_size=sizes[0]) if sizes else sweep, tuple(requests))

    def sweep(
        self,
        prompt: str,
        *,
        source: Any = None,
        model: str | Sequence[str] = "max",
        wait: bool = True,
        **options: Any,
    ) -> Grid | list[Job]:
        """A grid of jobs over a prompt's {a|b} groups, settings and models: every value given as a list (or range)
        is an axis, anything else is fixed; ``model`` a name or a list of them ('max', 'seedream4-edit', endpoint
        ids), each cell sent in its own model's shape. ``source``: an edit sweep. The whole sweep is priced and
        reserved at once before anything is sent (caps and confirm_above see its total: over a cap, nothing is
        sent). Settings a model lacks are left out of its cells, shown '–' and listed under the grid. Returns the
        Grid (``wait=False``: the Jobs, in cell order). Run options as for ``edit``."""
        from .sweep import build_sweep

        run = RunOptions.take(options)
        names = [self._named(m.strip()) for m in (model.split(",") if isinstance(model, str) else model)]
        axes = {k: v for k, v in options.items() if isinstance(v, (list, tuple, range))}
        rest = {k: v for k, v in options.items() if k in SWEEP_OPTIONS}
        fixed = {k: v for k, v in options.items() if k not in axes and k not in rest}
        mode = "text-to-image" if source is None else "edit"
        built = build_sweep(prompt, {k: tuple(v) for k, v in axes.items()}, model=names, base=fixed, mode=mode)
        plan = self.plan_sweep(built, source=source, **rest)
        for line in plan.not_taken():
            self.notice(f"kontext_nb: {line}")
        jobs = self.submit_all(list(plan.requests), options=run)
        if not wait:
            return jobs
        from .views.grid import Grid

        outcomes: list[Any] = []
        for job in jobs:
            try:
                outcomes.append(job.result(run.timeout))
            except Interrupted:
                raise
            except Exception as exc:  # one cell's failure is shown in its cell; the others stand
                outcomes.append(exc)
        return Grid(plan.sweep, outcomes)

    def job(self, ref: Any) -> Job | None:
        """The Job in flight in this session for a journal reference, if it is still running."""
        journal_id = self.record(ref).id
        for engine in [self._engine, *self._retired]:
            for job in engine.active_jobs() if engine is not None else []:
                if job.journal_id == journal_id:
                    return job
        return None

    def active_jobs(self) -> list[Job]:
        return [job for engine in [self._engine, *self._retired] if engine for job in engine.active_jobs()]

    def attach(self, request_id: str, *, endpoint: str, wait: bool = False) -> Result | Job:
        """Follow a request already submitted to fal, and collect its images."""
        if not isinstance(request_id, str) or not request_id.strip():
            raise ValidationError(f"request_id={request_id!r} must be a non-empty string", field="request_id")
        job = self.engine.attach(endpoint, request_id.strip())
        return job.result() if wait else job

    # -- the journal --------------------------------------------------------------------------------
    def record(self, ref: Any) -> JobRecord:
        return self.tracker.resolve(ref)

    def result(self, ref: Any) -> Result:
        """A job from the journal as a Result, its images read from the runs folder."""
        if isinstance(ref, Result) and ref.journal_id is None:
            return ref
        return self.tracker.load_result(self.tracker.resolve(ref))

    def rerun(self, ref: Any, *, wait: bool = True, **changes: Any) -> Result | Job:
        """Run a job again with the same seed and settings, changing only what is given."""
        from .journal.rerun import rerun_request

        record = self.record(ref)
        options = RunOptions.take(changes)
        if "model" in changes:
            changes["model"] = self._named(changes["model"])
        request, parent_id = rerun_request(record, changes, self.settings.max_input_side)
        return self.run(request, wait=wait, parent_id=parent_id, options=options)

    def resume(self, *, wait: bool = True) -> list[Result] | list[Job]:
        """Collect jobs submitted but never collected (restart, crash, timeout, a failed download or save), and
        settle unconfirmed submits from fal's request history (found: collected; provably never sent: released).
        Never submits. Each job is claimed first (journal.claim): one collector, however many kernels try."""
        jobs: list[Job] = []
        try:  # Ctrl-C anywhere in here: jobs made earlier, paid for or about to be: stop waiting, never cancel them
            self._claim_left_jobs(jobs)  # into jobs as they start: an interrupt meanwhile counts them
            jobs += self._settle_unconfirmed()
            if not wait:
                return jobs
            results: list[Result] = []
            for job in jobs:
                try:
                    results.append(job.result(interrupt_cancels=False))
                except Exception as exc:  # said once per job; the journal row has the error
                    self.notice(f"kontext_nb: could not collect @{job.journal_id}: {exc}")
        except KeyboardInterrupt:
            left = sum(not job.done() for job in jobs)
            raise Interrupted(
                f"stopped waiting; {left} job{'s' if left != 1 else ''} still being collected in the background "
                "(nothing cancelled: kx.history() shows them as they finish)"
            ) from None
        return results

    def _claim_left_jobs(self, jobs: list[Job]) -> None:
        """resume()'s first half: the jobs left behind, claimed and being collected (or saved from memory), each
        added to ``jobs`` as it starts."""
        tracker = self.tracker
        for record in tracker.resumable():
            held = tracker.unsaved(record.id)
            if held is not None:  # the images are in memory (a full disk kept them from being written): save them
                if record.request_id is not None and tracker.claim(record) is None:
                    tracker.forget_unsaved(record.id)  # another kernel took it: it collects and saves it
                    continue
                result, parent_id = held
                tracker.mark_active(record.id)
                tracker.save(record.id, result, parent_id)
                jobs.append(_finished_job(result))
                continue
            if record.request_id is None and record.unsent:  # its kernel stopped before sending it: nothing to pay
                if tracker.journal.claim_unsent(record, tracker.session_id) is not None:
                    tracker.journal.finished(record.id, status="failed", error=NEVER_SENT_ERROR, error_type=NEVER_SENT)
                continue
            if record.request_id is None:  # stopped between sending and fal's answer: it may have been accepted
                tracker.journal.unconfirmed(
                    record.id,
                    error=(
                        "the kernel stopped while the job was being sent, before fal's answer was recorded: fal may "
                        "have accepted it (and may bill it), but its request id is unknown: kx.resume() looks for it "
                        "in fal's request history (collects it if it arrived, releases its price once it provably "
                        "did not)"
                    ),
                )
                continue
            claimed = tracker.claim(record)
            if claimed is None:  # another kernel took it meanwhile (its resume, or a request that joined it)
                continue
            job = self._collect(claimed)
            jobs.append(job)
            self._announce(job)

    def _settle_unconfirmed(self) -> list[Job]:
        """Unconfirmed submits looked up in fal's request history: found ones are collected (never sent again),
        ones provably never sent release their price (journal/unconfirmed.py)."""
        from .journal.unconfirmed import settle_unconfirmed

        if not self.tracker.journal.search(status="unconfirmed", limit=1):
            return []  # nothing to look up: no engine (nor sandbox) is started for it
        engine = self.engine
        # an offline sandbox this kernel started knows nothing sent before it: it proves nothing about older rows
        since = self.tracker.started if self.backend == "sandbox" else None
        settled = settle_unconfirmed(self.tracker, engine, since=since)
        for line in dict.fromkeys(settled.notices):
            self.notice(line)
        if settled.not_sent:
            refs = ", ".join(f"@{i}" for i in settled.not_sent)
            self.notice(f"kontext_nb: {refs} never reached fal (its request history says so): its price is released")
        jobs = []
        for record in settled.found:
            self.notice(f"kontext_nb: {record.ref} did reach fal as request {record.request_id}: collecting it")
            job = self._collect(record)
            self._announce(job)
            jobs.append(job)
        return jobs

    def lineage(self, ref: Any) -> list[JobRecord]:
        return self.tracker.journal.lineage(self.record(ref).id)

    def children(self, ref: Any) -> list[JobRecord]:
        return self.tracker.journal.children(self.record(ref).id)

    def history(self, **filters: Any) -> History:
        from .views.history import History

        for what in ("search", "tag"):
            problem = text_problem(filters.get(what) or "")
            if problem:
                raise ValidationError(f"history: the {what} text holds {problem}", field=what)
        since = filters.get("since")
        if since is not None and not isinstance(since, (int, float)):
            filters["since"] = since.timestamp()
        model = filters.pop("model", None)
        if model is None:
            return History(self.tracker.journal.search(**filters))
        ids = model_endpoints(str(model))
        if len(ids) == 1 and filters.get("endpoint") in (None, ids[0]):
            return History(self.tracker.journal.search(**{**filters, "endpoint": ids[0]}))
        limit = filters.pop("limit", None)
        found = [r for r in self.tracker.journal.search(**filters) if r.endpoint in ids]
        return History(found[:limit] if limit is not None else found)

    def delete(self, ref: Any, *, files: bool = True) -> None:
        from .journal.pruning import delete_record

        delete_record(self.tracker.journal, self.record(ref), files=files)

    def prune(self, *, older_than_days: float | None = None, max_bytes: int | None = None) -> int:
        from .journal.pruning import prune

        return prune(self.tracker.journal, older_than_days=older_than_days, max_bytes=max_bytes)

    def budget(self, *, acknowledge: bool = False, reconcile: bool = False) -> dict[str, Any]:
        """Dollars spent this session, today and in total, reserved for jobs in flight, the caps and what is left,
        the day and time zone of "today", and overruns (jobs that cost more than was reserved for them: nothing is
        sent while there is one). ``acknowledge=True`` says they have been seen, and sending goes on.
        ``reconcile=True`` adds ``reconcile``: fal's billed usage beside the journal's (see ``reconciled``)."""
        if acknowledge:
            self.tracker.journal.acknowledge(self.kernel.id)
        spending = self.tracker.spending()
        if reconcile:
            spending["reconcile"] = self.reconciled()
        return spending

    def reconciled(self, days: int = 7) -> Reconciliation:
        """The journal's spend beside fal's usage API per UTC day and endpoint for the last ``days`` days; every
        difference is said in one line too (journal/reconcile.py)."""
        from .journal.reconcile import reconcile

        found = reconcile(self.tracker.journal, self.engine, days=days)
        if not found.ok:
            self.notice(f"kontext_nb: {found!r}")
        return found


def model_endpoints(name: str) -> list[str]:
    """The endpoint ids a model name stands for: a Kontext name (max, pro, dev, lora) its whole family, an alias
    or endpoint id its one endpoint; ValidationError (one line, did-you-mean) for a name the registry lacks."""
    from . import endpoints, models

    if name in endpoints.MODELS:
        return [e.id for e in endpoints.ENDPOINTS.values() if e.model == name]
    return [models.registry().get(name).endpoint_id]


def refuse_secrets(request: Request, settings: Settings, tags: Sequence[str] = ()) -> None:
    """Refuse a request any string of which holds the fal key or its id or secret half, as typed, URL-encoded or
    base64 (a prompt filled from the wrong variable, a LoRA URL with ?key=, a tag, a webhook), before anything is
    written or sent; and a damaged key. The error names the field, never the key; no frame that can fail holds the
    key in a variable (a verbose traceback prints them: config.search_request)."""
    arguments, options = request.arguments, request.options
    found = search_request(settings, [("", arguments), ("tags", list(tags)), ("", options)])
    if found is not None:
        where, how = found
        raise ValidationError(
            f"{where} contains your fal key (or part of it{', ' + how if how else ''}): refused, nothing was sent or "
            "written; take the key out of the text",
            field=where.split(".")[0].split("[")[0],
        )


def _cost(requests: Sequence[Request]) -> float:
    return round(sum(r.cost for r in requests), 6)


def _describe(requests: Sequence[Request]) -> str:
    """What a run is, for the confirmation and cap messages: '1 image of max' or 'this run of 3 jobs (3 images)'."""
    images = sum(r.num_images for r in requests)
    if len(requests) == 1:
        return describe_request(requests[0].endpoint.id, images)
    return f"this run of {len(requests)} jobs ({images} image{'s' if images != 1 else ''})"


def _finished_job(result: Result) -> Job:
    job = Job(result.endpoint, result.arguments, lambda j: False)
    job.request_id, job.journal_id = result.request_id, result.journal_id
    job.settle(result)
    return job


def _no_more(keywords: dict[str, Any]) -> None:
    """Keywords left after the run options are taken are a mistake: name them and what is allowed."""
    if keywords:
        allowed = ", ".join(f.name for f in fields(RunOptions))
        name = next(iter(keywords))
        raise ValidationError(f"unknown option {name!r}: the run options are {allowed}", field=name)


def _sandbox_restarted(
    inner: Callable[[Job, BaseException], BaseException | None] | None,
) -> Callable[[Job, BaseException], BaseException | None]:
    """A job the in-kernel offline sandbox held before a restart: the new sandbox does not know it (404). Say so,
    and that nothing was charged, rather than "fal no longer knows request ..."."""

    def on_failed(job: Job, error: BaseException) -> BaseException | None:
        if isinstance(error, FalError) and error.status_code == 404:
            error = FalError(
                f"the offline sandbox restarted with the kernel and no longer has request {job.request_id}: "
                "nothing was charged (sandbox jobs are free); run it again",
                status_code=404,
                error_type=error.error_type,
                request_id=job.request_id,
            )
        return (inner(job, error) if inner is not None else None) or error

    return on_failed
