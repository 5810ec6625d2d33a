"""What %load_ext does with jobs a dead kernel left on fal: it collects them, in the background, so loading stays
fast (the engine, the HTTP client and the downloads all start after the load has returned).

One line says what is being collected; when it is done the same output (a display that updates, in a notebook)
or a second line (terminal IPython) says what was collected and what was not. A job whose collecting fails is
tried once more at once (fal's result answer gives fresh image links); one that still fails stays collectable,
for ``kx.resume()`` or the next load. Each job is claimed in the journal first (``Journal.claim``): a job another
kernel loading at the same moment took is left to it.
"""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from ..jobs import Job
    from ..session import Session

ROUNDS = 2
"""Tries per job in one load: the first, and one more for a job whose collecting failed."""


def collect_in_background(session: Session | None, waiting: list[int], *, terminal: bool) -> threading.Thread:
    """Say what is being collected, and collect it on a thread of its own; returns that thread.

    ``session``: the module-level one if it exists; else it is made on that thread (importing the engine's
    modules takes longer than the whole load)."""
    n = len(waiting)
    refs = ", ".join(f"@{i}" for i in waiting)
    output = _Output(
        f"kontext_nb: collecting {n} job{'s' if n != 1 else ''} a stopped kernel left on fal ({refs}) in the "
        "background; nothing is submitted again",
        terminal=terminal,
    )
    thread = threading.Thread(
        target=_collect, args=(session, waiting, output), name="kontext-collect-on-load", daemon=True
    )
    thread.start()
    return thread


def _collect(session: Session | None, waiting: list[int], output: _Output) -> None:
    try:
        if session is None:
            from .. import api

            session = api.get_session()
        collected: dict[int, int] = {}
        failed: dict[int, str] = {}
        for _ in range(ROUNDS):
            jobs = cast("list[Job]", session.resume(wait=False))
            if not jobs:
                break
            for job in jobs:
                if job.journal_id is None:
                    continue
                try:
                    collected[job.journal_id] = len(job.result().images)
                    failed.pop(job.journal_id, None)
                except Exception as exc:  # the row says what happened; it stays collectable when fal may have it
                    failed[job.journal_id] = str(exc)
            if not failed:
                break
        output.finish(_summary(waiting, collected, failed))
    except Exception as exc:  # never a traceback from a background thread: one line, and the jobs stay collectable
        output.finish(f"kontext_nb: could not collect the jobs a stopped kernel left on fal: {exc}")


def _summary(waiting: list[int], collected: dict[int, int], failed: dict[int, str]) -> str:
    """One line: what was collected (images saved), what was not and why, what another kernel has."""
    parts = []
    if collected:
        done = ", ".join(f"@{i} ({n} image{'s' if n != 1 else ''})" for i, n in sorted(collected.items()))
        parts.append(f"collected {done}, saved in the runs folder")
    for i, why in sorted(failed.items()):
        parts.append(f"@{i} not collected: {why}")
    others = [i for i in waiting if i not in collected and i not in failed]
    if others:
        parts.append(f"{', '.join(f'@{i}' for i in others)} left to another kernel collecting them")
    return "kontext_nb: " + ("; ".join(parts) or "nothing left to collect")


class _Output:
    """A line now and its outcome later: a display that updates (a notebook), or a second line (a terminal)."""

    def __init__(self, line: str, *, terminal: bool) -> None:
        self.terminal = terminal
        self.handle: Any = None
        if terminal:
            _say(line)
        else:
            from IPython.display import display

            self.handle = display({"text/plain": line}, raw=True, display_id=True)

    def finish(self, line: str) -> None:
        if self.handle is not None:
            self.handle.update({"text/plain": line}, raw=True)
        else:
            _say(line)


def _say(line: str) -> None:
    """One write, so a line printed by the shell at the same moment cannot land inside it."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
