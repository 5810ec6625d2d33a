"""The module-level calls (``kx.generate``, ``kx.history``, ...) and the one session behind them.

Heavy modules load on first use, so importing this (and ``%load_ext``) stays cheap.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from . import endpoints
from .config import Settings
from .errors import ValidationError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    import pandas
    from PIL import Image

    from .jobs import Job
    from .journal.db import JobRecord
    from .judging.changes import Changes
    from .models import Model
    from .result import Result
    from .session import Session
    from .views.grid import Grid
    from .views.history import History


_session: Session | None = None
_session_lock = threading.Lock()


def get_session() -> Session:
    """The session behind the module-level calls (created on first use)."""
    global _session
    with _session_lock:
        if _session is None:
            from .session import Session

            _session = Session()
        return _session


def current_session() -> Session | None:
    """The session behind the module-level calls, or None before the first call (never creates one)."""
    return _session


def set_session(session: Session | None) -> Session | None:
    """Make ``session`` the one behind the module-level calls (None: the next call makes a new one).

    Returns the previous one, so a caller can put it back.
    """
    global _session
    with _session_lock:
        previous, _session = _session, session
        return previous


def generate(
    prompt: str, *, model: str = "max", wait: bool = True, timeout: float | None = None, **arguments: Any
) -> Result | Job:
    """Text to image. Blocks and returns a Result, or with ``wait=False`` returns a Job at once.

    ``model`` is "max" ($0.08 per image), "pro" ($0.04), "lora" (FLUX.1 Kontext [dev] with
    ``loras=[URL, "URL:0.8", ("file.safetensors", 1.2)]``, per megapixel) or an endpoint id;
    "dev" edits only (``kx.edit``). Other keywords are fal's inputs
    (see ``kx.help()``) plus ``on_update=callback(job, status)``, ``webhook_url``,
    ``priority`` ("normal" | "low"), ``start_timeout`` (s) and ``private=True`` (sync_mode
    and no copy kept in fal's request history), ``cache=False`` (always run, even when an
    identical earlier request with an explicit seed is in the journal), ``confirm=True`` (for a
    call above the confirmation threshold) and ``tags=``. A kernel interrupt cancels the job on fal.
    """
    return get_session().generate(prompt, model=model, wait=wait, timeout=timeout, **arguments)


def edit(
    source: Any,
    prompt: str,
    *,
    model: str = "max",
    wait: bool = True,
    timeout: float | None = None,
    **arguments: Any,
) -> Result | Job:
    """Edit an image: ``source`` is a path, URL, data URI, PIL image, bytes, numpy array or a
    Result (its first image); a list of 2-4 sources uses the multi-reference endpoint.
    Other keywords as for ``generate``.
    """
    return get_session().edit(source, prompt, model=model, wait=wait, timeout=timeout, **arguments)


def inpaint(
    source: Any,
    prompt: str,
    *,
    mask: Any,
    reference: Any = None,
    model: str = "lora",
    wait: bool = True,
    timeout: float | None = None,
    **arguments: Any,
) -> Result | Job:
    """Repaint only the masked region of ``source`` (fal-ai/flux-kontext-lora/inpaint).

    ``mask`` is an image of the source's size, white where it is repainted (``kx.mask(source)``
    paints one); like ``source`` it may be a path, a Result, a job reference ("@12") or an array.
    ``reference`` is fal's ``reference_image_url`` (the source when not given). Billed per
    megapixel; other keywords are fal's inputs (``strength``, ``num_inference_steps``, ``loras`` ...).
    """
    return get_session().inpaint(
        source, prompt, mask=mask, reference=reference, model=model, wait=wait, timeout=timeout, **arguments
    )


def sweep(
    prompt: str,
    *,
    source: Any = None,
    model: str | Sequence[str] = "max",
    wait: bool = True,
    **options: Any,
) -> Grid | list[Job]:
    """A grid of jobs, A1111's X/Y/Z plot across models: ``{a|b}`` groups in the prompt and every setting given as a
    list are axes, ``model`` one name or a list (``["max", "seedream4-edit", "fal-ai/flux-2-flex/edit"]``), ``source``
    makes it an edit sweep. Each model gets its own request shape; the whole sweep is priced and reserved before
    anything is sent (over a cap or above confirm_above without ``confirm=True``: refused whole, nothing sent). A
    setting a model lacks shows '–' in its cells and is listed under the grid. Returns the Grid (``wait=False``: the
    Jobs). E.g. ``kx.sweep("make it {winter|night}", source=photo, model=["max", "flux2-flex-edit"], seed=[1, 2])``.
    """
    return get_session().sweep(prompt, source=source, model=model, wait=wait, **options)


def attach(request_id: str, *, endpoint: str, wait: bool = False) -> Result | Job:
    """Follow a request already on fal by its id (after a timeout or a restart) and collect it."""
    return get_session().attach(request_id, endpoint=endpoint, wait=wait)


def rerun(ref: Any, *, wait: bool = True, **changes: Any) -> Result | Job:
    """Run a journal job again with the same seed and settings; ``seed=`` etc. change them.

    ``ref`` is a journal id (12 or "@12"), "@last", "@-2" (second to last) or a Result.
    """
    return get_session().rerun(ref, wait=wait, **changes)


def resume(*, wait: bool = True) -> list[Result] | list[Job]:
    """Collect jobs submitted but never collected (kernel restart, crash, timeout). Never submits again."""
    return get_session().resume(wait=wait)


def load(ref: Any) -> Result:
    """A journal job as a Result, its images read back from the runs folder."""
    return get_session().result(ref)


def lineage(ref: Any) -> list[JobRecord]:
    """The chain of edits from the original image to this job (journal records, original first)."""
    return get_session().lineage(ref)


def children(ref: Any) -> list[JobRecord]:
    """The jobs that edited this job's image (one level of the edit tree)."""
    return get_session().children(ref)


def history(
    search: str | None = None,
    *,
    seed: int | None = None,
    endpoint: str | None = None,
    status: str | None = None,
    tag: str | None = None,
    since: Any = None,
    limit: int | None = None,
    min_rating: int | None = None,
    model: str | None = None,
) -> History:
    """Journal records, newest first; a table in a notebook, ``.to_pandas()``, ``.to_csv()``, ``.to_json()``.

    ``search`` matches every word in the prompt; ``since`` is a datetime or a Unix time; ``min_rating=4`` keeps
    jobs rated 4 or 5 stars (``kx.rate``); ``model`` keeps one model's jobs ('max': the [max] family, an alias such
    as 'seedream4-edit', or an endpoint id).
    """
    filters: dict[str, Any] = {} if model is None else {"model": model}
    if min_rating is not None:
        if isinstance(min_rating, bool) or not isinstance(min_rating, int) or not 1 <= min_rating <= 5:
            raise ValidationError(
                f"min_rating={min_rating!r} is not allowed: give a whole number from 1 to 5", field="min_rating"
            )
        filters["min_rating"] = min_rating
    return get_session().history(
        search=search, seed=seed, endpoint=endpoint, status=status, tag=tag, since=since, limit=limit, **filters
    )


# -- judging ---------------------------------------------------------------------------------------
def rate(ref: Any, stars: int) -> int | None:
    """Give a result 1-5 stars (0 clears them): kept in the journal, shown in history, cards and reports, and
    written into the image files' embedded metadata. Returns the rating now kept (None when cleared)."""
    from .judging.ratings import rate as rate_record

    tracker = get_session().tracker
    return rate_record(tracker.journal, tracker.resolve(ref), stars)


def vote(winner: Any, loser: Any, tie: bool = False, *, voter: str | None = None) -> None:
    """Record one blind pairwise vote: ``winner`` beat ``loser`` (or, with ``tie=True``, neither did).

    ``voter`` defaults to the login name; several voters can share one runs folder.
    """
    from .judging.duel import default_voter

    if not isinstance(tie, bool):
        raise ValidationError(f"tie={tie!r} is not allowed: give True or False", field="tie")
    if voter is not None and (not isinstance(voter, str) or not voter.strip()):
        raise ValidationError(f"voter={voter!r} is not allowed: give a non-empty name", field="voter")
    tracker = get_session().tracker
    a, b = tracker.resolve(winner), tracker.resolve(loser)
    if a.id == b.id:
        raise ValidationError(f"a vote needs two different results; got {a.ref} twice")
    for record in (a, b):
        if record.status != "done":
            raise ValidationError(f"{record.ref} cannot be voted on: its status is {record.status}")
    tracker.journal.add_vote(a.id, b.id, tie=tie, voter=(voter or default_voter()).strip(), session=tracker.session_id)


def ranking(refs: Any = None, *, by: str | None = None) -> pandas.DataFrame:
    """The results ranked from the votes, best first: ``ref``, ``score`` (Bradley–Terry, natural-log units),
    ``uncertainty`` (its standard error), ``wins``, ``losses``, ``ties``, ``comparisons``, ``model`` (its short alias).

    ``refs``: the results to rank (a list of references or a History); None ranks every result anyone voted on.
    ``by="model"``: rank the models instead (a vote between two models' results is a vote between the models; votes
    within one model are left out), with ``results``: how many of each model's results were in play.
    """
    from .judging.ranking import by_group, table
    from .judging.report import records_of

    if by not in (None, "model"):
        raise ValidationError(f"by={by!r} is not allowed: give None (each result) or 'model'", field="by")
    tracker = get_session().tracker
    if refs is None:
        votes = tracker.journal.votes()
        ids = list(dict.fromkeys(i for v in votes for i in (v.winner_id, v.loser_id)))
    else:
        ids = [r.id for r in records_of(tracker, refs)]
        votes = tracker.journal.votes(ids)
    labels = {i: _model_label(tracker, i) for i in ids}
    if by == "model":
        return by_group(ids, votes, labels)
    frame = table(ids, votes)
    frame["model"] = [labels[int(str(ref).lstrip("@"))] for ref in frame["ref"]]
    return frame


def _model_label(tracker: Any, job: int) -> str:
    """A job's model as rankings and reports show it: its short alias (max, seedream4-edit), else its endpoint."""
    from .errors import JournalError

    try:
        return str(tracker.journal.get(job).model)
    except (JournalError, ValidationError):  # a deleted job, or a model this version does not know
        return f"@{job}"


def changes(edit: Any, *, source: Any = None, mask: Any = None) -> Changes:
    """How an edit differs from its source: ``image`` (a heat map), ``changed_fraction``, ``ssim_outside``
    (similarity where nothing should have changed: outside ``mask`` for an inpaint, outside the changed area
    otherwise) and ``phash_distance``, plus any ``kx.register_score`` plug-ins. Kept in the journal for history.
    """
    from .judging.changes import changes_of

    return changes_of(get_session().tracker, edit, source=source, mask=mask)


def register_score(name: str, fn: Callable[[Image.Image, Image.Image, Image.Image | None], float] | None) -> None:
    """Add a model-based score (CLIP, DINO, ImageReward... with weights you supply) to every ``kx.changes``:
    ``fn(source, edit, mask) -> float``. None removes it. kontext_nb never downloads weights."""
    from .judging.changes import register_score as register

    register(name, fn)


def report(
    refs_or_history: Any,
    path: Any = "report.html",
    *,
    size: int = 512,
    title: str | None = None,
    zip: bool = False,
) -> Path:
    """Write one self-contained HTML file: every image inline (``size`` px on the longer side), prompt, seed,
    settings, model, cost, rating, ranking, change scores and lineage. No external URL: it opens offline and
    prints well. ``zip=True`` also writes ``<name>.zip`` with the full-size files and a CSV."""
    from .judging.report import write_report
    from .views.links import ReportFile

    written = write_report(get_session().tracker, refs_or_history, path, size=size, title=title, full_size_zip=zip)
    return ReportFile(written)  # a Path; in a notebook, a link that opens the report


def delete(ref: Any, *, files: bool = True) -> None:
    """Forget a journal job (and its image files, unless another job shares them)."""
    get_session().delete(ref, files=files)


def prune(*, older_than_days: float | None = None, max_bytes: int | None = None) -> int:
    """Delete finished jobs older than some days and/or the oldest until the images fit in max_bytes."""
    return get_session().prune(older_than_days=older_than_days, max_bytes=max_bytes)


def budget(*, acknowledge: bool = False, reconcile: bool = False) -> dict[str, Any]:
    """Dollars spent this session, today and in total, what is reserved for jobs still running (and counted
    against the caps), the caps, what is left, which day "today" is (``day``, ``timezone``) and ``overruns``: jobs
    that cost more than was reserved for them. Nothing is sent while there is one; ``acknowledge=True`` says you
    have seen them, and sending goes on. ``reconcile=True`` also asks fal's usage API what it billed per UTC day and
    endpoint over the last 7 days and puts it beside the journal's spend (key ``reconcile``; every difference is
    printed)."""
    return get_session().budget(acknowledge=acknowledge, reconcile=reconcile)


def read_metadata(path: Any) -> dict[str, Any]:
    """The generation metadata embedded in an image file kontext_nb saved."""
    from .journal.metadata import read

    return read(path)


def configure(**changes: Any) -> Settings:
    """Change engine settings for the jobs that follow, e.g. ``kx.configure(concurrency=4)``.

    Settings: base_url (a fal-compatible server, like KONTEXT_FAL_URL), key, concurrency,
    job_timeout, use_stream, poll_interval, inline_max_bytes, max_input_side, retry, runs_dir,
    budget_session, budget_daily, budget_timezone, confirm_above.
    """
    from dataclasses import fields

    names = [f.name for f in fields(Settings)]
    for name in changes:
        if name not in names:
            raise ValidationError(
                f"unknown setting {name!r}{endpoints.suggest(name, names)}; allowed: {', '.join(names)}", field=name
            )
    if changes.get("budget_timezone") is not None:
        from .journal.ledger import check_zone

        check_zone(changes["budget_timezone"])
    session = get_session()
    current = session.settings
    updated = current.with_(**changes)
    session.configure(updated)
    return updated


def model(name: str) -> Model:
    """A model by alias ('max', 'flux2-flex-edit') or endpoint id, with its inputs, output shape, price and
    provenance. With a fal key, any fal endpoint id loads live (its OpenAPI document and price, cached for a day in
    the runs folder); without one, only the snapshot's models (kx.models() lists them)."""
    return get_session().model(name)


def models(search: str | None = None, category: str | None = None) -> pandas.DataFrame:
    """The models kontext_nb knows, as a DataFrame: endpoint_id, alias, title, category, mode, unit, unit_price (or
    'not published'), price_source, image_inputs, takes_seed, takes_mask. ``search``: words in the id, alias or
    title; ``category``: 'text-to-image' or 'image-to-image'."""
    from .models import models_frame

    return models_frame(search, category)


def set_price(name: str, unit_price: float, per: str = "image") -> Model:
    """Declare the price of a model fal publishes none for (dollars per image, or per='megapixel' of output), for
    this kernel: kontext_nb sends no job it cannot price, and a declared price is labelled as yours everywhere."""
    from .models import registry

    return registry().set_price(name, unit_price, per)


def help() -> None:
    """Print every endpoint's inputs, defaults, ranges and prices."""
    print(endpoints.overview())
