"""One output per run that updates in place while jobs are queued and running.

In a notebook it is a display handle (for background runs showing a small widget with a
Cancel button, which becomes plain HTML once the jobs end, so a saved notebook keeps the
images); in terminal IPython it is one line rewritten in place, or for a background run a line when it is sent
and one when it ends.
"""

from __future__ import annotations

import html
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from ..jobs import Job
from ..views.status import Ledger, logs_text, status_text

TICK = 1.0  # seconds between elapsed-time refreshes while something runs
STYLE = "font:12px/1.5 monospace;padding:2px 0"


class LiveOutput:
    """Status of one or more jobs, refreshed on every change and every second while running."""

    def __init__(
        self, jobs: Sequence[Job], *, terminal: bool, background: bool = False, ledger: Ledger | None = None
    ) -> None:
        self.jobs = list(jobs)
        self.ledger = ledger
        """Where the line reads what the jobs cost and hold (the journal's spend ledger)."""
        self.terminal = terminal
        self.background = background
        self.started = time.time()
        self._lock = threading.Lock()
        self._last_key: tuple[Any, ...] = ()
        self._width = 0
        self._ended = False
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

    def _lines(self) -> list[str]:
        return [line for line in (status_text(self.jobs, self.started, self.ledger), *logs_text(self.jobs)) if line]

    def _html(self, body: str = "") -> str:
        text = "<br/>".join(html.escape(line) for line in self._lines())
        return f'<div class="kontext-status" style="{STYLE}">{text}</div>{body}'

    def _refs(self) -> str:
        return " ".join(f"@{job.journal_id}" for job in self.jobs if job.journal_id) or "this job"

    def _saved_html(self) -> str:
        """What a saved notebook shows of a run still going (no kernel, no widget state): not a frozen "queued",
        but what happens next."""
        when = time.strftime("%H:%M", time.localtime(self.started))
        text = (
            f"{self._refs()} sent at {when}, running in the background: its images show here when it ends; "
            "if the kernel stopped first, %kontext resume collects it"
        )
        return f'<div class="kontext-status" style="{STYLE}">{html.escape(text)}</div>'

    def refresh(self, body: str = "") -> None:
        with self._lock:
            if self.terminal:
                self._print()
            elif self.widget is not None:
                self.widget.lines = self._lines()
                if self.finished:  # plain HTML from now on: a saved notebook has no widget to lose
                    from IPython.display import HTML

                    self.handle.update(HTML(self._html(body)))
                    self.widget.close()
                    self.widget = None
            elif self.handle is not None:
                from IPython.display import HTML

                self.handle.update(HTML(self._html(body)))
            if self.finished:
                self._done.set()

    def _print(self) -> None:
        """One line, rewritten in place on every change of state (not every second); ended when all are done."""
        if self._ended:
            return
        if self.background:
            self._print_whole_line()
            return
        key = tuple((job.state, job.status.position) for job in self.jobs)
        if key != self._last_key:
            self._last_key = key
            text = f"kontext: {status_text(self.jobs, self.started, self.ledger)}"
            pad = max(0, self._width - len(text))
            self._width = len(text)
            self._ended = self.finished
            print("\r" + text + " " * pad, end="\n" if self._ended else "", flush=True)

    def _print_whole_line(self) -> None:
        """Whole lines, each in one write: the shell's prompt, the run's Out[] or another run's status line may hold
        the cursor, and a line rewritten in place would overwrite them."""
        text = f"kontext: {status_text(self.jobs, self.started, self.ledger)}"
        if not self._last_key:
            self._last_key = ("sent",)
            sys.stdout.write(text + "\n")
        elif self.finished:
            self._ended = True
            sys.stdout.write("\n" + text + "\n")
        sys.stdout.flush()

    def _tick(self) -> None:
        while not self._done.wait(TICK):
            self.refresh()

    def _make_widget(self) -> None:
        from IPython.display import display

        from ..widgets.background import BackgroundStatus

        def on_cancel() -> None:
            threading.Thread(target=lambda: [job.cancel() for job in self.jobs], daemon=True).start()

        self.widget = BackgroundStatus(lines=self._lines(), refs=self._refs(), on_cancel=on_cancel)
        # the widget, with what happens next as HTML beside it for a saved notebook and front ends without widgets
        shown = self.widget._repr_mimebundle_()
        bundle = {**(shown[0] if isinstance(shown, tuple) else shown), "text/html": self._saved_html()}
        self.handle = display(bundle, raw=True, display_id=True)

    def show_results(self, body_html: str) -> None:
        """Background runs put their images into the same output once done."""
        self.refresh(body_html)
