"""Sending a line's requests and waiting for them, with one live output; --bg leaves them running."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from ..errors import Interrupted, KontextError
from ..jobs import Job, interrupted
from ..request import Request
from ..result import Results
from .lines import confirm
from .live import LiveOutput
from .parse import Parsed

if TYPE_CHECKING:
    from ..session import Session
    from . import Kontext


def run(magics: Kontext, session: Session, requests: list[tuple[Request, int | None]], parsed: Parsed) -> Any:
    """Check the cost, submit, show one live output, and return the Result(s) (or Jobs with --bg)."""
    cost = sum(r.cost for r, _ in requests)
    images = sum(r.num_images for r, _ in requests)
    estimated = any(r.estimated for r, _ in requests)
    confirm(magics, cost, f"{images} image{'s' if images != 1 else ''}", parsed.yes, estimated=estimated)
    jobs = submit_all(session, requests, parsed)
    background = magics.background if parsed.bg is None else parsed.bg
    live = LiveOutput(jobs, terminal=magics.terminal, background=background, ledger=session.tracker.journal)
    if background:
        finish_in_background(live, jobs)
        value: Any = jobs[0] if len(jobs) == 1 else jobs
        if parsed.output:
            magics.user_ns[parsed.output] = value
        return value if magics.terminal else None
    results = wait_all(jobs, live)
    value = results[0] if len(results) == 1 else Results(results)
    if parsed.output:
        magics.user_ns[parsed.output] = value
    return value


def submit_all(session: Session, requests: list[tuple[Request, int | None]], parsed: Parsed) -> list[Job]:
    """Send every request (already confirmed: confirm=True) through the session's one batch rule: all or none."""
    try:
        return session.submit_all(requests, cache=not parsed.no_cache, confirm=True, tags=parsed.tags)
    except KontextError as exc:
        raise UsageError(str(exc)) from None


def wait_all(jobs: list[Job], live: LiveOutput, *, keep_errors: bool = False) -> list[Any]:
    """Every job's Result (or, with keep_errors, its error); an interrupt cancels them all on fal."""
    outcomes: list[Any] = []
    try:
        for job in jobs:
            try:
                outcomes.append(job.result())
            except Interrupted:  # a KontextError too, but it stops the whole run, not just this job
                raise
            except KontextError as exc:
                if not keep_errors:
                    raise
                outcomes.append(exc)
    except KeyboardInterrupt:  # one line (what was cancelled, what it cost), not a traceback into the library
        raise interrupted(jobs) from None
    finally:
        live.refresh()
    return outcomes


def finish_in_background(live: LiveOutput, jobs: list[Job]) -> None:
    from ..views.render import result_html

    def done(job: Job, status: Any) -> None:
        if live.finished:
            html = "".join(result_html(j.result(0)) for j in jobs if j.state == "done")
            live.show_results(html)

    for job in jobs:
        job.on_update(done)
    if live.finished:
        done(jobs[0], None)
