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
    from .jobs import Job
    from .journal.db import JobRecord
    from .result import Result
    from .session import Session
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
) -> History:
    """Journal records, newest first; a table in a notebook, ``.to_pandas()``, ``.to_csv()``, ``.to_json()``.

    ``search`` matches every word in the prompt; ``since`` is a datetime or a Unix time.
    """
    return get_session().history(
        search=search, seed=seed, endpoint=endpoint, status=status, tag=tag, since=since, limit=limit
    )


def delete(ref: Any, *, files: bool = True) -> None:
    """Forget a journal job (and its image files, unless another job shares them)."""
    get_session().delete(ref, files=files)


def prune(*, older_than_days: float | None = None, max_bytes: int | None = None) -> int:
    """Delete finished jobs older than some days and/or the oldest until the images fit in max_bytes."""
    return get_session().prune(older_than_days=older_than_days, max_bytes=max_bytes)


def budget() -> dict[str, Any]:
    """Dollars spent this session, today and in total, the caps, and what is left."""
    return get_session().budget()


def read_metadata(path: Any) -> dict[str, Any]:
    """The generation metadata embedded in an image file kontext_nb saved."""
    from .journal.metadata import read

    return read(path)


def configure(**changes: Any) -> Settings:
    """Change engine settings for the jobs that follow, e.g. ``kx.configure(concurrency=4)``.

    Settings: base_url (a fal-compatible server, like KONTEXT_FAL_URL), key, concurrency,
    job_timeout, use_stream, poll_interval, inline_max_bytes, max_input_side, retry, runs_dir,
    budget_session, budget_daily, confirm_above.
    """
    from dataclasses import fields

    names = [f.name for f in fields(Settings)]
    for name in changes:
        if name not in names:
            raise ValidationError(
                f"unknown setting {name!r}{endpoints.suggest(name, names)}; allowed: {', '.join(names)}", field=name
            )
    session = get_session()
    current = session.settings
    updated = current.with_(**changes)
    session.configure(updated)
    return updated


def help() -> None:
    """Print every endpoint's inputs, defaults, ranges and prices."""
    print(endpoints.overview())
