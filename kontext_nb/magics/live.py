"""One output per run that updates in place while jobs are queued and running.

In a notebook it is a display handle (or, for background runs, a small widget with a
Cancel button); in terminal IPython it prints a line per state change instead.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Sequence
from typing import Any

from ..jobs import Job
from ..render import format_cost

TICK = 1.0  # seconds between elapsed-time refreshes while something runs
STYLE = "font:12px/1.5 monospace;padding:2px 0"


def status_text(jobs: Sequence[Job], started: float) -> str:
    """One line: where the jobs are, how long it has taken, what it cost so far."""
    elapsed = time.time() - started
    if len(jobs) == 1:
        job = jobs[0]
        s = job.status
        ref = f"@{job.journal_id} " if job.journal_id else ""
        if s.state == "queued":
            where = f"position {s.position}" if s.position is not None else "waiting to be sent"
            return f"{ref}queued · {where} · {elapsed:.1f} s"
        if s.state == "running":
            return f"{ref}running · {elapsed:.1f} s"
        if s.state == "done":
            r = job.result(0)
            n = len(r.images)
            cached = " · from the journal" if r.cached else ""
            return f"{ref}done in {elapsed:.1f} s · {n} image{'s' if n != 1 else ''} · {format_cost(r.cost)}{cached}"
        return f"{ref}{s}"
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job.state] = counts.get(job.state, 0) + 1
    spent = sum(job.result(0).cost for job in jobs if job.state == "done")
    parts = [f"{counts.get('done', 0)}/{len(jobs)} done"] + [
        f"{counts[k]} {k}" for k in ("running", "queued", "failed", "cancelled") if counts.get(k)
    ]
    return " · ".join(parts) + f" · {elapsed:.1f} s · {format_cost(spent)}"


def logs_text(jobs: Sequence[Job], last: int = 3) -> list[str]:
    if len(jobs) != 1 or jobs[0].done():
        return []
    return [str(line.get("message", "")) for line in jobs[0].status.logs[-last:]]


class LiveOutput:
    """Status of one or more jobs, refreshed on every change and every second while running."""

    def __init__(self, jobs: Sequence[Job], *, terminal: bool, background: bool = False) -> None:
        self.jobs = list(jobs)
        self.terminal = terminal
        self.started = time.time()
        self._lock = threading.Lock()
        self._last_key: tuple[Any, ...] = ()
        self._done = threading.Event()
        self.widget: Any = None
        self.handle: Any = None
        if terminal:
            self._print()
        elif background:
            self._make_widget()
        else:
            from IPython.display import HTML, display

            self.handle = display(HTML(self._html()), display_id=True)
        for job in self.jobs:
            job.on_update(lambda j, s: self.refresh())
        if not terminal:
            threading.Thread(target=self._tick, name="kontext-live", daemon=True).start()

    @property
    def finished(self) -> bool:
        return all(job.done() for job in self.jobs)

    def _html(self, body: str = "") -> str:
        lines = [status_text(self.jobs, self.started), *logs_text(self.jobs)]
        text = "<br/>".join(html.escape(line) for line in lines if line)
        return f'<div class="kontext-status" style="{STYLE}">{text}</div>{body}'

    def refresh(self, body: str = "") -> None:
        with self._lock:
            if self.terminal:
                self._print()
            elif self.widget is not None:
                self.widget.children[0].value = self._html(body)
                if self.finished:
                    self.widget.children[1].layout.display = "none"
            elif self.handle is not None:
                from IPython.display import HTML

                self.handle.update(HTML(self._html(body)))
            if self.finished:
                self._done.set()

    def _print(self) -> None:
        # one line per change of state, not one per second
        key = tuple((job.state, job.status.position) for job in self.jobs)
        if key != self._last_key:
            self._last_key = key
            print(f"kontext: {status_text(self.jobs, self.started)}", flush=True)

    def _tick(self) -> None:
        while not self._done.wait(TICK):
            self.refresh()

    def _make_widget(self) -> None:
        import ipywidgets as w
        from IPython.display import display

        status = w.HTML(self._html())
        cancel = w.Button(description="Cancel", button_style="warning", icon="stop", layout=w.Layout(width="auto"))

        def on_cancel(_: Any) -> None:
            cancel.disabled = True
            threading.Thread(target=lambda: [job.cancel() for job in self.jobs], daemon=True).start()

        cancel.on_click(on_cancel)
        self.widget = w.VBox([status, cancel])
        display(self.widget)

    def show_results(self, body_html: str) -> None:
        """Background runs put their images into the same output once done."""
        self.refresh(body_html)
